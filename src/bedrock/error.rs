//! Failures of a Bedrock call, sorted into the kinds a user can act on.

use crate::errors::{ErrorCode, ErrorInfo};
use aws_sdk_bedrockruntime::{
    error::{ProvideErrorMetadata, SdkError},
    operation::converse_stream::ConverseStreamError,
    types::error::ConverseStreamOutputError,
};
use std::fmt;

/// What went wrong, independent of how the SDK reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Too many requests or tokens for the account's quota right now.
    Throttled,
    /// Bedrock rejected the request (e.g. input too long for the model).
    Validation,
    /// The server's AWS identity may not use this model.
    AccessDenied,
    /// The model is loading or was not found.
    ModelUnavailable,
    /// Bedrock itself is unavailable or failed internally.
    ServiceUnavailable,
    /// The model took too long to answer.
    Timeout,
    /// The model failed while generating.
    ModelError,
    /// The connection to Bedrock broke, or its answer was malformed.
    ConnectionLost,
    /// The request could not be built or sent (configuration, credentials).
    Setup,
    /// The model asked for tools more rounds than one answer may take.
    ToolRounds,
}

impl ErrorKind {
    /// The code a user (and `/metrics`) sees for it.
    pub fn code(self) -> ErrorCode {
        match self {
            ErrorKind::Throttled => ErrorCode::Throttled,
            ErrorKind::Validation => ErrorCode::ModelRejectedInput,
            // The server's identity is refused upstream: not the user's fault.
            ErrorKind::AccessDenied => ErrorCode::ModelAccessDenied,
            ErrorKind::ModelUnavailable => ErrorCode::ModelUnavailable,
            ErrorKind::ServiceUnavailable => ErrorCode::BedrockUnavailable,
            ErrorKind::Timeout => ErrorCode::ModelTimeout,
            ErrorKind::ModelError => ErrorCode::ModelError,
            ErrorKind::ConnectionLost => ErrorCode::ConnectionLost,
            ErrorKind::Setup => ErrorCode::BedrockUnreachable,
            ErrorKind::ToolRounds => ErrorCode::ToolRoundsExceeded,
        }
    }
}

#[derive(Debug, Clone)]
pub struct BedrockError {
    pub kind: ErrorKind,
    /// Bedrock's own wording, for logs; users see [`BedrockError::user_message`].
    pub detail: String,
}

impl BedrockError {
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
        }
    }

    /// A sentence for the person chatting: what happened and what to do.
    pub fn user_message(&self) -> String {
        let base = match self.kind {
            ErrorKind::Throttled => "The model is receiving too many requests right now. Wait a moment and try again.",
            ErrorKind::Validation => "The model rejected this conversation",
            ErrorKind::AccessDenied => "This server is not allowed to use the selected model. Ask the administrator to enable model access in Amazon Bedrock.",
            ErrorKind::ModelUnavailable => "The selected model is not available right now. Try again shortly or pick another model.",
            ErrorKind::ServiceUnavailable => "Amazon Bedrock is temporarily unavailable. Try again in a moment.",
            ErrorKind::Timeout => "The model took too long to answer. Try again, perhaps with a shorter request.",
            ErrorKind::ModelError => "The model stopped with an error while answering. Try again.",
            ErrorKind::ConnectionLost => "The connection to the model was lost. Try again.",
            ErrorKind::Setup => "The server could not reach Amazon Bedrock. Check its AWS configuration.",
            ErrorKind::ToolRounds => "The model kept calling tools past the most rounds one answer may take on this server, so the answer was ended. Ask again more narrowly, or turn some tools off.",
        };
        match self.kind {
            // Bedrock's validation text says what to change; pass it on.
            ErrorKind::Validation if !self.detail.is_empty() => format!("{base}: {}", self.detail),
            ErrorKind::Validation => format!("{base}."),
            _ => base.to_owned(),
        }
    }

    /// Bedrock refused the request because the model takes no tools (some
    /// models on Bedrock cannot use tools, or not while streaming).
    pub fn refuses_tools(&self) -> bool {
        self.kind == ErrorKind::Validation && self.detail.to_ascii_lowercase().contains("tool use")
    }

    /// Whether the same request may succeed if sent again.
    pub fn retryable(&self) -> bool {
        !matches!(
            self.kind,
            ErrorKind::Validation | ErrorKind::AccessDenied | ErrorKind::Setup | ErrorKind::ToolRounds
        )
    }
}

