//! The answer pipeline's one translation, Bedrock's events into ours
//! ([`AnswerEvents`]), and the two ways our events are framed on the wire:
//! our documented format ([`encode`]) and the seed's ([`SeedFormat`]).
//!
//! Answers to stored conversations are written by [`super::generation`],
//! which frames them with [`encode`]. The compatibility endpoint, which
//! stores nothing, is [`relay`]: a plain stream over the Bedrock event
//! stream, polled by hyper as it writes the response, so each event is
//! framed and handed to the socket as soon as it arrives (no buffering, no
//! task, no lock), and when the client goes away hyper drops the body, which
//! drops the Bedrock stream with it: generation (and billing) stops at once.

use super::{
    Delta, Done, ErrorInfo, Redacted, StreamEvent, ToolCallStarted, ToolFinished, ToolInput, ToolRunning,
    Usage,
};
use crate::{
    bedrock::{BedrockError, ErrorKind, ModelEvent, ModelStream, TokenUsage},
    sse,
};
use bytes::Bytes;
use futures::Stream;
use serde::Serialize;
use std::convert::Infallible;

/// One step of a model's stream, as an answer sees it.
#[derive(Debug)]
pub enum Step {
    /// An event to pass on (a delta, the usage figures).
    Event(StreamEvent),
    /// Nothing to pass on yet (the stop reason, which goes last).
    Nothing,
    /// The model is done: its stop reason, or why it failed.
    End(Result<String, ErrorInfo>),
}

/// Turns a model's events into ours, in the one place this happens. The
/// stop reason comes before the usage figures; it is kept until the end, so
/// that an answer's terminal event is last.
#[derive(Debug, Default)]
pub struct AnswerEvents {
    stop_reason: Option<String>,
}

impl AnswerEvents {
    /// What `next` (the model stream's next item; `None` at its end) means.
    pub fn step(&mut self, next: Option<Result<ModelEvent, BedrockError>>) -> Step {
        match next {
            Some(Ok(ModelEvent::Text(text))) => Step::Event(StreamEvent::Delta(Delta { text })),
            Some(Ok(ModelEvent::Reasoning(text))) => Step::Event(StreamEvent::Reasoning(Delta { text })),
            Some(Ok(ModelEvent::ReasoningRedacted)) => {
                Step::Event(StreamEvent::ReasoningRedacted(Redacted {}))
            }
            Some(Ok(ModelEvent::ToolCall { id, name })) => {
                Step::Event(StreamEvent::ToolCall(ToolCallStarted { id, name }))
            }
            Some(Ok(ModelEvent::ToolInput { id, fragment })) => {
                Step::Event(StreamEvent::ToolInput(ToolInput { id, fragment }))
            }
            Some(Ok(ModelEvent::ToolRunning { id })) => {
                Step::Event(StreamEvent::ToolRunning(ToolRunning { id }))
            }
            Some(Ok(ModelEvent::ToolAwaitingApproval { id })) => {
                Step::Event(StreamEvent::ToolApproval(ToolRunning { id }))
            }
            Some(Ok(ModelEvent::ToolResult { id, result })) => {
                Step::Event(StreamEvent::ToolResult(ToolFinished {
                    id,
                    ok: result.ok,
                    content: result.content,
                    duration_ms: result.duration_ms,
                }))
            }
            Some(Ok(ModelEvent::Stop(reason))) => {
                self.stop_reason = Some(reason.0);
                Step::Nothing
            }
            Some(Ok(ModelEvent::Usage(usage))) => Step::Event(StreamEvent::Usage(usage_of(usage))),
            Some(Err(err)) => Step::End(Err(err.into())),
            None => Step::End(self.stop_reason.take().ok_or_else(|| {
                BedrockError::new(
                    ErrorKind::ConnectionLost,
                    "the stream ended without a stop reason",
                )
                .into()
            })),
        }
    }
}

/// How our events are written on a wire other than our own.
pub trait WireFormat: Send + 'static {
    /// The frame of `event`; `None` when the format has no place for it.
    fn frame(&mut self, event: &StreamEvent) -> Option<Bytes>;
}

