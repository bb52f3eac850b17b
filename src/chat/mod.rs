//! The chat feature: its wire types (shared by server and browser), the page,
//! and both ends of the answer stream.
//!
//! # The stream (`POST /api/chat/stream`)
//!
//! The request body is a [`SendRequest`]: the user's new message, and the
//! conversation it belongs to (none starts a new one). The history sent to
//! the model comes from the store. The answer is `text/event-stream`; every
//! event carries `id:` (its sequence number from 1, which a client that lost
//! its connection resumes from; see the `generation` module) and one of the event
//! names below, with JSON `data:`:
//!
//! | event   | data                                                                   |
//! |---------|------------------------------------------------------------------------|
//! | `start` | [`Started`]: the message is stored; the conversation's id and title    |
//! | `delta` | [`Delta`] `{"text": "..."}`: append to the answer                       |
//! | `reasoning` | [`Delta`] `{"text": "..."}`: append to the answer's thinking |
//! | `reasoning_redacted` | `{}`: the model thought, encrypted (shown as such) |
//! | `tool_call` | [`ToolCallStarted`] `{"id", "name"}`: the model began a tool call |
//! | `tool_input` | [`ToolInput`] `{"id", "fragment"}`: append to that call's arguments (JSON text) |
//! | `tool_running` | [`ToolRunning`] `{"id"}`: the arguments are complete; the tool runs |
//! | `tool_approval` | [`ToolRunning`] `{"id"}`: the call waits for the user's Approve or Deny |
//! | `tool_result` | [`ToolFinished`] `{"id", "ok", "content", "duration_ms"}`: the call ended |
//! | `usage` | [`Usage`] `{"input_tokens", "output_tokens", "total_tokens", "latency_ms"}` (summed over tool rounds) |
//! | `error` | [`ErrorInfo`] `{"code", "message", "retryable"}`: the answer ends here  |
//! | `done`  | [`Done`] `{"stop_reason": "end_turn"}`: the answer ended (`"stopped"`: by Stop) |
//!
//! Text after a tool call, or after thinking, starts a new part of the
//! answer: a client keeps the parts in the order their events came. A
//! client ignores event names it does not know.
//!
//! `start` comes first. Exactly one of `error` or `done` ends a stream, and
//! only after the answer is stored. Errors found before the message is
//! stored (validation, an unknown conversation, storage down) are plain HTTP
//! errors with a JSON body `{"error": ErrorInfo}` instead; from `start` on,
//! every error (throttling before the first token included) is an `error`
//! event, so the client always learns the id of the conversation it is in.

use serde::{Deserialize, Serialize};

// Part of this stream's wire format, defined with what they describe.
pub use crate::{
    conversations::{ModelOption, Role, Usage},
    errors::{ErrorBody, ErrorInfo},
};

pub mod page;
pub mod settings_panel;

#[cfg(feature = "ssr")]
pub mod approvals;
#[cfg(feature = "ssr")]
pub mod cluster;
#[cfg(feature = "ssr")]
pub mod generation;
#[cfg(feature = "ssr")]
pub mod record;
#[cfg(feature = "ssr")]
pub mod relay;
#[cfg(feature = "ssr")]
pub mod turns;
#[cfg(feature = "ssr")]
pub mod validate;

// Browser code, compiled on both sides: only event handlers and effects
// call it, and those never run while the server renders.
mod clipboard;
mod stream_client;

/// Paths of the chat endpoints.
pub const STREAM_PATH: &str = "/api/chat/stream";
/// `stop_reason` of the `done` event that ends an answer stopped by the user.
pub const STOPPED_REASON: &str = "stopped";

/// Resuming and stopping an answer: `{GENERATIONS_PATH}/{answer_id}/events`
/// and `{GENERATIONS_PATH}/{answer_id}/cancel`; deciding on a call that
/// waits for approval: `{GENERATIONS_PATH}/{answer_id}/tools/{call_id}`
/// with [`ToolDecision`].
pub const GENERATIONS_PATH: &str = "/api/generations";
/// The wire format of the Python/Streamlit client this app replaces.
pub const COMPAT_PATH: &str = "/api/chat";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

/// What the compatibility endpoint takes: the whole conversation, as the
/// seed's Streamlit client sends it. Such answers are not stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// One of the offered models; the configured default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    pub messages: Vec<ChatMessage>,
}

/// What the page sends to add a message to a conversation and stream the answer.
/// Unknown fields are refused: in particular a client cannot supply history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// The conversation to continue; absent or null starts a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    /// The user's new message.
    pub content: String,
    /// One of the offered models; the configured default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    /// Settings to store with the conversation before this message is
    /// answered (a new chat's system prompt, temperature, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<crate::conversations::ConversationSettings>,
    /// The browser's IANA time zone (`Asia/Seoul`), for the time tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

