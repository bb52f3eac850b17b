//! The chat endpoints.

use super::{
    record::AnswerRecorder,
    relay::{relay, EventStreamFormat, SeedFormat, WireFormat},
    validate::{validate, validate_send},
    ChatRequest, SendRequest, Started,
};
use crate::{
    bedrock::{ConverseInput, Turn},
    chat::Role,
    conversations::{history, identity::Owner, store::NewExchange, title_from_message, MessageStatus},
    server::{parse_json, ApiError, AppState},
    sse,
};
use axum::{
    body::{Body, Bytes},
    extract::{rejection::BytesRejection, State},
    response::Response,
    Extension,
};
use futures::StreamExt as _;
use std::time::Instant;

/// Longest title made from a first message, in characters.
const AUTO_TITLE_CHARS: usize = 60;

const SEND_EXAMPLE: &str = r#"{"content": "Hello", "conversation_id": null}"#;
const COMPAT_EXAMPLE: &str = r#"{"messages": [{"role": "user", "content": "Hello"}]}"#;

/// `POST /api/chat/stream`: stores the user's message, then streams the
/// answer with our documented event stream and stores it when it ends.
pub async fn stream_chat(
    State(state): State<AppState>,
    Extension(owner): Extension<Owner>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let request: SendRequest = parse_json(body, SEND_EXAMPLE)?;
    let send = validate_send(&request, &state.settings)?;
    let limits = &state.settings.limits;

    // Stored before the model is called: whatever happens next, the user's
    // message is not lost.
    let title = title_from_message(send.text, AUTO_TITLE_CHARS.min(limits.max_title_chars));
    let exchange = state
        .store
        .begin_exchange(NewExchange {
            owner: owner.as_str(),
            conversation_id: send.conversation_id,
            title: &title,
            text: send.text,
            model_id: send.model_id,
        })
        .await?;

    let bedrock = &state.settings.bedrock;
    let turns = history::build(
        &exchange.earlier,
        send.text,
        bedrock.history_token_budget,
        limits.max_messages,
    );
    let input = ConverseInput {
        model_id: send.model_id,
        system_prompt: &bedrock.system_prompt,
        turns: turns
            .iter()
            .map(|t| Turn {
                from_user: t.role == Role::User,
                text: &t.text,
            })
            .collect(),
        max_tokens: bedrock.max_tokens,
        temperature: bedrock.temperature,
    };

    let mut format = EventStreamFormat::default();
    let start = format.start(Started {
        conversation_id: exchange.conversation.id.clone(),
        title: exchange.conversation.title.clone(),
        created: exchange.created,
        user_message_id: exchange.user_message_id.clone(),
        answer_id: exchange.answer_id.clone(),
    });
    let mut recorder = AnswerRecorder::new(
        state.store.clone(),
        exchange.answer_id,
        exchange.conversation.id,
        started,
    );
    let body = match state.bedrock.converse_stream(&input).await {
        Ok(model) => {
            let answer = relay(model, format, Some(recorder));
            Body::from_stream(futures::stream::once(async { Ok(start) }).chain(answer))
        }
        Err(err) => {
            // The message is stored and the client needs the conversation's
            // id, so even an error before the first token is an event.
            let info = ApiError::from(err).info;
            let info = match recorder.finish(MessageStatus::Error, Some(info.clone())).await {
                Ok(()) => info,
                Err(storage) => ApiError::from(storage).info,
            };
            let error = format.error(info);
            Body::from_stream(futures::stream::iter([
                Ok::<_, std::convert::Infallible>(start),
                Ok(error),
            ]))
        }
    };
    Ok(sse::encode::response(body))
}

/// `POST /api/chat`: the wire format of the FastAPI service we replace, so
/// its Streamlit client works unchanged. It carries the whole conversation
/// in each request, as that client does; nothing is stored.
pub async fn compat_chat(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: ChatRequest = parse_json(body, COMPAT_EXAMPLE)?;
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
    Ok(sse::encode::response(Body::from_stream(relay(
        model, SeedFormat, None,
    ))))
}