impl BedrockError {
    /// A failure Bedrock (or the way to it) reported, counted for `/metrics`.
    fn from_sdk(kind: ErrorKind, detail: String) -> Self {
        metrics::counter!(crate::telemetry::BEDROCK_ERRORS, "code" => kind.code().as_str()).increment(1);
        Self::new(kind, detail)
    }
}

impl fmt::Display for BedrockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.detail)
    }
}

impl std::error::Error for BedrockError {}

/// Errors of the initial ConverseStream call, before any event.
impl<R: fmt::Debug> From<SdkError<ConverseStreamError, R>> for BedrockError {
    fn from(err: SdkError<ConverseStreamError, R>) -> Self {
        use ConverseStreamError as E;
        let kind = match &err {
            SdkError::ServiceError(ctx) => match ctx.err() {
                E::ThrottlingException(_) => ErrorKind::Throttled,
                E::ValidationException(_) => ErrorKind::Validation,
                E::AccessDeniedException(_) => ErrorKind::AccessDenied,
                E::ModelNotReadyException(_) | E::ResourceNotFoundException(_) => ErrorKind::ModelUnavailable,
                E::ServiceUnavailableException(_) | E::InternalServerException(_) => {
                    ErrorKind::ServiceUnavailable
                }
                E::ModelTimeoutException(_) => ErrorKind::Timeout,
                E::ModelErrorException(_) | E::ModelStreamErrorException(_) => ErrorKind::ModelError,
                _ => ErrorKind::ServiceUnavailable,
            },
            SdkError::TimeoutError(_) => ErrorKind::Timeout,
            SdkError::DispatchFailure(d) if d.is_io() || d.is_timeout() => ErrorKind::ConnectionLost,
            SdkError::ResponseError(_) => ErrorKind::ConnectionLost,
            _ => ErrorKind::Setup,
        };
        Self::from_sdk(kind, describe(&err))
    }
}

/// Errors that arrive inside the event stream, after it started.
impl<R: fmt::Debug> From<SdkError<ConverseStreamOutputError, R>> for BedrockError {
    fn from(err: SdkError<ConverseStreamOutputError, R>) -> Self {
        use ConverseStreamOutputError as E;
        let kind = match &err {
            SdkError::ServiceError(ctx) => match ctx.err() {
                E::ThrottlingException(_) => ErrorKind::Throttled,
                E::ValidationException(_) => ErrorKind::Validation,
                E::ModelStreamErrorException(_) => ErrorKind::ModelError,
                E::ServiceUnavailableException(_) | E::InternalServerException(_) => {
                    ErrorKind::ServiceUnavailable
                }
                _ => ErrorKind::ModelError,
            },
            _ => ErrorKind::ConnectionLost,
        };
        Self::from_sdk(kind, describe(&err))
    }
}

/// Bedrock's message when it sent one, else the SDK's description.
fn describe<E: ProvideErrorMetadata + std::error::Error + 'static, R: fmt::Debug>(
    err: &SdkError<E, R>,
) -> String {
    match err {
        SdkError::ServiceError(ctx) => ctx
            .err()
            .message()
            .map(str::to_owned)
            .unwrap_or_else(|| ctx.err().to_string()),
        other => aws_smithy_types::error::display::DisplayErrorContext(other).to_string(),
    }
}

/// The code and sentence a Bedrock failure is shown with.
impl From<BedrockError> for ErrorInfo {
    fn from(err: BedrockError) -> Self {
        tracing::warn!(error = %err, "bedrock call failed");
        ErrorInfo::new(err.kind.code(), err.user_message(), err.retryable())
    }
}
