//! Server twin of `client.rs`: while rendering a page, the same calls go
//! straight to the store, as the owner of the request being rendered.

use super::{
    api::{check_id, LIST_LIMIT},
    identity::Owner,
    store::Store,
    Conversation, ConversationSettings, ConversationSummary,
};
use crate::{chat::ErrorInfo, server::ApiError};
use axum::http::request::Parts;
use leptos::prelude::use_context;

/// The store and the owner of the request being rendered.
fn scope() -> Result<(Store, Owner), ErrorInfo> {
    let store = use_context::<Store>();
    let owner = use_context::<Parts>().and_then(|parts| parts.extensions.get::<Owner>().cloned());
    match (store, owner) {
        (Some(store), Some(owner)) => Ok((store, owner)),
        _ => Err(ErrorInfo {
            code: "no_request".into(),
            message: "Conversations are only available while serving a request.".into(),
            retryable: false,
        }),
    }
}

/// Passes an error's HTTP status on to the page being rendered.
fn fail(err: ApiError) -> ErrorInfo {
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(err.status);
    }
    err.info
}

pub async fn list() -> Result<Vec<ConversationSummary>, ErrorInfo> {
    let (store, owner) = scope()?;
    store
        .list(owner.as_str(), LIST_LIMIT)
        .await
        .map_err(|e| ApiError::from(e).info)
}

pub async fn get(id: String) -> Result<Conversation, ErrorInfo> {
    let (store, owner) = scope()?;
    check_id(&id).map_err(fail)?;
    store.get(owner.as_str(), &id).await.map_err(|e| fail(e.into()))
}

// Renaming and deleting happen in event handlers, which never run while the
// server renders; these exist so the shared components compile.

pub async fn rename(_id: String, _title: String) -> Result<ConversationSummary, ErrorInfo> {
    Err(browser_only())
}

pub async fn save_settings(
    _id: String,
    _settings: ConversationSettings,
) -> Result<ConversationSettings, ErrorInfo> {
    Err(browser_only())
}

pub async fn delete(_id: String) -> Result<(), ErrorInfo> {
    Err(browser_only())
}

fn browser_only() -> ErrorInfo {
    ErrorInfo {
        code: "browser_only".into(),
        message: "This action is only available in the browser.".into(),
        retryable: false,
    }
}
