//! The page's calls for conversations.
//!
//! Reading (the list and one conversation) is what the page renders from, on
//! the server and in the browser alike, so those two are server functions:
//! called directly while the server renders, over `GET /api/page/…` from the
//! browser. Changes (rename, settings, delete) happen in event handlers only
//! and call the public JSON API ([`super::API_PATH`]) with `fetch`, so the
//! page uses the same API as every other client.
//!
//! Resources need `Send` futures; the browser's are not, but run on its one
//! thread only, so each is wrapped in a `SendWrapper`.

use super::{Conversation, ConversationSettings, ConversationSummary, RenameRequest, API_PATH};
use crate::errors::{ErrorBody, ErrorCode, ErrorInfo};
use gloo_net::http::{Request, Response};
use leptos::{server, server_fn::codec::GetUrl};
use send_wrapper::SendWrapper;
use std::future::Future;

/// The caller's conversations, newest first.
#[server(prefix = "/api/page", endpoint = "conversations", input = GetUrl)]
pub async fn list_conversations() -> Result<Vec<ConversationSummary>, ErrorInfo> {
    let (store, owner) = rendering::scope()?;
    // The list failing is no reason to fail the page around it: no status.
    store
        .list(owner.as_str(), super::LIST_LIMIT)
        .await
        .map_err(ErrorInfo::from)
}

/// One of the caller's conversations as the page opens it: its newest
/// [`super::TRANSCRIPT_PAGE`] messages. Someone else's is not found, exactly
/// as a missing one.
#[server(prefix = "/api/page", endpoint = "conversation", input = GetUrl)]
pub async fn get_conversation(id: String) -> Result<Conversation, ErrorInfo> {
    Ok(rendering::page_of(&id, None)
        .await?
        .expect("the newest page always exists"))
}

/// The page of one of the caller's conversations before its message
/// `before` (the oldest on screen): "Show earlier messages".
#[server(prefix = "/api/page", endpoint = "earlier", input = GetUrl)]
pub async fn earlier_messages(id: String, before: String) -> Result<Conversation, ErrorInfo> {
    rendering::page_of(&id, Some(&before)).await?.ok_or_else(|| {
        rendering::fail(ErrorInfo::new(
            ErrorCode::MessageNotFound,
            "That message is not in this conversation any more. Reload the page to see it as it is now.",
            false,
        ))
    })
}

/// What the caller used today and this month (UTC), by model: the same
/// figures, stored with each answer, that the daily token budget counts.
#[server(prefix = "/api/page", endpoint = "usage", input = GetUrl)]
pub async fn usage_report() -> Result<super::UsageReport, ErrorInfo> {
    let (store, owner) = rendering::scope()?;
    let today = crate::conversations::store::now_ms().div_euclid(86_400_000);
    store
        .usage_report(owner.as_str(), super::usage::first_day_of_month(today), today)
        .await
        .map_err(rendering::fail)
}

/// What the server functions need from the request being served.
#[cfg(feature = "ssr")]
mod rendering {
    use crate::{
        conversations::{store::Store, Conversation, ConversationId, Owner, TRANSCRIPT_PAGE},
        errors::{ErrorCode, ErrorInfo},
    };
    use axum::http::{request::Parts, StatusCode};
    use leptos::prelude::use_context;

    /// The store and the owner of the request being served.
    pub fn scope() -> Result<(Store, Owner), ErrorInfo> {
        let store = use_context::<Store>();
        let owner = use_context::<Parts>().and_then(|parts| parts.extensions.get::<Owner>().cloned());
        match (store, owner) {
            (Some(store), Some(owner)) => Ok((store, owner)),
            _ => Err(ErrorInfo::new(
                ErrorCode::ServerError,
                "Conversations are only available while serving a request.",
                false,
            )),
        }
    }

    /// One of the caller's conversations as a page of [`TRANSCRIPT_PAGE`]
    /// messages before `before` (`None` when that is not one of its
    /// messages); someone else's is not found, exactly as a missing one.
    pub async fn page_of(id: &str, before: Option<&str>) -> Result<Option<Conversation>, ErrorInfo> {
        let (store, owner) = scope()?;
        let id = ConversationId::parse(id).map_err(fail)?;
        store
            .page(owner.as_str(), id.as_str(), before, TRANSCRIPT_PAGE)
            .await
            .map_err(fail)
    }

    /// Passes an error's HTTP status on to the response (the page being
    /// rendered, or the server function's own answer).
    pub fn fail(err: impl Into<ErrorInfo>) -> ErrorInfo {
        let info = err.into();
        if let (Some(response), Ok(status)) = (
            use_context::<leptos_axum::ResponseOptions>(),
            StatusCode::from_u16(info.code.status()),
        ) {
            response.set_status(status);
        }
        info
    }
}

pub fn rename(
    id: String,
    title: String,
) -> impl Future<Output = Result<ConversationSummary, ErrorInfo>> + Send {
    SendWrapper::new(async move {
        let response = Request::patch(&format!("{API_PATH}/{id}"))
            .json(&RenameRequest { title })
            .map_err(|_| ErrorInfo::offline())?
            .send()
            .await
            .map_err(|_| ErrorInfo::offline())?;
        json(response).await
    })
}

/// Stores a conversation's settings; answers with them as stored.
pub fn save_settings(
    id: String,
    settings: ConversationSettings,
) -> impl Future<Output = Result<ConversationSettings, ErrorInfo>> + Send {
    SendWrapper::new(async move {
        let response = Request::put(&format!("{API_PATH}/{id}/settings"))
            .json(&settings)
            .map_err(|_| ErrorInfo::offline())?
            .send()
            .await
            .map_err(|_| ErrorInfo::offline())?;
        json(response).await
    })
}

/// Approves or denies a tool call of an answer that waits for the user.
pub fn decide(
    answer_id: String,
    call_id: String,
    approve: bool,
) -> impl Future<Output = Result<(), ErrorInfo>> + Send {
    SendWrapper::new(async move {
        let response = Request::post(&format!(
            "{}/{answer_id}/tools/{call_id}",
            crate::chat::GENERATIONS_PATH
        ))
        .json(&crate::chat::ToolDecision { approve })
        .map_err(|_| ErrorInfo::offline())?
        .send()
        .await
        .map_err(|_| ErrorInfo::offline())?;
        nothing(response).await
    })
}

pub fn delete(id: String) -> impl Future<Output = Result<(), ErrorInfo>> + Send {
    SendWrapper::new(async move {
        let response = Request::delete(&format!("{API_PATH}/{id}"))
            .send()
            .await
            .map_err(|_| ErrorInfo::offline())?;
        nothing(response).await
    })
}

/// A success without a body, or the server's error.
async fn nothing(response: Response) -> Result<(), ErrorInfo> {
    if response.ok() {
        Ok(())
    } else {
        Err(error_of(response).await)
    }
}

async fn json<T: serde::de::DeserializeOwned>(response: Response) -> Result<T, ErrorInfo> {
    if !response.ok() {
        return Err(error_of(response).await);
    }
    response.json().await.map_err(|e| ErrorInfo::unreadable(&e))
}

/// The server's error body, or a sentence made from the status.
pub async fn error_of(response: Response) -> ErrorInfo {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    serde_json::from_str::<ErrorBody>(&body)
        .map(|b| b.error)
        .unwrap_or_else(|_| {
            ErrorInfo::new(
                ErrorCode::UnexpectedStatus,
                format!("The server answered with status {status}. Try again."),
                status >= 500,
            )
        })
}
