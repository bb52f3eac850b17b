//! Keeps the answer being relayed so that it is stored however it ends.
//!
//! The relay feeds the recorder each delta; at the end it awaits
//! [`AnswerRecorder::finish`] before sending the terminal event, so `done`
//! means "stored". Should the generation's task end without finishing (a
//! panic, the runtime shutting down), the recorder stores what it has as
//! `interrupted` from a task of its own when it is dropped.

use super::{ErrorInfo, Usage};
use crate::conversations::{
    store::{FinishedAnswer, Store, StoreError},
    MessageStatus,
};
use std::time::Instant;

pub struct AnswerRecorder {
    store: Store,
    answer: FinishedAnswer,
    started: Instant,
    finished: bool,
}

impl AnswerRecorder {
    /// `started` is when the request arrived: first-token and total times are
    /// measured from it.
    pub fn new(store: Store, answer_id: String, conversation_id: String, started: Instant) -> Self {
        Self {
            store,
            answer: FinishedAnswer {
                answer_id,
                conversation_id,
                content: String::new(),
                status: MessageStatus::Streaming,
                usage: None,
                first_token_ms: None,
                duration_ms: 0,
                error: None,
            },
            started,
            finished: false,
        }
    }

    pub fn text(&mut self, text: &str) {
        if self.answer.first_token_ms.is_none() {
            self.answer.first_token_ms = Some(self.started.elapsed().as_millis() as u64);
        }
        self.answer.content.push_str(text);
    }

    pub fn usage(&mut self, usage: Usage) {
        self.answer.usage = Some(usage);
    }

    /// Time to the first token and total time, as stored (after `finish`).
    pub fn timings(&self) -> (Option<u64>, Option<u64>) {
        (self.answer.first_token_ms, Some(self.answer.duration_ms))
    }

    /// Stores the answer with its final status. Called once.
    pub async fn finish(
        &mut self,
        status: MessageStatus,
        error: Option<ErrorInfo>,
    ) -> Result<(), StoreError> {
        self.finished = true;
        self.answer.status = status;
        self.answer.error = error;
        self.answer.duration_ms = self.started.elapsed().as_millis() as u64;
        let result = self.store.finish_answer(&self.answer).await;
        if let Err(err) = &result {
            tracing::error!(error = %err, answer = %self.answer.answer_id, "could not store an answer");
        }
        result
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