/// First event of a stream: the user's message is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Started {
    pub conversation_id: String,
    pub title: String,
    /// Whether this message started the conversation.
    pub created: bool,
    pub user_message_id: String,
    pub answer_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {
    pub stop_reason: String,
    /// From the request to the first token, as this server measured it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_token_ms: Option<u64>,
    /// From the request to the end of the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

impl Done {
    pub fn new(stop_reason: impl Into<String>) -> Self {
        Self {
            stop_reason: stop_reason.into(),
            first_token_ms: None,
            duration_ms: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCallStarted {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolInput {
    pub id: String,
    pub fragment: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolRunning {
    pub id: String,
}

/// The user's decision on a call that waits for approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolDecision {
    pub approve: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolFinished {
    pub id: String,
    /// False: the tool failed, was refused or timed out (`content` says why).
    pub ok: bool,
    pub content: String,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redacted {}

/// One event of the answer stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    Start(Started),
    Delta(Delta),
    Reasoning(Delta),
    ReasoningRedacted(Redacted),
    ToolCall(ToolCallStarted),
    ToolInput(ToolInput),
    ToolRunning(ToolRunning),
    ToolApproval(ToolRunning),
    ToolResult(ToolFinished),
    Usage(Usage),
    Error(ErrorInfo),
    Done(Done),
}

impl StreamEvent {
    /// The SSE `event:` name.
    pub fn name(&self) -> &'static str {
        match self {
            StreamEvent::Start(_) => "start",
            StreamEvent::Delta(_) => "delta",
            StreamEvent::Reasoning(_) => "reasoning",
            StreamEvent::ReasoningRedacted(_) => "reasoning_redacted",
            StreamEvent::ToolCall(_) => "tool_call",
            StreamEvent::ToolInput(_) => "tool_input",
            StreamEvent::ToolRunning(_) => "tool_running",
            StreamEvent::ToolApproval(_) => "tool_approval",
            StreamEvent::ToolResult(_) => "tool_result",
            StreamEvent::Usage(_) => "usage",
            StreamEvent::Error(_) => "error",
            StreamEvent::Done(_) => "done",
        }
    }

    /// Decodes an event from its SSE name and data. Unknown names are `None`
    /// so that older clients ignore events added later.
    pub fn decode(name: &str, data: &str) -> Option<Result<Self, serde_json::Error>> {
        Some(match name {
            "start" => serde_json::from_str(data).map(StreamEvent::Start),
            "delta" => serde_json::from_str(data).map(StreamEvent::Delta),
            "reasoning" => serde_json::from_str(data).map(StreamEvent::Reasoning),
            "reasoning_redacted" => serde_json::from_str(data).map(StreamEvent::ReasoningRedacted),
            "tool_call" => serde_json::from_str(data).map(StreamEvent::ToolCall),
            "tool_input" => serde_json::from_str(data).map(StreamEvent::ToolInput),
            "tool_running" => serde_json::from_str(data).map(StreamEvent::ToolRunning),
            "tool_approval" => serde_json::from_str(data).map(StreamEvent::ToolApproval),
            "tool_result" => serde_json::from_str(data).map(StreamEvent::ToolResult),
            "usage" => serde_json::from_str(data).map(StreamEvent::Usage),
            "error" => serde_json::from_str(data).map(StreamEvent::Error),
            "done" => serde_json::from_str(data).map(StreamEvent::Done),
            _ => return None,
        })
    }

    /// Whether this event ends the stream.
    pub fn is_terminal(&self) -> bool {
        matches!(self, StreamEvent::Error(_) | StreamEvent::Done(_))
    }
}

/// How an answer stream ended, as the browser saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd {
    /// A `done` or `error` event arrived.
    Finished,
    /// The user pressed Stop.
    Stopped,
    /// The request failed or the connection broke before a terminal event.
    Failed(ErrorInfo),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_request_body_is_a_chat_request() {
        let r: ChatRequest =
            serde_json::from_str(r#"{"messages":[{"role":"user","content":"hi"}]}"#).unwrap();
        assert_eq!(r.model_id, None);
        assert_eq!(r.messages[0].role, Role::User);
    }

    #[test]
    fn events_decode_by_name() {
        let e = StreamEvent::decode("delta", r#"{"text":"안녕 😀"}"#)
            .unwrap()
            .unwrap();
        assert_eq!(
            e,
            StreamEvent::Delta(Delta {
                text: "안녕 😀".into()
            })
        );
        assert!(StreamEvent::decode("future-event", "{}").is_none());
        assert!(StreamEvent::decode("done", "not json").unwrap().is_err());
    }
}
