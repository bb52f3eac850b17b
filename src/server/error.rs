//! The HTTP layer's one error type, and the one place errors become
//! responses. Statuses come from the error's code ([`ErrorCode::status`]).

use crate::{
    chat::{ErrorBody, ErrorInfo},
    errors::ErrorCode,
};
use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};

/// An error answered to an HTTP client: an [`ErrorInfo`] body with the
/// status of its code.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub info: ErrorInfo,
    /// Seconds after which the request may succeed (`Retry-After`).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>, retryable: bool) -> Self {
        ErrorInfo::new(code, message, retryable).into()
    }

    /// 429: a limit refuses the request for `retry_after`.
    pub fn too_many(code: ErrorCode, message: impl Into<String>, retry_after: std::time::Duration) -> Self {
        Self {
            retry_after: Some(retry_after.as_secs_f64().ceil().max(1.0) as u64),
            ..Self::new(code, message, true)
        }
    }

    /// A request the client must change before sending again.
    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(code, message, false)
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.info.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl From<ErrorInfo> for ApiError {
    fn from(info: ErrorInfo) -> Self {
        Self {
            info,
            retry_after: None,
        }
    }
}

impl From<crate::bedrock::BedrockError> for ApiError {
    fn from(err: crate::bedrock::BedrockError) -> Self {
        ErrorInfo::from(err).into()
    }
}

impl From<crate::conversations::store::StoreError> for ApiError {
    fn from(err: crate::conversations::store::StoreError) -> Self {
        ErrorInfo::from(err).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let request_id = super::access_log::current_request_id();
        let mut response = (
            self.status(),
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
        if self.info.code.is_limit() {
            metrics::counter!(crate::telemetry::LIMIT_REFUSALS, "kind" => self.info.code.as_str())
                .increment(1);
        }
        // The access log names the error's code on the request's line.
        response.extensions_mut().insert(LoggedCode(self.info.code));
        response
    }
}

/// The `code` of an error response, for the access log.
#[derive(Debug, Clone, Copy)]
pub struct LoggedCode(pub ErrorCode);
