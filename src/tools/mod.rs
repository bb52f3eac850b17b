//! The tools the model may call in an answer.
//!
//! The operator offers tools in `[tools]` of Leptos.toml; each conversation
//! turns them on or off (`ConversationSettings::tools`). The Bedrock layer
//! runs the rounds of an answer; a [`Toolbox`] (server) is what it calls,
//! bound to the answer's owner, so a tool that reads stored conversations
//! can only ever read that owner's.
//!
//! Built in, all working offline:
//! * `current_time`: the date and time in the user's time zone (the browser
//!   sends it with each message) or one the model names;
//! * `calculator`: exact arithmetic with units and conversions, by `fend-core`
//!   (arbitrary precision; bounded in time);
//! * `search_conversations`: the owner's own stored messages containing some
//!   words, newest first;
//! * `fetch_url`: a public web address as text, never a private one ([`fetch`]).
//!
//! Beside them, the tools of MCP servers ([`mcp`], server only), named
//! `SERVER__TOOL`.

/// The names of the built-in tools.
pub const BUILT_IN: &[&str] = &[CURRENT_TIME, CALCULATOR, SEARCH_CONVERSATIONS, FETCH_URL];

pub const CURRENT_TIME: &str = "current_time";
pub const CALCULATOR: &str = "calculator";
pub const SEARCH_CONVERSATIONS: &str = "search_conversations";
pub const FETCH_URL: &str = "fetch_url";

#[cfg(feature = "ssr")]
mod builtin;
#[cfg(feature = "ssr")]
pub mod fetch;
#[cfg(feature = "ssr")]
pub mod mcp;
#[cfg(feature = "ssr")]
mod toolbox;

#[cfg(feature = "ssr")]
pub use toolbox::{specs, NeedsApproval, Toolbox};
