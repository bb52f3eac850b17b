//! The page's calls to the conversation API (browser side, `fetch`).
//!
//! Resources need `Send` futures; the browser's are not, but run on its one
//! thread only, so each is wrapped in a `SendWrapper`.

use super::{Conversation, ConversationSettings, ConversationSummary, RenameRequest, API_PATH};
use crate::chat::{ErrorBody, ErrorInfo};
use gloo_net::http::{Request, Response};
use send_wrapper::SendWrapper;
use std::future::Future;

pub fn list() -> impl Future<Output = Result<Vec<ConversationSummary>, ErrorInfo>> + Send {
    SendWrapper::new(async move {
        let response = Request::get(API_PATH).send().await.map_err(|_| offline())?;
        json(response).await
    })
}

pub fn get(id: String) -> impl Future<Output = Result<Conversation, ErrorInfo>> + Send {
    SendWrapper::new(async move {
        let response = Request::get(&format!("{API_PATH}/{id}"))
            .send()
            .await
            .map_err(|_| offline())?;
        json(response).await
    })
}

pub fn rename(
    id: String,
    title: String,
) -> impl Future<Output = Result<ConversationSummary, ErrorInfo>> + Send {
    SendWrapper::new(async move {
        let response = Request::patch(&format!("{API_PATH}/{id}"))
            .json(&RenameRequest { title })
            .map_err(|_| offline())?
            .send()
            .await
            .map_err(|_| offline())?;
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
            .map_err(|_| offline())?
            .send()
            .await
            .map_err(|_| offline())?;
        json(response).await
    })
}

pub fn delete(id: String) -> impl Future<Output = Result<(), ErrorInfo>> + Send {
    SendWrapper::new(async move {
        let response = Request::delete(&format!("{API_PATH}/{id}"))
            .send()
            .await
            .map_err(|_| offline())?;
        if response.ok() {
            Ok(())
        } else {
            Err(error_of(response).await)
        }
    })
}

async fn json<T: serde::de::DeserializeOwned>(response: Response) -> Result<T, ErrorInfo> {
    if !response.ok() {
        return Err(error_of(response).await);
    }
    response.json().await.map_err(|e| ErrorInfo {
        code: "bad_response".into(),
        message: format!("The server sent an answer this page cannot read ({e}). Reload the page."),
        retryable: true,
    })
}

/// The server's error body, or a sentence made from the status.
pub async fn error_of(response: Response) -> ErrorInfo {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    serde_json::from_str::<ErrorBody>(&body)
        .map(|b| b.error)
        .unwrap_or_else(|_| ErrorInfo {
            code: format!("http_{status}"),
            message: format!("The server answered with status {status}. Try again."),
            retryable: status >= 500,
        })
}

fn offline() -> ErrorInfo {
    ErrorInfo {
        code: "connection_lost".into(),
        message: "The server cannot be reached. Check your network and try again.".into(),
        retryable: true,
    }
}
