//! The HTTP layer's one error type, and the one place errors become statuses.

use crate::{
    bedrock::{BedrockError, ErrorKind},
    chat::{ErrorBody, ErrorInfo},
    conversations::store::{StoreError, StoreErrorKind},
};
use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};

/// An error answered to an HTTP client: a status and an [`ErrorInfo`] body.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub info: ErrorInfo,
    /// Seconds after which the request may succeed (`Retry-After`).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>, retryable: bool) -> Self {
        Self {
            status,
            info: ErrorInfo {
                code: code.to_owned(),
                message: message.into(),
                retryable,
            },
            retry_after: None,
        }
    }

    /// 429: a limit refuses the request for `retry_after`.
    pub fn too_many(code: &str, message: impl Into<String>, retry_after: std::time::Duration) -> Self {
        Self {
            retry_after: Some(retry_after.as_secs_f64().ceil().max(1.0) as u64),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, code, message, true)
        }
    }

    /// A request the client must change before sending again.
    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message, false)
    }
}

impl From<BedrockError> for ApiError {
    fn from(err: BedrockError) -> Self {
        let (status, code) = match err.kind {
            ErrorKind::Throttled => (StatusCode::TOO_MANY_REQUESTS, "throttled"),
            ErrorKind::Validation => (StatusCode::UNPROCESSABLE_ENTITY, "model_rejected_input"),
            // The server's identity is refused upstream: not the user's fault.
            ErrorKind::AccessDenied => (StatusCode::BAD_GATEWAY, "model_access_denied"),
            ErrorKind::ModelUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "model_unavailable"),
            ErrorKind::ServiceUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "bedrock_unavailable"),
            ErrorKind::Timeout => (StatusCode::GATEWAY_TIMEOUT, "model_timeout"),
            ErrorKind::ModelError => (StatusCode::BAD_GATEWAY, "model_error"),
            ErrorKind::ConnectionLost => (StatusCode::BAD_GATEWAY, "connection_lost"),
            ErrorKind::Setup => (StatusCode::BAD_GATEWAY, "bedrock_unreachable"),
        };
        tracing::warn!(error = %err, "bedrock call failed");
        Self::new(status, code, err.user_message(), err.retryable())
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        let (status, code, message, retryable) = match err.kind {
            StoreErrorKind::NotFound => (
                StatusCode::NOT_FOUND,
                "conversation_not_found",
                "This conversation does not exist or was deleted. Pick another one from the list or start a new chat.",
                false,
            ),
            StoreErrorKind::Busy => (
                StatusCode::CONFLICT,
                "conversation_busy",
                "An answer is still being written in this conversation. Wait for it to finish, or stop it, then send again.",
                true,
            ),
            StoreErrorKind::NothingToRetry => (
                StatusCode::CONFLICT,
                "nothing_to_retry",
                "There is no answer to retry in this conversation: send a message instead.",
                false,
            ),
            StoreErrorKind::MessageNotFound => (
                StatusCode::NOT_FOUND,
                "message_not_found",
                "That message is no longer in this conversation (it may have been edited in another tab). Reload the conversation and try again.",
                false,
            ),
            StoreErrorKind::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_unavailable",
                "Conversations cannot be saved or loaded right now because the database is not answering. Try again in a moment.",
                true,
            ),
            StoreErrorKind::ReadOnly => (
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_read_only",
                "Conversations can be read but not saved right now: the database is read-only. Nothing was sent to the model.",
                false,
            ),
            StoreErrorKind::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "storage_error",
                "Something went wrong while saving or loading this conversation. Try again; if it keeps happening, tell the administrator.",
                true,
            ),
        };
        if err.kind != StoreErrorKind::NotFound {
            tracing::warn!(error = %err, "storage error");
        }
        Self::new(status, code, message, retryable)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let request_id = super::access_log::current_request_id();
        let mut response = (
            self.status,
            Json(ErrorBody {
                error: self.info.clone(),
                request_id,
            }),
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        // The access log names the error's code on the request's line.
        response.extensions_mut().insert(ErrorCode(self.info.code));
        response
    }
}

/// The `code` of an error response, for the access log.
#[derive(Debug, Clone)]
pub struct ErrorCode(pub String);

/// Reads a JSON request body, with errors a person can act on. `example` is
/// a valid body, shown in the message.
pub fn parse_json<T: serde::de::DeserializeOwned>(
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
    example: &str,
) -> Result<T, ApiError> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_too_large",
                "The request is larger than this server accepts. Send a shorter message.",
                false,
            )
        } else {
            ApiError::bad_request(
                "unreadable_body",
                format!("The request body could not be read: {rejection}"),
            )
        }
    })?;
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "empty_body",
            format!("The request body is empty. Send JSON like {example}."),
        ));
    }
    serde_json::from_slice(&body).map_err(|err| {
        ApiError::bad_request(
            "malformed_json",
            format!("The request body is not valid here ({err}). Send JSON like {example}."),
        )
    })
}
