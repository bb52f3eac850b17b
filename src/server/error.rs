//! The HTTP layer's one error type, and the one place errors become statuses.

use crate::{
    bedrock::{BedrockError, ErrorKind},
    chat::{ErrorBody, ErrorInfo},
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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(ErrorBody { error: self.info })).into_response()
    }
}
