//! The chat endpoints.

use super::{
    relay::{relay, EventStreamFormat, SeedFormat, WireFormat},
    validate::validate,
    ChatRequest,
};
use crate::{
    bedrock::ConverseInput,
    server::{ApiError, AppState},
    sse,
};
use axum::{
    body::{Body, Bytes},
    extract::{rejection::BytesRejection, State},
    http::StatusCode,
    response::Response,
};

/// `POST /api/chat/stream`: answers with our documented event stream.
pub async fn stream_chat(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    start_answer(&state, body, EventStreamFormat::default()).await
}

/// `POST /api/chat`: the same answer in the wire format of the FastAPI
/// service we replace, so its Streamlit client works unchanged.
pub async fn compat_chat(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    start_answer(&state, body, SeedFormat).await
}

/// Validates, calls Bedrock, and streams its answer. Nothing reaches Bedrock
/// unless the request passed validation; errors before the first event are
/// HTTP errors, later ones are events in the stream.
async fn start_answer(
    state: &AppState,
    body: Result<Bytes, BytesRejection>,
    format: impl WireFormat,
) -> Result<Response, ApiError> {
    let request = parse(body, state.settings.limits.max_body_bytes)?;
    let chat = validate(&request, &state.settings)?;
    let bedrock = &state.settings.bedrock;
    let input = ConverseInput {
        model_id: chat.model_id,
        system_prompt: &bedrock.system_prompt,
        turns: chat.turns,
        max_tokens: bedrock.max_tokens,
        temperature: bedrock.temperature,
    };
    let model = state.bedrock.converse_stream(&input).await?;
    Ok(sse::encode::response(Body::from_stream(relay(model, format))))
}

fn parse(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<ChatRequest, ApiError> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_too_large",
                format!("The request is larger than the {limit} bytes this server accepts. Send a shorter conversation."),
                false,
            )
        } else {
            ApiError::bad_request("unreadable_body", format!("The request body could not be read: {rejection}"))
        }
    })?;
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "empty_body",
            r#"The request body is empty. Send JSON like {"messages":[{"role":"user","content":"Hello"}]}."#,
        ));
    }
    serde_json::from_slice(&body).map_err(|err| {
        ApiError::bad_request(
            "malformed_json",
            format!(
                r#"The request body is not a valid chat request ({err}). Send JSON like {{"messages":[{{"role":"user","content":"Hello"}}]}}."#
            ),
        )
    })
}
