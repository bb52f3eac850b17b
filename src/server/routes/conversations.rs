//! The conversation endpoints (see the table in [`crate::conversations`]).

use crate::{
    conversations::{
        Conversation, ConversationId, ConversationSettings, ConversationSummary, Owner, RenameRequest, Title,
    },
    server::{extract::Json, ApiError, AppState},
};
use axum::{extract::State, http::StatusCode};

/// `GET /api/conversations`
pub async fn list(
    State(state): State<AppState>,
    owner: Owner,
) -> Result<Json<Vec<ConversationSummary>>, ApiError> {
    Ok(Json(
        state
            .store
            .list(owner.as_str(), crate::conversations::LIST_LIMIT)
            .await?,
    ))
}

/// `GET /api/conversations/{id}`
pub async fn get(
    State(state): State<AppState>,
    owner: Owner,
    id: ConversationId,
) -> Result<Json<Conversation>, ApiError> {
    Ok(Json(state.store.get(owner.as_str(), id.as_str()).await?))
}

/// `PATCH /api/conversations/{id}` with `{"title": "..."}`
pub async fn rename(
    State(state): State<AppState>,
    owner: Owner,
    id: ConversationId,
    Json(request): Json<RenameRequest>,
) -> Result<Json<ConversationSummary>, ApiError> {
    let title = Title::parse(&request.title, state.settings.limits.max_title_chars)?;
    Ok(Json(
        state
            .store
            .rename(owner.as_str(), id.as_str(), title.as_str())
            .await?,
    ))
}

/// `PUT /api/conversations/{id}/settings` with [`ConversationSettings`]:
/// answers with the settings as stored (checked and normalised).
pub async fn save_settings(
    State(state): State<AppState>,
    owner: Owner,
    id: ConversationId,
    Json(requested): Json<ConversationSettings>,
) -> Result<Json<ConversationSettings>, ApiError> {
    let settings = crate::chat::validate::validate_settings(&requested, &state.settings)?;
    state
        .store
        .save_settings(owner.as_str(), id.as_str(), &settings)
        .await?;
    Ok(Json(settings))
}

/// `DELETE /api/conversations/{id}`
pub async fn delete(
    State(state): State<AppState>,
    owner: Owner,
    id: ConversationId,
) -> Result<StatusCode, ApiError> {
    state.store.delete(owner.as_str(), id.as_str()).await?;
    Ok(StatusCode::NO_CONTENT)
}
