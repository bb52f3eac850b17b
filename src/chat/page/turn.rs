//! One message of the transcript, and how a streaming answer is drawn.
//!
//! An answer is Markdown rendered block by block as it streams
//! ([`crate::markdown`]): finished blocks are appended once, and only the
//! unfinished last block is redrawn per delta, so the work per delta is
//! proportional to that block, not to the answer or the transcript.

use crate::{
    chat::{ErrorInfo, Role, StreamEnd, StreamEvent, Usage, STOPPED_REASON},
    conversations::MessageStatus,
    markdown::{StreamRenderer, TailUpdate, Update as MarkdownUpdate},
};
use leptos::{html, prelude::*};

/// One message of the transcript. Every field is a reactive handle, so a
/// `Turn` is `Copy` and the stream callbacks can hold it.
#[derive(Clone, Copy)]
pub struct Turn {
    pub id: u64,
    pub role: Role,
    /// The stored message's id, once the server has named it.
    pub message_id: StoredValue<Option<String>>,
    pub text: StoredValue<String>,
    /// Renders an answer's Markdown as it streams; made at its first delta.
    markdown: StoredValue<Option<StreamRenderer>>,
    pub status: RwSignal<MessageStatus>,
    pub error: RwSignal<Option<ErrorInfo>>,
    pub usage: RwSignal<Option<Usage>>,
    /// The connection broke and the page is resuming the answer.
    pub reconnecting: RwSignal<bool>,
    /// Time to the first token and total time, in ms, as the server measured.
    pub timing: RwSignal<(Option<u64>, Option<u64>)>,
    pub body: NodeRef<html::Div>,
}

impl Turn {
    pub fn new(id: u64, role: Role, text: String, status: MessageStatus) -> Self {
        Self {
            id,
            role,
            message_id: StoredValue::new(None),
            text: StoredValue::new(text),
            markdown: StoredValue::new(None),
            status: RwSignal::new(status),
            error: RwSignal::new(None),
            usage: RwSignal::new(None),
            reconnecting: RwSignal::new(false),
            timing: RwSignal::new((None, None)),
            body: NodeRef::new(),
        }
    }

    pub fn apply(self, event: StreamEvent) {
        match event {
            StreamEvent::Delta(delta) => {
                self.text.update_value(|text| text.push_str(&delta.text));
                self.render_delta(&delta.text);
            }
            StreamEvent::Usage(usage) => self.usage.set(Some(usage)),
            StreamEvent::Error(info) => self.fail(info),
            StreamEvent::Done(done) => {
                self.finish_markdown();
                self.timing.set((done.first_token_ms, done.duration_ms));
                self.status.set(if done.stop_reason == STOPPED_REASON {
                    MessageStatus::Stopped
                } else {
                    MessageStatus::Complete
                });
            }
            StreamEvent::Start(_) => {}
        }
    }

    /// Renders a delta of a streaming answer into its element. Until the
    /// element exists (the page is still hydrating), the text only
    /// accumulates: the renderer then starts from all of it.
    fn render_delta(self, delta: &str) {
        if self.body.get_untracked().is_none() {
            return;
        }
        let update = self.markdown.try_update_value(|md| match md {
            Some(renderer) => renderer.push(delta),
            None => self
                .text
                .with_value(|text| md.insert(StreamRenderer::new()).push(text)),
        });
        self.paint(update);
    }

    /// The answer's text is complete: its last block is final. (A turn
    /// whose element appears only later renders its whole text then.)
    fn finish_markdown(self) {
        if self.body.get_untracked().is_none() {
            return;
        }
        if self.markdown.with_value(Option::is_none) {
            // Every delta came before the element did.
            self.render_delta("");
        }
        let update = self
            .markdown
            .try_update_value(|md| md.as_mut().map(StreamRenderer::finish));
        self.paint(update.flatten());
    }

    /// Applies a Markdown update to the answer's element: finished blocks
    /// are appended to `.md-done`, the unfinished one redrawn in `.md-tail`.
    fn paint(self, update: Option<MarkdownUpdate>) {
        let (Some(update), Some(body)) = (update, self.body.get_untracked()) else {
            return;
        };
        let (Some(done), Some(tail)) = (body.first_element_child(), body.last_element_child()) else {
            return;
        };
        if !update.done.is_empty() {
            let _ = done.insert_adjacent_html("beforeend", &update.done);
        }
        match update.tail {
            TailUpdate::Unchanged => {}
            TailUpdate::Html(html) => tail.set_inner_html(&html),
            TailUpdate::CodeLines { finished, partial } => {
                // The open code block is the tail's only block, and its
                // unfinished line the last element: tail > .code-block > pre
                // > code > .code-partial. Walking last children keeps this
                // constant-time however long the code grows.
                let partial_line = tail
                    .last_element_child()
                    .and_then(|block| block.last_element_child())
                    .and_then(|pre| pre.last_element_child())
                    .and_then(|code| code.last_element_child())
                    .filter(|span| span.class_name() == "code-partial");
                if let Some(span) = partial_line {
                    if !finished.is_empty() {
                        let _ = span.insert_adjacent_html("beforebegin", &finished);
                    }
                    span.set_inner_html(&partial);
                }
            }
        }
    }

    pub fn finish(self, end: StreamEnd) {
        self.finish_markdown();
        match end {
            StreamEnd::Finished => {}
            StreamEnd::Stopped => self.status.set(MessageStatus::Stopped),
            StreamEnd::Failed(info) => self.fail(info),
        }
    }

    fn fail(self, info: ErrorInfo) {
        self.error.set(Some(info));
        self.status.set(MessageStatus::Error);
    }
}
