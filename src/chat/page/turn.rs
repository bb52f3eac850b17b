//! One message of the transcript, and how a streaming answer grows.
//!
//! An answer is a list of parts ([`super::answer_parts`]): text, thinking
//! and tool calls, in the order their events came. Text after a tool call
//! or after thinking starts a new text part; each text part is Markdown
//! rendered block by block as it streams, so the work per delta is
//! proportional to its unfinished last block, not to the answer.

use super::answer_parts::{now_ms, stored_parts, Part, TextPart, ThinkingPart, ToolPart, ToolState};
use crate::{
    chat::{ErrorInfo, Role, StreamEnd, StreamEvent, Usage, STOPPED_REASON},
    conversations::{MessageStatus, StoredMessage},
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
    /// A user's message as this page sent or loaded it; empty for an
    /// answer, whose text is in its parts.
    pub text: StoredValue<String>,
    /// A user's message whose text the page's HTML shows and its hydration
    /// data left out (`hydration_data`): its view adopts the server's text.
    pub text_on_page: bool,
    /// An answer's parts, in order.
    pub parts: RwSignal<Vec<Part>>,
    next_part: StoredValue<u64>,
    /// The owner the turn was made under (the page's): its parts are made
    /// under it too, never under whatever owner a stream callback runs in,
    /// which may be gone before the answer is.
    owner: StoredValue<Option<Owner>>,
    pub status: RwSignal<MessageStatus>,
    pub error: RwSignal<Option<ErrorInfo>>,
    pub usage: RwSignal<Option<Usage>>,
    /// The connection broke and the page is resuming the answer.
    pub reconnecting: RwSignal<bool>,
    /// Time to the first token and total time, in ms, as the server measured.
    pub timing: RwSignal<(Option<u64>, Option<u64>)>,
    /// A user message's text element.
    pub body: NodeRef<html::Div>,
    /// An answer that a regenerated answer to the same message follows:
    /// kept, but shown quieter.
    pub superseded: RwSignal<bool>,
}

impl Turn {
    /// A turn with no parts yet: a message just sent, or its answer.
    pub fn new(id: u64, role: Role, text: String, status: MessageStatus) -> Self {
        Self::with_parts(id, role, text, (Vec::new(), 0), status)
    }

    /// A stored message's turn, with an answer's stored parts.
    pub fn stored(id: u64, message: &StoredMessage) -> Self {
        let mut next = 0_u64;
        let (text, parts) = match message.role {
            Role::Assistant => (
                String::new(),
                stored_parts(message, || {
                    next += 1;
                    next
                }),
            ),
            Role::User => (message.content.clone(), Vec::new()),
        };
        Self {
            text_on_page: message.role == Role::User && message.text_left_out,
            ..Self::with_parts(id, message.role, text, (parts, next), message.status)
        }
    }

    /// `parts`: the parts, and the last key given to one.
    fn with_parts(id: u64, role: Role, text: String, parts: (Vec<Part>, u64), status: MessageStatus) -> Self {
        let (parts, next_part) = parts;
        Self {
            id,
            role,
            message_id: StoredValue::new(None),
            text: StoredValue::new(text),
            text_on_page: false,
            parts: RwSignal::new(parts),
            next_part: StoredValue::new(next_part),
            owner: StoredValue::new(Owner::current()),
            status: RwSignal::new(status),
            error: RwSignal::new(None),
            usage: RwSignal::new(None),
            reconnecting: RwSignal::new(false),
            timing: RwSignal::new((None, None)),
            body: NodeRef::new(),
            superseded: RwSignal::new(false),
        }
    }

    /// Makes a part under the turn's owner.
    fn make<T>(self, make: impl FnOnce(u64) -> T) -> T {
        let key = self.key();
        match self.owner.get_value() {
            Some(owner) => owner.with(|| make(key)),
            None => make(key),
        }
    }

    fn key(self) -> u64 {
        let key = self.next_part.get_value() + 1;
        self.next_part.set_value(key);
        key
    }

