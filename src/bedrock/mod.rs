//! The Bedrock layer: everything that knows Amazon Bedrock.
//!
//! It turns a conversation into a ConverseStream call and the SDK's events
//! into our own [`ModelEvent`]s, and SDK failures into [`BedrockError`]s. It
//! knows nothing of HTTP: the HTTP layer decides how these look on the wire.
//!
//! [`connect`] picks the backend: real Bedrock through the standard AWS
//! credential and region chain, or the built-in [`simulator`] when no
//! credentials are configured. Both are driven by the same SDK client; only
//! the endpoint differs.

mod client;
mod error;
pub mod simulator;

pub use client::{
    aws_credentials_configured, connect, Backend, BedrockChat, ConverseInput, ModelEvent, ModelStream,
    StopReason, TokenUsage, Turn,
};
pub use error::{BedrockError, ErrorKind};
