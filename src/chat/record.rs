//! Keeps the answer being relayed so that it is stored however it ends.
//!
//! Invariants:
//! * The relay feeds the recorder each event of the answer: text, thinking,
//!   tool calls and their results, kept in order as the answer's blocks.
//!   A tool result is checkpointed as soon as it arrives.
//! * The relay feeds the recorder each delta. Every `checkpoint.every` or
//!   `checkpoint.bytes` of new text, the text so far is saved from a task of
//!   its own (one at a time; the relay never waits for the database), so a
//!   crash loses seconds of an answer, not the answer.
//! * At the end the relay awaits [`AnswerRecorder::finish`] before sending
//!   the terminal event, so `done` means "stored". While the database is
//!   away (down, locked, read-only) the final save is retried with backoff:
//!   the answer is paid for, and its text stays in memory until stored.
//! * Should the generation's task end without finishing (a panic, the
//!   runtime shutting down), the recorder stores what it has as
//!   `interrupted` from a task of its own when it is dropped.

use super::{ErrorInfo, ToolFinished, Usage};
use crate::conversations::{
    blocks::{self, AnswerBlock, ToolCall, ToolResult},
    store::{FinishedAnswer, Store, StoreError, StoreErrorKind},
    MessageStatus,
};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// How often the text of an answer being written is saved.
#[derive(Debug, Clone, Copy)]
pub struct Checkpoints {
    pub every: Duration,
    pub bytes: usize,
}

/// First and longest wait between two tries of a final save.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

pub struct AnswerRecorder {
    store: Store,
    answer: FinishedAnswer,
    started: Instant,
    finished: bool,
    checkpoints: Checkpoints,
    /// When the last checkpoint began, and the bytes written since.
    checkpointed_at: Instant,
    written_since_checkpoint: usize,
    checkpoint: Option<JoinHandle<()>>,
    /// How many checkpoints were written (for figures).
    checkpoint_count: usize,
}

/// Who an answer belongs to and where it is stored.
pub struct AnswerRef {
    pub owner: String,
    /// The UTC day its tokens count against.
    pub day: i64,
    pub answer_id: String,
    pub conversation_id: String,
}

impl AnswerRecorder {
    /// `started` is when the request arrived: first-token and total times are
    /// measured from it.
    pub fn new(store: Store, answer: AnswerRef, started: Instant, checkpoints: Checkpoints) -> Self {
        Self {
            store,
            answer: FinishedAnswer {
                owner: answer.owner,
                day: answer.day,
                answer_id: answer.answer_id,
                conversation_id: answer.conversation_id,
                content: String::new(),
                blocks: Vec::new(),
                status: MessageStatus::Streaming,
                usage: None,
                first_token_ms: None,
                duration_ms: 0,
                error: None,
            },
            started,
            finished: false,
            checkpoints,
            checkpointed_at: Instant::now(),
            written_since_checkpoint: 0,
            checkpoint: None,
            checkpoint_count: 0,
        }
    }

    /// The first thing the model wrote (text or thinking) arrived now.
    fn mark_first_token(&mut self) {
        if self.answer.first_token_ms.is_none() {
            self.answer.first_token_ms = Some(self.started.elapsed().as_millis() as u64);
        }
    }

    pub fn text(&mut self, text: &str) {
        self.mark_first_token();
        self.answer.content.push_str(text);
        // A text-only answer keeps no blocks (its content says it all), so
        // the per-delta work of plain answers stays one append.
        if !self.answer.blocks.is_empty() {
            blocks::push_text(&mut self.answer.blocks, text);
        }
        self.maybe_checkpoint(text.len());
    }

    /// The answer has more than text from now on: its blocks start with the
    /// text so far.
    fn start_blocks(&mut self) {
        if self.answer.blocks.is_empty() && !self.answer.content.is_empty() {
            let text = self.answer.content.clone();
            self.answer.blocks.push(AnswerBlock::Text { text });
        }
    }

    pub fn reasoning(&mut self, text: &str) {
        self.mark_first_token();
        self.start_blocks();
        blocks::push_reasoning(&mut self.answer.blocks, text);
        self.maybe_checkpoint(text.len());
    }

    pub fn reasoning_redacted(&mut self) {
        self.start_blocks();
        self.answer.blocks.push(AnswerBlock::Reasoning {
            text: String::new(),
            redacted: true,
        });
    }

    pub fn tool_call(&mut self, id: &str, name: &str) {
        self.start_blocks();
        self.answer.blocks.push(AnswerBlock::Tool(ToolCall {
            id: id.to_owned(),
            name: name.to_owned(),
            input: String::new(),
            result: None,
        }));
    }

    pub fn tool_input(&mut self, id: &str, fragment: &str) {
        if let Some(call) = blocks::tool_call_mut(&mut self.answer.blocks, id) {
            call.input.push_str(fragment);
        }
    }

    /// A call ended: saved at once, not with the next checkpoint.
    pub fn tool_result(&mut self, finished: &ToolFinished) {
        if let Some(call) = blocks::tool_call_mut(&mut self.answer.blocks, &finished.id) {
            call.result = Some(ToolResult {
                ok: finished.ok,
                content: finished.content.clone(),
                duration_ms: finished.duration_ms,
            });
        }
        self.save_checkpoint();
    }

