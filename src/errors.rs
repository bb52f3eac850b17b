//! Errors as users and clients see them, shared by the server, the page and
//! API clients: [`ErrorCode`], the one list of what can go wrong (the
//! README points here), and [`ErrorInfo`], a code with a sentence a person
//! understands.
//!
//! Each code has one HTTP status, given here and nowhere else. The failures
//! of the layers below get their code and sentence next to their own error
//! types (`bedrock::error`, `conversations::store::error`); the HTTP layer
//! turns an `ErrorInfo` into a response in one place (`server::error`).

use serde::{Deserialize, Serialize};
use std::fmt;

/// Declares the codes with their statuses: `Variant = "wire_name" => status`.
macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = $name:literal => $status:literal,)*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum ErrorCode {
            $($(#[$doc])* #[serde(rename = $name)] $variant,)*
            /// A code this build does not know (a newer server's).
            #[serde(other, rename = "unknown")]
            Unknown,
        }

        impl ErrorCode {
            /// The code as it appears on the wire and in the store.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $name,)*
                    ErrorCode::Unknown => "unknown",
                }
            }

            /// Parses a code as written by [`Self::as_str`].
            pub fn parse(code: &str) -> Self {
                match code {
                    $($name => ErrorCode::$variant,)*
                    _ => ErrorCode::Unknown,
                }
            }

            /// The HTTP status of a response refused with this code. (In an
            /// `error` event the stream itself was 200; the code still says
            /// which status the same failure has before a stream starts.)
            pub fn status(self) -> u16 {
                match self {
                    $(ErrorCode::$variant => $status,)*
                    ErrorCode::Unknown => 500,
                }
            }
        }
    };
}

error_codes! {
    // The request itself.
    EmptyBody = "empty_body" => 400,
    MalformedJson = "malformed_json" => 400,
    UnreadableBody = "unreadable_body" => 400,
    RequestTooLarge = "request_too_large" => 413,
    RequestTimeout = "request_timeout" => 408,
    UnsupportedMediaType = "unsupported_media_type" => 415,
    MissingHost = "missing_host" => 400,
    UnknownHost = "unknown_host" => 421,
    CrossSiteRequest = "cross_site_request" => 403,
    // Who is asking.
    NotSignedIn = "not_signed_in" => 401,
    UntrustedProxy = "untrusted_proxy" => 401,
    RepeatedUserHeader = "repeated_user_header" => 400,
    AnonymousNotAllowed = "anonymous_not_allowed" => 403,
    // What was sent.
    EmptyMessage = "empty_message" => 400,
    MessageTooLong = "message_too_long" => 413,
    InvalidCharacters = "invalid_characters" => 400,
    UnknownModel = "unknown_model" => 400,
    EmptyConversation = "empty_conversation" => 400,
    TooManyMessages = "too_many_messages" => 413,
    BadTurnOrder = "bad_turn_order" => 400,
    SystemPromptTooLong = "system_prompt_too_long" => 413,
    BadTemperature = "bad_temperature" => 400,
    BadMaxTokens = "bad_max_tokens" => 400,
    UnknownTool = "unknown_tool" => 400,
    BadThinking = "bad_thinking" => 400,
    BadTimeZone = "bad_time_zone" => 400,
    EmptyTitle = "empty_title" => 400,
    TitleTooLong = "title_too_long" => 400,
    InvalidConversationId = "invalid_conversation_id" => 400,
    InvalidMessageId = "invalid_message_id" => 400,
    BadLastEventId = "bad_last_event_id" => 400,
    // What it names.
    ConversationNotFound = "conversation_not_found" => 404,
    MessageNotFound = "message_not_found" => 404,
    GenerationNotFound = "generation_not_found" => 404,
    CompatApiOff = "compat_api_off" => 404,
    ConversationBusy = "conversation_busy" => 409,
    NothingToRetry = "nothing_to_retry" => 409,
    NotAwaitingApproval = "not_awaiting_approval" => 409,
    // Limits.
    RateLimited = "rate_limited" => 429,
    TooManyAnswers = "too_many_answers" => 429,
    ServerBusy = "server_busy" => 429,
    DailyBudgetSpent = "daily_budget_spent" => 429,
    TooManyNewUsers = "too_many_new_users" => 429,
    ShuttingDown = "shutting_down" => 503,
    // The model.
    Throttled = "throttled" => 429,
    ModelRejectedInput = "model_rejected_input" => 422,
    ModelAccessDenied = "model_access_denied" => 502,
    ModelUnavailable = "model_unavailable" => 503,
    BedrockUnavailable = "bedrock_unavailable" => 503,
    ModelTimeout = "model_timeout" => 504,
    ModelError = "model_error" => 502,
    BedrockUnreachable = "bedrock_unreachable" => 502,
    ConnectionLost = "connection_lost" => 502,
    ToolRoundsExceeded = "tool_rounds_exceeded" => 422,
    // Storage.
    StorageUnavailable = "storage_unavailable" => 503,
    StorageReadOnly = "storage_read_only" => 503,
    StorageError = "storage_error" => 500,
    /// The server failed in a way no other code names.
    ServerError = "server_error" => 500,
    // Made by the page itself, never answered by the server.
    /// The request could not be made at all.
    RequestFailed = "request_failed" => 500,
    /// The server's answer could not be read.
    BadResponse = "bad_response" => 500,
    /// The server answered a status without an error body.
    UnexpectedStatus = "unexpected_status" => 500,
}

