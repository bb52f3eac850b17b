//! The chat endpoints (see [`crate::chat`] for the stream they answer with).
//!
//! Every event stream they answer with is paced (`sse::pace`): events that
//! come faster than `streams.write_interval_ms` leave together, while the
//! first token and an answer's end are written at once.

use crate::{
    bedrock::{AnswerTools, ConverseInput, ToolLimits, ToolRunner},
    chat::{
        approvals::Approvals,
        generation::{start_frame, AnswerLabels, AnswerSpans, Follow, Reservation},
        record::{AnswerRecorder, AnswerRef},
        relay::{encode, relay, SeedFormat},
        turns::model_turns,
        validate::{check_edit_text, check_time_zone, model_choice, validate, validate_send},
        ChatRequest, ErrorInfo, SendRequest, Started, StreamEvent, ToolDecision,
    },
    conversations::{
        history,
        store::{Exchange, NewExchange},
        title_from_message, ConversationId, EditRequest, MessageId, MessageStatus, Owner,
    },
    errors::ErrorCode,
    server::{
        extract::{Json, JsonBody},
        identity::Requester,
        limits::Ask,
        ApiError, AppState,
    },
    settings::secs,
    sse,
    tools::{self, NeedsApproval, Toolbox},
};
use axum::{
    body::Body,
    extract::{Path, Query, State},
    http::HeaderMap,
    response::Response,
};
use std::{sync::Arc, time::Instant};
use tracing::Instrument;

/// Longest title made from a first message, in characters.
const AUTO_TITLE_CHARS: usize = 60;

/// `POST /api/chat/stream`: stores the user's message, then streams the
/// answer with our documented event stream and stores it when it ends.
pub async fn stream_chat(
    State(state): State<AppState>,
    owner: Owner,
    requester: Requester,
    Json(request): Json<SendRequest>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    refuse_when_shutting_down(&state)?;
    let send = validate_send(&request, &state.settings)?;
    let time_zone = check_time_zone(request.time_zone.as_deref())?;
    let limits = &state.settings.limits;
    let conversation_id = send.conversation_id.as_ref().map(ConversationId::as_str);
    let reservation = admit(&state, &owner, &requester, conversation_id).await?;

    // Stored before the model is called: whatever happens next, the user's
    // message is not lost.
    let title = title_from_message(send.text.as_str(), AUTO_TITLE_CHARS.min(limits.max_title_chars));
    let exchange = state
        .store
        .begin_exchange(NewExchange {
            owner: owner.as_str(),
            conversation_id,
            title: &title,
            text: send.text.as_str(),
            model: send.model,
            settings: send.settings.as_ref(),
        })
        .await?;
    Ok(answer(&state, &owner, exchange, started, reservation, time_zone).await)
}

/// What Retry sends: optionally another model.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegenerateRequest {
    #[serde(default)]
    pub model_id: Option<String>,
    /// The browser's IANA time zone, for the time tool.
    #[serde(default)]
    pub time_zone: Option<String>,
}

impl JsonBody for RegenerateRequest {
    const EXAMPLE: &'static str = r#"{"model_id": null}"#;

    /// No body: the conversation's model.
    fn when_empty() -> Option<Self> {
        Some(Self::default())
    }
}

/// `POST /api/conversations/{id}/regenerate`: a new answer to the last user
/// message (Retry after an error, a stop or an interruption). The earlier
/// answer stays stored; the new one follows it. Answers with the same event
/// stream as `POST /api/chat/stream`.
pub async fn regenerate(
    State(state): State<AppState>,
    owner: Owner,
    requester: Requester,
    conversation_id: ConversationId,
    Json(request): Json<RegenerateRequest>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    refuse_when_shutting_down(&state)?;
    let model = model_choice(request.model_id.as_deref(), &state.settings)?;
    let time_zone = check_time_zone(request.time_zone.as_deref())?;
    let reservation = admit(&state, &owner, &requester, Some(conversation_id.as_str())).await?;
    let exchange = state
        .store
        .begin_regeneration(owner.as_str(), conversation_id.as_str(), model)
        .await?;
    Ok(answer(&state, &owner, exchange, started, reservation, time_zone).await)
}

