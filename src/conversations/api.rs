//! The conversation endpoints (see the table in [`super`]).

use super::{
    check_id, identity::Owner, Conversation, ConversationSettings, ConversationSummary, RenameRequest,
};
use crate::errors::ErrorCode;
use crate::server::{ApiError, AppState};
use axum::{
    body::Bytes,
    extract::{rejection::BytesRejection, Path, State},
    http::StatusCode,
    Extension, Json,
};

/// How many conversations the sidebar lists.
pub const LIST_LIMIT: i64 = 500;

/// `GET /api/conversations`
pub async fn list(
    State(state): State<AppState>,
    Extension(owner): Extension<Owner>,
) -> Result<Json<Vec<ConversationSummary>>, ApiError> {
    Ok(Json(state.store.list(owner.as_str(), LIST_LIMIT).await?))
}

/// `GET /api/conversations/{id}`
pub async fn get(
    State(state): State<AppState>,
    Extension(owner): Extension<Owner>,
    Path(id): Path<String>,
) -> Result<Json<Conversation>, ApiError> {
    check_id(&id)?;
    Ok(Json(state.store.get(owner.as_str(), &id).await?))
}

/// `PATCH /api/conversations/{id}` with `{"title": "..."}`
pub async fn rename(
    State(state): State<AppState>,
    Extension(owner): Extension<Owner>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ConversationSummary>, ApiError> {
    check_id(&id)?;
    let request: RenameRequest = crate::server::parse_json(body, r#"{"title": "New title"}"#)?;
    let title = check_title(&request.title, state.settings.limits.max_title_chars)?;
    Ok(Json(state.store.rename(owner.as_str(), &id, &title).await?))
}

/// `PUT /api/conversations/{id}/settings` with [`ConversationSettings`]:
/// answers with the settings as stored (checked and normalised).
pub async fn save_settings(
    State(state): State<AppState>,
    Extension(owner): Extension<Owner>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ConversationSettings>, ApiError> {
    check_id(&id)?;
    let requested: ConversationSettings = crate::server::parse_json(
        body,
        r#"{"model_id": null, "system_prompt": "Answer briefly.", "temperature": 0.5, "max_tokens": 1024}"#,
    )?;
    let settings = crate::chat::validate::validate_settings(&requested, &state.settings)?;
    state.store.save_settings(owner.as_str(), &id, &settings).await?;
    Ok(Json(settings))
}

/// `DELETE /api/conversations/{id}`
pub async fn delete(
    State(state): State<AppState>,
    Extension(owner): Extension<Owner>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    check_id(&id)?;
    state.store.delete(owner.as_str(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A title as stored: one line, trimmed, not empty, within the limit.
pub fn check_title(title: &str, max_chars: usize) -> Result<String, ApiError> {
    let title = title.split_whitespace().collect::<Vec<_>>().join(" ");
    if title.is_empty() {
        return Err(ApiError::bad_request(
            ErrorCode::EmptyTitle,
            "The title is empty. Type a name for the conversation.",
        ));
    }
    let chars = title.chars().count();
    if chars > max_chars {
        return Err(ApiError::bad_request(
            ErrorCode::TitleTooLong,
            format!("The title is {chars} characters long; the limit is {max_chars}. Shorten it."),
        ));
    }
    if title.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidCharacters,
            "The title contains control characters. Remove them and try again.",
        ));
    }
    Ok(title)
}
