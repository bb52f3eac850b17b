//! Conversations that last: stored on the server, listed per owner, and
//! addressed by URL (`/c/{id}`).
//!
//! * [`store`] (server): the repository over SQLite or PostgreSQL.
//! * [`identity`] (server): who the owner of a request is (signed cookie, or a
//!   trusted proxy header).
//! * [`api`] (server): the JSON endpoints below.
//! * [`history`] (server): what of a stored conversation is sent to the model.
//! * [`sidebar`] (both): the list of conversations in the page (a drawer on
//!   phones), and `conversation_item`, one conversation in it.
//! * [`client`] (both): the page's calls: server functions to read, the API to change.
//!
//! # The API (all scoped to the caller; JSON)
//!
//! | request                         | answer                                   |
//! |---------------------------------|------------------------------------------|
//! | `GET /api/conversations`        | `[ConversationSummary]`, newest first     |
//! | `GET /api/conversations/{id}`   | [`Conversation`] with its messages       |
//! | `PATCH /api/conversations/{id}` | `{"title": "..."}` → [`ConversationSummary`] |
//! | `PUT /api/conversations/{id}/settings` | [`ConversationSettings`] → the stored settings |
//! | `DELETE /api/conversations/{id}`| 204                                      |
//!
//! Answers are streamed by `POST /api/conversations/{id}/regenerate` (a new
//! answer to the last message) and `POST /api/conversations/{id}/edit` (an
//! earlier message rewritten; the turns after it are replaced); see
//! [`crate::chat`].
//!
//! Someone else's conversation answers 404 exactly as a missing one does.

use crate::errors::{ErrorCode, ErrorInfo};
use serde::{Deserialize, Serialize};

mod conversation_item;
pub mod sidebar;

#[cfg(feature = "ssr")]
pub mod history;
#[cfg(feature = "ssr")]
pub mod store;

pub mod blocks;
pub mod client;
mod ids;
pub mod usage;
pub mod usage_page;

pub use usage::{format_cost, Price, Usage, UsageReport};

pub use blocks::{AnswerBlock, ToolCall, ToolResult};
pub use ids::{is_valid_id, ConversationId, MessageId};

pub const API_PATH: &str = "/api/conversations";
/// How many conversations the list shows.
pub const LIST_LIMIT: i64 = 500;

/// The page of one conversation.
pub fn page_path(id: &str) -> String {
    format!("/c/{id}")
}

/// The conversation id named by a page path, if it is a conversation page.
pub fn id_from_path(path: &str) -> Option<&str> {
    path.strip_prefix("/c/").map(|id| id.trim_end_matches('/'))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

/// A model a user may pick.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelOption {
    pub id: String,
    pub label: String,
    /// It can think before answering (`[bedrock] reasoning_models`).
    #[serde(default)]
    pub reasoning: bool,
}

/// Whose conversations: `anon:<uuid>` for an anonymous browser (its signed
/// cookie), `user:<name>` for a user a trusted proxy signed in, so the two
/// can never name the same owner. Who the owner of a request is, the HTTP
/// layer decides (`server::identity`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner(pub String);

impl Owner {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationSummary {
    pub id: String,
    pub title: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub updated_at: i64,
}

/// How a stored message ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    /// The answer is being written now.
    Streaming,
    Complete,
    /// The user stopped it.
    Stopped,
    Error,
    /// Cut off: the server stopped (crash, shutdown) while writing it, or
    /// nobody listened to it for the grace period.
    Interrupted,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Streaming => "streaming",
            MessageStatus::Complete => "complete",
            MessageStatus::Stopped => "stopped",
            MessageStatus::Error => "error",
            MessageStatus::Interrupted => "interrupted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "streaming" => MessageStatus::Streaming,
            "complete" => MessageStatus::Complete,
            "stopped" => MessageStatus::Stopped,
            "error" => MessageStatus::Error,
            "interrupted" => MessageStatus::Interrupted,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMessage {
    pub id: String,
    pub role: Role,
    pub content: String,
    pub status: MessageStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// From the request to the first token, as measured by this server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_token_ms: Option<u64>,
    /// From the request to the end of the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
    pub created_at: i64,
    /// The answer's parts in order, when it has more than text (reasoning,
    /// tool calls); `content` is then its text blocks joined.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocks: Vec<AnswerBlock>,
    /// The message's text was left out of this copy: set only in the copy a
    /// page is hydrated from, whose HTML already shows that text (see
    /// `chat::page::hydration_data`); never by the store or the API.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub text_left_out: bool,
}

#[cfg(test)]
impl StoredMessage {
    /// A message with only what a test sets: its role, text and status.
    pub(crate) fn of(role: Role, content: &str, status: MessageStatus) -> Self {
        Self {
            id: String::new(),
            role,
            content: content.to_owned(),
            status,
            model_id: None,
            usage: None,
            first_token_ms: None,
            duration_ms: None,
            error: None,
            created_at: 0,
            blocks: Vec::new(),
            text_left_out: false,
        }
    }
}

/// How one conversation talks to the model, stored with it. Each `None`
/// means the server's default (`[bedrock]` in Leptos.toml), so a default
/// changed later applies to conversations that never chose their own.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConversationSettings {
    /// The model last chosen for this conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    /// 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Most tokens one answer may have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// The tools the model may call, by name; `None`: the server's defaults
    /// (`[tools] on_by_default`), `[]`: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
    /// Tokens the model may think for before answering; `None` or 0: it
    /// does not think. Only for models that can.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_budget: Option<u32>,
}