/// `POST /api/conversations/{id}/edit`: rewrites one of the user's earlier
/// messages and answers it anew; the turns after it are replaced (kept in
/// the store, no longer shown or sent to the model). Answers with the same
/// event stream as `POST /api/chat/stream`.
pub async fn edit(
    State(state): State<AppState>,
    owner: Owner,
    requester: Requester,
    conversation_id: ConversationId,
    Json(request): Json<EditRequest>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    refuse_when_shutting_down(&state)?;
    let message_id = MessageId::parse(&request.message_id)?;
    let text = check_edit_text(&request.content, &state.settings)?;
    let model = model_choice(request.model_id.as_deref(), &state.settings)?;
    let time_zone = check_time_zone(request.time_zone.as_deref())?;
    let reservation = admit(&state, &owner, &requester, Some(conversation_id.as_str())).await?;
    let exchange = state
        .store
        .begin_edit(
            owner.as_str(),
            conversation_id.as_str(),
            message_id.as_str(),
            text.as_str(),
            model,
        )
        .await?;
    Ok(answer(&state, &owner, exchange, started, reservation, time_zone).await)
}

/// The limits' say on one more answer of `owner` (in `conversation`, when it
/// exists); the reservation is held until the answer is stored.
async fn admit(
    state: &AppState,
    owner: &Owner,
    requester: &Requester,
    conversation: Option<&str>,
) -> Result<Reservation, ApiError> {
    state
        .limiter
        .admit(
            &state.generations,
            &state.store,
            owner,
            requester,
            conversation,
            Ask::Stored,
        )
        .await
}

fn refuse_when_shutting_down(state: &AppState) -> Result<(), ApiError> {
    if state.generations.is_closed() {
        return Err(ApiError::new(
            ErrorCode::ShuttingDown,
            "The server is restarting and takes no new messages right now. Send yours again in a moment.",
            true,
        ));
    }
    Ok(())
}

/// Calls the model for a stored exchange and answers with its event stream:
/// `start`, then the generation's events. `reservation` is held until the
/// answer is stored.
async fn answer(
    state: &AppState,
    owner: &Owner,
    exchange: Exchange,
    started: Instant,
    reservation: Reservation,
    time_zone: Option<String>,
) -> Response {
    reservation.claim(&exchange.conversation.id, &exchange.answer_id);
    let approvals = Approvals::default();
    let (input, runner) = model_input(state, owner, &exchange, time_zone.clone(), &approvals, true);
    let started_event = Started {
        conversation_id: exchange.conversation.id.clone(),
        title: exchange.conversation.title.clone(),
        created: exchange.created,
        user_message_id: exchange.user_message_id.clone(),
        answer_id: exchange.answer_id.clone(),
    };
    let mut recorder = AnswerRecorder::new(
        state.store.clone(),
        AnswerRef {
            owner: owner.0.clone(),
            day: state.limiter.clock().today(),
            answer_id: exchange.answer_id.clone(),
            conversation_id: exchange.conversation.id.clone(),
        },
        started,
        state.generations.timing().checkpoints(),
    );
    let labels = AnswerLabels {
        owner_tag: state.identity.owner_tag(owner),
        conversation_id: exchange.conversation.id.clone(),
        model_id: exchange.model_id.clone(),
        price: state.settings.pricing.price_of(&exchange.model_id),
        currency: state.settings.pricing.currency.clone(),
        spans: AnswerSpans::new(&exchange.model_id, &exchange.answer_id),
    };
    labels.count_started();
    let start = start_frame(started_event);
    let offered_tools = !input.tools.is_empty();
    let mut model = state
        .bedrock
        .answer(input, runner)
        .instrument(labels.spans.bedrock.clone())
        .await;
    if offered_tools && matches!(&model, Err(err) if err.refuses_tools()) {
        // The model takes no tools: it answers without them (its history's
        // tool calls as text).
        tracing::info!(model = %exchange.model_id, "the model takes no tools; answering without them");
        let (input, _) = model_input(state, owner, &exchange, time_zone, &approvals, false);
        model = state.bedrock.answer(input, None).await;
    }
    let body = match model {
        Ok(model) => {
            // The answer is written by a task of its own; this response is
            // its first listener, and others may join or resume.
            let generation = state.generations.start(
                owner.as_str(),
                exchange.answer_id,
                start,
                model,
                recorder,
                reservation,
                labels,
                approvals,
            );
            let timing = state.generations.timing();
            Body::from_stream(generation.listen(0, timing.keep_alive, timing.write_interval))
        }
        Err(err) => {
            // The message is stored and the client needs the conversation's
            // id, so even an error before the first token is an event.
            let info = ErrorInfo::from(err);
            labels.spans.record_stop(None, Some(info.code.as_str()));
            let info = match recorder.finish(MessageStatus::Error, Some(info.clone())).await {
                Ok(()) => info,
                Err(storage) => ErrorInfo::from(storage),
            };
            let (first_token_ms, duration_ms) = recorder.timings();
            labels.log_finished(
                info.code.as_str(),
                Default::default(),
                first_token_ms,
                duration_ms.unwrap_or_default(),
                0,
            );
            drop(reservation);
            let error = encode(2, &StreamEvent::Error(info));
            let events = [Ok::<_, std::convert::Infallible>(start), Ok(error)];
            Body::from_stream(futures::stream::iter(events))
        }
    };
    sse::encode::response(body)
}