/// Frames one event of our documented format (see [`crate::chat`]), with its
/// sequence number as the SSE `id:`.
pub fn encode(id: u64, event: &StreamEvent) -> Bytes {
    match event {
        StreamEvent::Start(s) => sse::encode::event(id, event.name(), s, 256 + s.title.len()),
        StreamEvent::Delta(d) | StreamEvent::Reasoning(d) => {
            sse::encode::event(id, event.name(), d, d.text.len() + 16)
        }
        StreamEvent::ReasoningRedacted(r) => sse::encode::event(id, event.name(), r, 8),
        StreamEvent::ToolCall(c) => sse::encode::event(id, event.name(), c, c.id.len() + c.name.len() + 32),
        StreamEvent::ToolInput(i) => {
            sse::encode::event(id, event.name(), i, i.id.len() + i.fragment.len() + 40)
        }
        StreamEvent::ToolRunning(r) | StreamEvent::ToolApproval(r) => {
            sse::encode::event(id, event.name(), r, r.id.len() + 16)
        }
        StreamEvent::ToolResult(r) => {
            sse::encode::event(id, event.name(), r, r.id.len() + r.content.len() + 64)
        }
        StreamEvent::Usage(u) => sse::encode::event(id, event.name(), u, 96),
        StreamEvent::Error(e) => sse::encode::event(id, event.name(), e, e.message.len() + 64),
        StreamEvent::Done(d) => sse::encode::event(id, event.name(), d, 32),
    }
}

/// Our usage figures from the SDK layer's.
pub fn usage_of(u: TokenUsage) -> Usage {
    Usage {
        input_tokens: u.input_tokens,
        output_tokens: u.output_tokens,
        total_tokens: u.total_tokens,
        latency_ms: u.latency_ms,
        cache_read_tokens: u.cache_read_tokens,
        cache_write_tokens: u.cache_write_tokens,
        cost_nanos: None,
    }
}

/// The wire format of the FastAPI service this app replaces:
/// `data: {"role":"assistant","content":"..."}` per delta, then `data: [DONE]`.
/// Errors keep the keys its client reads and add an `error` object.
#[derive(Debug, Default)]
pub struct SeedFormat;

#[derive(Serialize)]
struct SeedChunk<'a> {
    role: &'static str,
    content: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a ErrorInfo>,
}

const SEED_DONE: &[u8] = b"data: [DONE]\n\n";

impl WireFormat for SeedFormat {
    fn frame(&mut self, event: &StreamEvent) -> Option<Bytes> {
        match event {
            StreamEvent::Delta(delta) => {
                let chunk = SeedChunk {
                    role: "assistant",
                    content: &delta.text,
                    error: None,
                };
                Some(sse::encode::data_only(&chunk, delta.text.len() + 40))
            }
            StreamEvent::Error(error) => {
                let chunk = SeedChunk {
                    role: "assistant",
                    content: "",
                    error: Some(error),
                };
                let mut frame = sse::encode::data_only(&chunk, error.message.len() + 96).to_vec();
                frame.extend_from_slice(SEED_DONE);
                Some(Bytes::from(frame))
            }
            StreamEvent::Done(_) => Some(Bytes::from_static(SEED_DONE)),
            // The seed's client knows only text: not our `start`, usage
            // figures, thinking or tool calls.
            _ => None,
        }
    }
}

/// The response body: the model's events framed by `format`, ending with
/// exactly one `done` or `error`.
pub fn relay<F: WireFormat>(
    model: ModelStream,
    format: F,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send {
    struct State<F> {
        model: Option<ModelStream>,
        format: F,
        events: AnswerEvents,
    }
    let state = State {
        model: Some(model),
        format,
        events: AnswerEvents::default(),
    };
    futures::stream::unfold(state, |mut state| async move {
        loop {
            let next = state.model.as_mut()?.next().await;
            let event = match state.events.step(next) {
                Step::Event(event) => event,
                Step::Nothing => continue,
                Step::End(end) => {
                    state.model = None;
                    match end {
                        Ok(reason) => StreamEvent::Done(Done::new(reason)),
                        Err(info) => StreamEvent::Error(info),
                    }
                }
            };
            if let Some(frame) = state.format.frame(&event) {
                return Some((Ok(frame), state));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{bedrock::StopReason, errors::ErrorCode};

    #[test]
    fn the_stop_reason_waits_for_the_end_and_a_stream_without_one_failed() {
        let mut events = AnswerEvents::default();
        assert!(matches!(
            events.step(Some(Ok(ModelEvent::Text("hi".into())))),
            Step::Event(StreamEvent::Delta(d)) if d.text == "hi"
        ));
        assert!(matches!(
            events.step(Some(Ok(ModelEvent::Stop(StopReason("end_turn".into()))))),
            Step::Nothing
        ));
        assert!(matches!(
            events.step(Some(Ok(ModelEvent::Usage(TokenUsage::default())))),
            Step::Event(StreamEvent::Usage(_))
        ));
        assert!(matches!(events.step(None), Step::End(Ok(reason)) if reason == "end_turn"));

        let mut cut_off = AnswerEvents::default();
        match cut_off.step(None) {
            Step::End(Err(info)) => assert_eq!(info.code, ErrorCode::ConnectionLost),
            other => panic!("expected a failure, got {other:?}"),
        }
    }
}
