//! The Bedrock layer: everything that knows Amazon Bedrock.
//!
//! It turns a conversation into a ConverseStream call and the SDK's events
//! into our own [`ModelEvent`]s, and SDK failures into [`BedrockError`]s. It
//! knows nothing of HTTP: the HTTP layer decides how these look on the wire.
//!
//! An answer may take several rounds when the model calls tools
//! ([`AnswerStream`]); the tools themselves are run by a [`ToolRunner`] the
//! caller gives, so this layer knows what a tool call is, not what a tool does.
//!
//! [`connect`] picks the backend: real Bedrock through the standard AWS
//! credential and region chain, or the built-in [`simulator`] when no
//! credentials are configured. Both are driven by the same SDK client; only
//! the endpoint differs.

mod client;
mod error;
mod messages;
mod rounds;
pub mod simulator;
mod stream;

pub use client::{aws_credentials_configured, connect, Backend, BedrockChat};
pub use error::{BedrockError, ErrorKind};
pub use messages::{Block, ConverseInput, ToolSpec, Turn};
pub use rounds::{AnswerStream, AnswerTools, Approval, ToolLimits, ToolRunner};
pub use stream::{ModelEvent, ModelStream, StopReason, TokenUsage, ToolOutcome};