    fn last_part(self) -> Option<Part> {
        self.parts.with_untracked(|parts| parts.last().copied())
    }

    /// The answer moves on to another kind of part: the text before it is
    /// complete, the thinking before it is over.
    fn close_last(self) {
        match self.last_part() {
            Some(Part::Text(text)) => text.finish(),
            Some(Part::Thinking(thinking)) => thinking.end(),
            _ => {}
        }
    }

    fn tool(self, id: &str) -> Option<ToolPart> {
        self.parts.with_untracked(|parts| {
            parts.iter().rev().find_map(|part| match part {
                Part::Tool(tool) if tool.id.with_value(|own| own == id) => Some(*tool),
                _ => None,
            })
        })
    }

    pub fn apply(self, event: StreamEvent) {
        match event {
            // (An empty delta would make an empty text box.)
            StreamEvent::Delta(delta) if delta.text.is_empty() => {}
            StreamEvent::Delta(delta) => {
                let text = match self.last_part() {
                    Some(Part::Text(text)) => text,
                    _ => {
                        self.close_last();
                        let text = self.make(|key| TextPart::new(key, String::new(), false));
                        self.parts.update(|parts| parts.push(Part::Text(text)));
                        text
                    }
                };
                text.push(&delta.text);
            }
            StreamEvent::Reasoning(delta) => self.thinking().text.update(|t| t.push_str(&delta.text)),
            StreamEvent::ReasoningRedacted(_) => self.thinking().redacted.set(true),
            StreamEvent::ToolCall(call) => {
                self.close_last();
                let answer = self.message_id.get_value();
                let tool = self.make(|key| ToolPart::new(key, answer, call.id, call.name));
                self.parts.update(|parts| parts.push(Part::Tool(tool)));
            }
            StreamEvent::ToolInput(input) => {
                if let Some(tool) = self.tool(&input.id) {
                    tool.input.update(|so_far| so_far.push_str(&input.fragment));
                }
            }
            StreamEvent::ToolRunning(running) => {
                if let Some(tool) = self.tool(&running.id) {
                    // Never back from an end to running.
                    if matches!(
                        tool.state.get_untracked(),
                        ToolState::Writing | ToolState::Awaiting
                    ) {
                        tool.state.set(ToolState::Running { since_ms: now_ms() });
                    }
                }
            }
            StreamEvent::ToolApproval(waiting) => {
                if let Some(tool) = self.tool(&waiting.id) {
                    tool.state.set(ToolState::Awaiting);
                }
            }
            StreamEvent::ToolResult(result) => {
                if let Some(tool) = self.tool(&result.id) {
                    tool.state.set(ToolState::Finished(result));
                }
            }
            StreamEvent::Usage(usage) => self.usage.set(Some(usage)),
            StreamEvent::Error(info) => self.fail(info),
            StreamEvent::Done(done) => {
                self.end_parts();
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

    /// The thinking part being written, made when the answer thinks anew.
    fn thinking(self) -> ThinkingPart {
        match self.last_part() {
            Some(Part::Thinking(thinking)) => thinking,
            _ => {
                self.close_last();
                let thinking = self.make(|key| ThinkingPart::new(key, true));
                self.parts.update(|parts| parts.push(Part::Thinking(thinking)));
                thinking
            }
        }
    }

    /// The answer ended: its last text is final, its thinking over, and a
    /// call still running was stopped with it.
    fn end_parts(self) {
        self.close_last();
        self.parts.with_untracked(|parts| {
            for part in parts {
                if let Part::Tool(tool) = part {
                    if matches!(
                        tool.state.get_untracked(),
                        ToolState::Writing | ToolState::Awaiting | ToolState::Running { .. }
                    ) {
                        tool.state.set(ToolState::Stopped);
                    }
                }
            }
        });
    }

    pub fn finish(self, end: StreamEnd) {
        self.end_parts();
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
