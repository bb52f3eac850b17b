//! Relays a model's answer to an HTTP client as SSE, in one of two wire formats.
//!
//! The relay is a plain stream over the Bedrock event stream, polled by hyper
//! as it writes the response: each event is framed and handed to the socket
//! as soon as it arrives (no buffering, no task, no lock), and when the client
//! goes away hyper drops the body, which drops the Bedrock stream with it, so
//! generation (and billing) stops at once.
//!
//! Answers to stored conversations go through [`super::generation`] instead,
//! which frames events with [`encode`]; this relay serves the compatibility
//! endpoint, which stores nothing.

use super::{ErrorInfo, StreamEvent, Usage};
use crate::{
    bedrock::{BedrockError, ErrorKind, ModelEvent, ModelStream, StopReason, TokenUsage},
    sse,
};
use bytes::Bytes;
use futures::Stream;
use serde::Serialize;
use std::convert::Infallible;

/// How answer events are written on the wire.
pub trait WireFormat: Send + 'static {
    fn delta(&mut self, text: String) -> Bytes;
    /// `None` when the format has no place for usage figures.
    fn usage(&mut self, usage: TokenUsage) -> Option<Bytes>;
    fn error(&mut self, error: ErrorInfo) -> Bytes;
    fn done(&mut self, stop: StopReason) -> Bytes;
}

/// Frames one event of our documented format (see [`crate::chat`]), with its
/// sequence number as the SSE `id:`.
pub fn encode(id: u64, event: &StreamEvent) -> Bytes {
    match event {
        StreamEvent::Start(s) => sse::encode::event(id, event.name(), s, 256 + s.title.len()),
        StreamEvent::Delta(d) => sse::encode::event(id, event.name(), d, d.text.len() + 16),
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
    fn delta(&mut self, text: String) -> Bytes {
        let chunk = SeedChunk {
            role: "assistant",
            content: &text,
            error: None,
        };
        sse::encode::data_only(&chunk, text.len() + 40)
    }
    fn usage(&mut self, _: TokenUsage) -> Option<Bytes> {
        None
    }
    fn error(&mut self, error: ErrorInfo) -> Bytes {
        let chunk = SeedChunk {
            role: "assistant",
            content: "",
            error: Some(&error),
        };
        let mut frame = sse::encode::data_only(&chunk, error.message.len() + 96).to_vec();
        frame.extend_from_slice(SEED_DONE);
        Bytes::from(frame)
    }
    fn done(&mut self, _: StopReason) -> Bytes {
        Bytes::from_static(SEED_DONE)
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
        stop: Option<StopReason>,
    }
    let state = State {
        model: Some(model),
        format,
        stop: None,
    };
    futures::stream::unfold(state, |mut state| async move {
        loop {
            let model = state.model.as_mut()?;
            let frame = match model.next().await {
                Some(Ok(ModelEvent::Text(text))) => state.format.delta(text),
                Some(Ok(ModelEvent::Stop(reason))) => {
                    // Usage follows the stop; `done` goes last.
                    state.stop = Some(reason);
                    continue;
                }
                Some(Ok(ModelEvent::Usage(usage))) => match state.format.usage(usage) {
                    Some(frame) => frame,
                    None => continue,
                },
                Some(Err(err)) => {
                    state.model = None;
                    state.format.error(ErrorInfo::from(err))
                }
                None => {
                    state.model = None;
                    match state.stop.take() {
                        Some(reason) => state.format.done(reason),
                        None => state.format.error(
                            BedrockError::new(
                                ErrorKind::ConnectionLost,
                                "the stream ended without a stop reason",
                            )
                            .into(),
                        ),
                    }
                }
            };
            return Some((Ok(frame), state));
        }
    })
}