/// `GET /api/generations/{answer_id}/events`: the answer's events after the
/// last one the client saw (`Last-Event-ID` header, or `last_event_id` in the
/// query for fetch-based clients), then live ones until it ends.
pub async fn resume(
    State(state): State<AppState>,
    owner: Owner,
    answer_id: MessageId,
    Query(query): Query<ResumeQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let header = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let last: usize = match query.last_event_id.as_deref().or(header) {
        None => 0,
        Some(raw) => raw.trim().parse().map_err(|_| bad_event_id(raw))?,
    };
    // From this instance's memory, or from the database when another
    // instance writes the answer.
    match state
        .generations
        .follow(owner.as_str(), answer_id.as_str(), last)
        .await?
    {
        Follow::Events(events) => {
            metrics::counter!(crate::telemetry::RESUMES).increment(1);
            Ok(sse::encode::response(Body::from_stream(events)))
        }
        Follow::BadEventId => Err(bad_event_id(&last.to_string())),
        Follow::Gone => Err(generation_gone()),
    }
}

#[derive(Debug, serde::Deserialize)]
pub struct ResumeQuery {
    last_event_id: Option<String>,
}

/// What `cancel` answers.
#[derive(Debug, serde::Serialize)]
pub struct CancelOutcome {
    /// Whether this request stopped the answer (false: it had already ended).
    pub cancelled: bool,
    pub message: &'static str,
}

/// `POST /api/generations/{answer_id}/cancel`: stops the answer. Idempotent:
/// cancelling a finished answer changes nothing and says so.
pub async fn cancel(
    State(state): State<AppState>,
    owner: Owner,
    answer_id: MessageId,
) -> Result<Json<CancelOutcome>, ApiError> {
    // Whichever instance writes the answer stops it.
    let cancelled = match state.generations.stop(owner.as_str(), answer_id.as_str()).await? {
        Some(cancelled) => cancelled,
        None => {
            // Not running here: it must be one of the owner's stored answers.
            state
                .store
                .message_status(owner.as_str(), answer_id.as_str())
                .await?;
            false
        }
    };
    Ok(Json(CancelOutcome {
        cancelled,
        message: if cancelled {
            "The answer is being stopped."
        } else {
            "This answer had already finished; nothing was changed."
        },
    }))
}

/// What `decide` answers.
#[derive(Debug, serde::Serialize)]
pub struct DecisionOutcome {
    pub approved: bool,
    pub message: &'static str,
}

