//! Server build of the stream client: the page is only rendered here, and
//! event handlers and effects (the only callers) run in the browser alone, so
//! starting or following a stream on the server never happens. This twin
//! keeps the shared view code free of `#[cfg]`s.

use super::{SendRequest, StreamEnd, StreamEvent};
use crate::conversations::EditRequest;

/// Handle of a running answer stream.
pub struct ActiveStream;

impl ActiveStream {
    pub fn stop(&self) {}
    pub fn detach(&self) {}
    pub fn on_reconnecting(&self, _tell: impl Fn(bool) + 'static) {}
}

pub fn start(
    _request: SendRequest,
    _on_event: impl FnMut(StreamEvent) + 'static,
    _on_end: impl FnOnce(StreamEnd) + 'static,
) -> ActiveStream {
    ActiveStream
}

pub fn attach(
    _answer_id: String,
    _on_event: impl FnMut(StreamEvent) + 'static,
    _on_end: impl FnOnce(StreamEnd) + 'static,
) -> ActiveStream {
    ActiveStream
}

pub fn regenerate(
    _conversation_id: String,
    _model_id: Option<String>,
    _on_event: impl FnMut(StreamEvent) + 'static,
    _on_end: impl FnOnce(StreamEnd) + 'static,
) -> ActiveStream {
    ActiveStream
}

pub fn edit(
    _conversation_id: String,
    _request: EditRequest,
    _on_event: impl FnMut(StreamEvent) + 'static,
    _on_end: impl FnOnce(StreamEnd) + 'static,
) -> ActiveStream {
    ActiveStream
}