    /// Checkpoints when enough was written, or enough time passed, since the
    /// last one. (`grown` counts text and thinking alike.)
    fn maybe_checkpoint(&mut self, grown: usize) {
        self.written_since_checkpoint += grown;
        if self.written_since_checkpoint >= self.checkpoints.bytes
            || self.checkpointed_at.elapsed() >= self.checkpoints.every
        {
            self.save_checkpoint();
        }
    }

    /// Saves the text so far from a task of its own, unless the previous
    /// checkpoint is still being written (the next delta tries again).
    fn save_checkpoint(&mut self) {
        if self.checkpoint.as_ref().is_some_and(|task| !task.is_finished()) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        self.checkpointed_at = Instant::now();
        self.written_since_checkpoint = 0;
        self.checkpoint_count += 1;
        let store = self.store.clone();
        let owner = self.answer.owner.clone();
        let id = self.answer.answer_id.clone();
        let content = self.answer.content.clone();
        let blocks = self.answer.blocks.clone();
        self.checkpoint = Some(runtime.spawn(async move {
            if let Err(err) = store.checkpoint(&owner, &id, &content, &blocks).await {
                // The next checkpoint, or the final save, writes it again.
                tracing::warn!(error = %err, answer = %id, "could not checkpoint an answer");
            }
        }));
    }

    pub fn usage(&mut self, usage: Usage) {
        self.answer.usage = Some(usage);
    }

    pub fn usage_so_far(&self) -> Option<Usage> {
        self.answer.usage
    }

    /// Time to the first token and total time, as stored (after `finish`).
    pub fn timings(&self) -> (Option<u64>, Option<u64>) {
        (self.answer.first_token_ms, Some(self.answer.duration_ms))
    }

    /// How many checkpoints this answer wrote.
    pub fn checkpoint_count(&self) -> usize {
        self.checkpoint_count
    }

    /// Feeds the recorder one event of the answer; true for an event that
    /// shows the model has begun (text, thinking or a tool call).
    pub fn record(&mut self, event: &super::StreamEvent) -> bool {
        use super::StreamEvent;
        match event {
            StreamEvent::Delta(delta) => self.text(&delta.text),
            StreamEvent::Reasoning(delta) => self.reasoning(&delta.text),
            StreamEvent::ReasoningRedacted(_) => {
                self.reasoning_redacted();
                return false;
            }
            StreamEvent::ToolCall(call) => self.tool_call(&call.id, &call.name),
            StreamEvent::ToolInput(input) => {
                self.tool_input(&input.id, &input.fragment);
                return false;
            }
            StreamEvent::ToolResult(result) => {
                self.tool_result(result);
                return false;
            }
            StreamEvent::Usage(usage) => {
                self.usage(*usage);
                return false;
            }
            _ => return false,
        }
        true
    }

    /// The text and parts recorded, without storing them (an answer rebuilt
    /// from its events by another instance).
    pub fn into_parts(mut self) -> (String, Vec<AnswerBlock>) {
        self.finished = true;
        (
            std::mem::take(&mut self.answer.content),
            std::mem::take(&mut self.answer.blocks),
        )
    }

    /// Stores the answer with its final status. Called once. While the
    /// database is away the save is retried with backoff, for as long as it
    /// takes; other errors are returned.
    pub async fn finish(
        &mut self,
        status: MessageStatus,
        error: Option<ErrorInfo>,
    ) -> Result<(), StoreError> {
        self.finished = true;
        self.answer.status = status;
        self.answer.error = error;
        self.answer.duration_ms = self.started.elapsed().as_millis() as u64;
        let mut wait = RETRY_FIRST;
        let mut tries = 1_u32;
        loop {
            match self.store.finish_answer(&self.answer).await {
                Ok(()) => {
                    if tries > 1 {
                        tracing::info!(answer = %self.answer.answer_id, tries, "stored an answer once the database was back");
                    }
                    return Ok(());
                }
                Err(err) if matches!(err.kind, StoreErrorKind::Unavailable | StoreErrorKind::ReadOnly) => {
                    if tries == 1 {
                        tracing::warn!(error = %err, answer = %self.answer.answer_id, "could not store an answer; retrying until the database is back");
                    }
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(RETRY_MAX);
                    tries += 1;
                }
                Err(err) => {
                    tracing::error!(error = %err, answer = %self.answer.answer_id, "could not store an answer");
                    return Err(err);
                }
            }
        }
    }
}

impl Drop for AnswerRecorder {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // Ended without an end: keep what was generated.
        let mut answer = self.answer.clone();
        answer.status = MessageStatus::Interrupted;
        answer.duration_ms = self.started.elapsed().as_millis() as u64;
        let store = self.store.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(err) = store.finish_answer(&answer).await {
                    tracing::error!(error = %err, answer = %answer.answer_id, "could not store an interrupted answer");
                }
            });
        }
    }
}