/// One conversation with its transcript, oldest message first: all of it
/// from the API; for the page, a page of it ([`store::Store::page`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    #[serde(flatten)]
    pub summary: ConversationSummary,
    #[serde(default)]
    pub settings: ConversationSettings,
    pub messages: Vec<StoredMessage>,
    /// Messages older than `messages`, left out of this page.
    #[serde(default, skip_serializing_if = "LeftOut::is_empty")]
    pub earlier: LeftOut,
}

/// How many messages were left out of a page, and what their answers used
/// (so that the conversation's total still counts them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeftOut {
    pub messages: usize,
    pub tokens: u64,
    /// Of the answers whose model had a price.
    pub cost_nanos: Option<u64>,
}

impl LeftOut {
    pub fn is_empty(&self) -> bool {
        self.messages == 0
    }

    /// Their tokens and cost, as [`usage::totals`] adds them; `None` when
    /// no answer among them has a usage.
    pub fn totals(&self) -> Option<(u64, Option<u64>)> {
        (self.tokens > 0 || self.cost_nanos.is_some()).then_some((self.tokens, self.cost_nanos))
    }
}

/// Messages a page of a transcript holds: a long conversation opens at its
/// newest, and the page renders and hydrates no more than this many turns
/// (a 1,000-message page took 0.4 s to hydrate, and carried the transcript
/// twice, as HTML and as data). Older ones load on demand; the store
/// reads only the page ([`store::Store::page`]).
pub const TRANSCRIPT_PAGE: usize = 100;

/// What `POST /api/conversations/{id}/edit` takes: the user message to
/// rewrite, its new text, and optionally another model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditRequest {
    pub message_id: String,
    pub content: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    /// The browser's IANA time zone, for the time tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenameRequest {
    pub title: String,
}

/// A conversation's title as stored: one line, trimmed, not empty, within
/// the limit, without control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Title(String);

impl Title {
    /// The title a user typed, normalised, or why it cannot be one.
    pub fn parse(raw: &str, max_chars: usize) -> Result<Self, ErrorInfo> {
        let title = raw.split_whitespace().collect::<Vec<_>>().join(" ");
        if title.is_empty() {
            return Err(ErrorInfo::refused(
                ErrorCode::EmptyTitle,
                "The title is empty. Type a name for the conversation.",
            ));
        }
        let chars = title.chars().count();
        if chars > max_chars {
            return Err(ErrorInfo::refused(
                ErrorCode::TitleTooLong,
                format!("The title is {chars} characters long; the limit is {max_chars}. Shorten it."),
            ));
        }
        if title.chars().any(char::is_control) {
            return Err(ErrorInfo::refused(
                ErrorCode::InvalidCharacters,
                "The title contains control characters. Remove them and try again.",
            ));
        }
        Ok(Self(title))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A title made from the first message: its first line, whitespace folded,
/// cut at a word boundary near `max_chars`.
pub fn title_from_message(text: &str, max_chars: usize) -> String {
    let folded = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if folded.chars().count() <= max_chars {
        return folded;
    }
    let cut: String = folded.chars().take(max_chars).collect();
    let at_word = match cut.rfind(' ') {
        Some(space) if space > cut.len() / 2 => &cut[..space],
        _ => &cut,
    };
    format!("{}…", at_word.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_must_be_canonical_uuids() {
        assert!(is_valid_id("0190f5a4-3c2b-7def-8a12-0123456789ab"));
        assert!(!is_valid_id("0190F5A4-3C2B-7DEF-8A12-0123456789AB"));
        assert!(!is_valid_id("../../etc/passwd"));
        assert!(!is_valid_id("0190f5a4-3c2b-7def-8a12-0123456789a"));
        assert!(!is_valid_id("0190f5a4x3c2b-7def-8a12-0123456789ab"));
        assert!(!is_valid_id(""));
    }

    #[test]
    fn titles_are_one_short_line() {
        assert_eq!(title_from_message("  Hello\n\nworld  ", 60), "Hello world");
        assert_eq!(title_from_message("one two three four", 10), "one two…");
        assert_eq!(title_from_message("가나다라마바사아자차카", 5), "가나다라마…");
    }

    #[test]
    fn paths_round_trip() {
        let id = "0190f5a4-3c2b-7def-8a12-0123456789ab";
        assert_eq!(id_from_path(&page_path(id)), Some(id));
        assert_eq!(id_from_path("/"), None);
    }
}