impl JsonBody for ToolDecision {
    const EXAMPLE: &'static str = r#"{"approve": true}"#;
}

/// `POST /api/generations/{answer_id}/tools/{call_id}`: Approve or Deny a
/// call that waits for the user. 409 when that call is not waiting (decided
/// already, in another tab perhaps, or timed out).
pub async fn decide(
    State(state): State<AppState>,
    owner: Owner,
    Path((answer_id, call_id)): Path<(String, String)>,
    Json(decision): Json<ToolDecision>,
) -> Result<Json<DecisionOutcome>, ApiError> {
    let answer_id = MessageId::parse(&answer_id)?;
    let plausible = !call_id.is_empty()
        && call_id.len() <= 128
        && call_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    // Whichever instance writes the answer takes the decision.
    let waiting = match plausible {
        true => state
            .generations
            .decide(owner.as_str(), answer_id.as_str(), &call_id, decision.approve)
            .await?
            .ok_or_else(generation_gone)?,
        false => false,
    };
    if !waiting {
        return Err(ApiError::new(
            ErrorCode::NotAwaitingApproval,
            "This tool call is not waiting for a decision: it was decided already (perhaps in another tab) or its time ran out.",
            false,
        ));
    }
    Ok(Json(DecisionOutcome {
        approved: decision.approve,
        message: if decision.approve {
            "The call runs."
        } else {
            "The call was declined; the model is told so."
        },
    }))
}

/// What the model is sent for a stored exchange, with the conversation's
/// own settings where it has them, and what runs its tools.
fn model_input(
    state: &AppState,
    owner: &Owner,
    exchange: &Exchange,
    time_zone: Option<String>,
    approvals: &Approvals,
    with_tools: bool,
) -> (ConverseInput, Option<AnswerTools>) {
    let bedrock = &state.settings.bedrock;
    let offered = &state.settings.tools;
    let chosen = &exchange.settings;
    let history = history::build(
        &exchange.earlier,
        &exchange.user_text,
        bedrock.history_token_budget,
        state.settings.limits.max_messages,
    );
    // Tools the operator still offers, of those the conversation chose.
    let tool_names: Vec<String> = chosen
        .tools
        .as_ref()
        .unwrap_or(&offered.on_by_default)
        .iter()
        .filter(|name| offered.offers(name))
        .cloned()
        .collect();
    let tool_names = if with_tools { tool_names } else { Vec::new() };
    let tools = tools::specs(&tool_names, &state.mcp);
    let mut max_tokens = chosen
        .max_tokens
        .and_then(|n| i32::try_from(n).ok())
        .unwrap_or(bedrock.max_tokens);
    // Thinking only with a model that can; Bedrock refuses a temperature
    // then, and a budget that is not under max tokens (saved settings are
    // checked for that, but the default max tokens may have changed since).
    let reasoning_budget = chosen
        .thinking_budget
        .filter(|_| bedrock.can_think(&exchange.model_id));
    if let Some(budget) = reasoning_budget {
        let budget = i32::try_from(budget).unwrap_or(i32::MAX / 2);
        if max_tokens <= budget {
            max_tokens = budget.saturating_add(bedrock.max_tokens);
        }
    }
    let runner = (!tools.is_empty()).then(|| {
        let settings = state.settings.clone();
        let toolbox: Arc<dyn ToolRunner> = Arc::new(
            Toolbox::new(
                state.store.clone(),
                state.mcp.clone(),
                owner.as_str(),
                &exchange.conversation.id,
                time_zone,
            )
            .fetch_private(offered.fetch_allow_private)
            .with_approvals(NeedsApproval {
                approvals: approvals.clone(),
                needs: Arc::new(move |name| settings.tools.needs_approval(name)),
                timeout: secs(offered.approval_timeout_secs),
            }),
        );
        let limits = ToolLimits {
            max_rounds: offered.max_rounds,
            timeout: secs(offered.timeout_secs),
            max_result_chars: offered.max_result_chars,
        };
        (toolbox, limits)
    });
    let input = ConverseInput {
        model_id: exchange.model_id.clone(),
        system_prompt: chosen
            .system_prompt
            .clone()
            .unwrap_or_else(|| bedrock.system_prompt.clone()),
        turns: model_turns(&history, !tools.is_empty()),
        max_tokens,
        temperature: match reasoning_budget {
            Some(_) => None,
            None => Some(chosen.temperature.unwrap_or(bedrock.temperature)),
        },
        reasoning_budget,
        tools,
        cache: bedrock.caches(&exchange.model_id),
    };
    (input, runner)
}