impl ErrorCode {
    /// Whether it is one of the limits' refusals (counted apart in `/metrics`).
    pub fn is_limit(self) -> bool {
        matches!(
            self,
            ErrorCode::RateLimited
                | ErrorCode::TooManyAnswers
                | ErrorCode::ServerBusy
                | ErrorCode::DailyBudgetSpent
                | ErrorCode::TooManyNewUsers
        )
    }
}

/// An error as users and clients see it, in HTTP error bodies and `error` events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    /// Stable, machine-readable: `empty_message`, `throttled`, `model_error`, ...
    pub code: ErrorCode,
    /// A sentence a person understands.
    pub message: String,
    /// Whether sending the same request again may succeed.
    pub retryable: bool,
}

impl ErrorInfo {
    pub fn new(code: ErrorCode, message: impl Into<String>, retryable: bool) -> Self {
        Self {
            code,
            message: message.into(),
            retryable,
        }
    }

    /// A request the client must change before sending it again.
    pub fn refused(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(code, message, false)
    }

    /// The page could not reach the server at all.
    pub fn offline() -> Self {
        Self::new(
            ErrorCode::ConnectionLost,
            "The server cannot be reached. Check your network and try again.",
            true,
        )
    }

    /// The server's answer could not be read by the page.
    pub fn unreadable(e: &dyn fmt::Display) -> Self {
        Self::new(
            ErrorCode::BadResponse,
            format!("The server sent an answer this page cannot read ({e}). Reload the page."),
            true,
        )
    }
}

/// How the page's server functions report their errors: as this same
/// `ErrorInfo`, JSON-encoded; a failure of the call itself becomes one too.
impl leptos::server_fn::error::FromServerFnError for ErrorInfo {
    type Encoder = leptos::server_fn::codec::JsonEncoding;

    fn from_server_fn_error(value: leptos::server_fn::error::ServerFnErrorErr) -> Self {
        use leptos::server_fn::error::ServerFnErrorErr as Failed;
        match value {
            Failed::Request(_) => ErrorInfo::offline(),
            Failed::Deserialization(e) | Failed::Response(e) => ErrorInfo::unreadable(&e),
            other => ErrorInfo::new(
                ErrorCode::ServerError,
                format!("The server could not answer ({other}). Try again."),
                true,
            ),
        }
    }
}

/// Body of every non-2xx JSON response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorInfo,
    /// The id of the request, also in the server's log line for it: what to
    /// quote to an administrator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn codes_round_trip_and_unknown_ones_are_kept_apart() {
        for code in [
            ErrorCode::EmptyBody,
            ErrorCode::Throttled,
            ErrorCode::StorageReadOnly,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
            assert_eq!(ErrorCode::parse(code.as_str()), code);
        }
        assert_eq!(
            serde_json::from_str::<ErrorCode>("\"added_next_year\"").unwrap(),
            ErrorCode::Unknown
        );
        assert_eq!(ErrorCode::MessageTooLong.status(), 413);
        assert_eq!(ErrorCode::ConversationNotFound, "conversation_not_found");
    }
}
