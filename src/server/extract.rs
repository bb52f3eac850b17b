//! What handlers take from a request, refused with our error format when it
//! is not there or not valid: JSON bodies ([`Json`]), ids in the path
//! ([`ConversationId`], [`MessageId`]), and who is asking ([`Owner`],
//! [`Requester`], put in the request by the identity middleware).
//!
//! Our own `Json` rather than axum's (the shape of axum's
//! `customize-extractor-error` example): an empty body, a body too large, and
//! JSON that does not fit get different codes, and the sentence shows a
//! valid body.

use super::{identity::Requester, ApiError};
use crate::{
    chat::{ChatRequest, SendRequest},
    conversations::{ConversationId, ConversationSettings, EditRequest, MessageId, Owner, RenameRequest},
    errors::ErrorCode,
};
use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Path, Request},
    http::{request::Parts, StatusCode},
    response::{IntoResponse, Response},
};
use serde::{de::DeserializeOwned, Serialize};

/// A JSON request body, or a JSON response.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

/// A type a request body can hold.
pub trait JsonBody: DeserializeOwned {
    /// A valid body, shown in the refusal of an invalid one.
    const EXAMPLE: &'static str;

    /// What an empty body means, when it may be empty.
    fn when_empty() -> Option<Self> {
        None
    }
}

impl<S: Send + Sync, T: JsonBody> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let body = Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    ErrorCode::RequestTooLarge,
                    "The request is larger than this server accepts. Send a shorter message.",
                    false,
                )
            } else {
                ApiError::bad_request(
                    ErrorCode::UnreadableBody,
                    format!("The request body could not be read: {rejection}"),
                )
            }
        })?;
        if body.is_empty() {
            return T::when_empty().map(Json).ok_or_else(|| {
                ApiError::bad_request(
                    ErrorCode::EmptyBody,
                    format!("The request body is empty. Send JSON like {}.", T::EXAMPLE),
                )
            });
        }
        serde_json::from_slice(&body).map(Json).map_err(|err| {
            ApiError::bad_request(
                ErrorCode::MalformedJson,
                format!(
                    "The request body is not valid here ({err}). Send JSON like {}.",
                    T::EXAMPLE
                ),
            )
        })
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

impl JsonBody for SendRequest {
    const EXAMPLE: &'static str = r#"{"content": "Hello", "conversation_id": null}"#;
}

impl JsonBody for ChatRequest {
    const EXAMPLE: &'static str = r#"{"messages": [{"role": "user", "content": "Hello"}]}"#;
}

impl JsonBody for EditRequest {
    const EXAMPLE: &'static str = r#"{"message_id": "<id of your earlier message>", "content": "New text"}"#;
}

impl JsonBody for RenameRequest {
    const EXAMPLE: &'static str = r#"{"title": "New title"}"#;
}

impl JsonBody for ConversationSettings {
    const EXAMPLE: &'static str =
        r#"{"model_id": null, "system_prompt": "Answer briefly.", "temperature": 0.5, "max_tokens": 1024}"#;
}

/// `{id}` in the path, as a conversation's id.
impl<S: Send + Sync> FromRequestParts<S> for ConversationId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        from_path(parts, state, ConversationId::parse).await
    }
}

/// `{id}` in the path, as a message's (an answer's) id.
impl<S: Send + Sync> FromRequestParts<S> for MessageId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        from_path(parts, state, MessageId::parse).await
    }
}

/// The route's one path parameter, parsed; an absent one is parsed as empty
/// (and so refused).
async fn from_path<S: Send + Sync, T>(
    parts: &mut Parts,
    state: &S,
    parse: fn(&str) -> Result<T, crate::errors::ErrorInfo>,
) -> Result<T, ApiError> {
    let raw = Path::<String>::from_request_parts(parts, state)
        .await
        .map(|Path(raw)| raw)
        .unwrap_or_default();
    Ok(parse(&raw)?)
}

impl<S: Send + Sync> FromRequestParts<S> for Owner {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts.extensions.get::<Owner>().cloned().ok_or_else(no_identity)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Requester {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Requester>()
            .copied()
            .ok_or_else(no_identity)
    }
}

/// A route mounted outside the identity middleware: a bug of ours.
fn no_identity() -> ApiError {
    ApiError::new(
        ErrorCode::ServerError,
        "The server could not tell who sent this request. Try again; if it keeps happening, tell the administrator.",
        false,
    )
}