/// Holds what a compatibility stream owns while it is written.
struct CompatAnswer {
    _reservation: Reservation,
    labels: AnswerLabels,
    started: Instant,
}

impl Drop for CompatAnswer {
    fn drop(&mut self) {
        // The relay reads no usage for its wire format: none to log.
        let duration_ms = self.started.elapsed().as_millis() as u64;
        self.labels
            .log_finished("relayed", Default::default(), None, duration_ms, 0);
    }
}

fn bad_event_id(raw: &str) -> ApiError {
    ApiError::bad_request(
        ErrorCode::BadLastEventId,
        format!("{raw:?} is not the id of an event of this answer. Resume from an id you received."),
    )
}

fn generation_gone() -> ApiError {
    ApiError::new(
        ErrorCode::GenerationNotFound,
        "This answer is no longer being written. Reload the conversation to see it.",
        false,
    )
}

/// `POST /api/chat`: the wire format of the FastAPI service we replace, so
/// its Streamlit client works unchanged. It carries the whole conversation
/// in each request, as that client does; nothing is stored. The history
/// budget, the limits (but no new-owner count: nothing is stored for an
/// owner) and the answer log apply as to the page's endpoint; it is
/// refused during shutdown and counted by the drain; `server.compat_api`
/// turns it off.
pub async fn compat_chat(
    State(state): State<AppState>,
    owner: Owner,
    requester: Requester,
    Json(request): Json<ChatRequest>,
) -> Result<Response, ApiError> {
    if !state.settings.server.compat_api {
        return Err(ApiError::new(
            ErrorCode::CompatApiOff,
            "The compatibility endpoint is turned off on this server. Use POST /api/chat/stream instead.",
            false,
        ));
    }
    refuse_when_shutting_down(&state)?;
    let chat = validate(&request, &state.settings)?;
    let reservation = state
        .limiter
        .admit(
            &state.generations,
            &state.store,
            &owner,
            &requester,
            None,
            Ask::Compat,
        )
        .await?;
    let bedrock = &state.settings.bedrock;
    let turns = history::trim(
        chat.turns,
        bedrock.history_token_budget,
        state.settings.limits.max_messages,
    );
    // The seed's client knows only text: no tools, no thinking.
    let input = ConverseInput {
        cache: bedrock.caches(chat.model_id),
        ..ConverseInput::text(
            chat.model_id,
            &bedrock.system_prompt,
            model_turns(&turns, false),
            bedrock.max_tokens,
            bedrock.temperature,
        )
    };
    let model = state.bedrock.converse_stream(&input).await?;
    let labels = AnswerLabels {
        owner_tag: state.identity.owner_tag(&owner),
        conversation_id: "(compat)".to_owned(),
        model_id: chat.model_id.to_owned(),
        // The seed's format reads no usage: nothing to price.
        price: None,
        currency: state.settings.pricing.currency.clone(),
        spans: AnswerSpans::none(),
    };
    labels.count_started();
    // The reservation lives as long as the stream (the limits and the
    // shutdown drain count it); the answer's log line is written when the
    // stream ends or its client goes away.
    let guard = CompatAnswer {
        _reservation: reservation,
        labels,
        started: Instant::now(),
    };
    let logged = futures::StreamExt::map(relay(model, SeedFormat), move |frame| {
        let _ = &guard;
        frame
    });
    let paced = sse::pace::paced(logged, state.generations.timing().write_interval);
    Ok(sse::encode::response(Body::from_stream(paced)))
}
