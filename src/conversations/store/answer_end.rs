//! The writes that keep and end an answer: its checkpoints while it is
//! written, the final save with the owner's usage, and the settling of one
//! whose instance died.

use super::{now_ms, script::Script, FinishedAnswer, Result, Store};
use crate::conversations::AnswerBlock;
use sqlx::{any::AnyArguments, error::BoxDynError, Arguments};
use std::sync::LazyLock;

impl Store {
    /// Writes the answer as it ended, and drops its lease. One transaction
    /// (shared with other writes under group commit).
    pub async fn finish_answer(&self, answer: &FinishedAnswer) -> Result<()> {
        crate::telemetry::time_store("finish_answer", async {
            if let Some(committer) = &self.committer {
                return committer.finish(answer).await;
            }
            let mut tx = self.pool.begin().await?;
            self.finish_on(&mut tx, answer).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// [`Store::finish_answer`]'s writes, in `tx`'s transaction.
    pub(super) async fn finish_on(
        &self,
        tx: &mut sqlx::AnyConnection,
        answer: &FinishedAnswer,
    ) -> Result<()> {
        let mut script = Script::new(self.backend);
        self.push_finish(&mut script, answer);
        script.execute(tx).await
    }

    /// Pushes [`Store::finish_answer`]'s writes onto `script`.
    pub(super) fn push_finish<'q>(&self, script: &mut Script<'q>, answer: &'q FinishedAnswer) {
        let now = now_ms();
        let usage = answer.usage;
        static END_ONE: LazyLock<String> = LazyLock::new(|| {
            let set: Vec<String> = ENDED_COLUMNS
                .iter()
                .enumerate()
                .map(|(i, column)| format!("{column} = ${}", i + 2))
                .collect();
            format!("UPDATE messages SET {} WHERE id = $1", set.join(", "))
        });
        script.push(&END_ONE, |args| bind_end(args, answer));
        script.push("UPDATE conversations SET updated_at = $1 WHERE id = $2", |args| {
            args.add(now)?;
            args.add(&answer.conversation_id)
        });
        // Stored is no longer being written: the conversation takes the
        // next answer, on any instance, as soon as `done` is sent.
        if self.leases.is_some() {
            script.push("DELETE FROM answer_leases WHERE answer_id = $1", |args| {
                args.add(&answer.answer_id)
            });
        }
        if let Some(usage) = usage {
            script.push(
                "INSERT INTO owner_usage (owner_id, day, input_tokens, output_tokens, answers) \
                 VALUES ($1, $2, $3, $4, 1) ON CONFLICT (owner_id, day) DO UPDATE SET \
                 input_tokens = owner_usage.input_tokens + excluded.input_tokens, \
                 output_tokens = owner_usage.output_tokens + excluded.output_tokens, \
                 answers = owner_usage.answers + 1",
                |args| {
                    args.add(&answer.owner)?;
                    args.add(answer.day)?;
                    args.add(i64::from(usage.input_tokens))?;
                    args.add(i64::from(usage.output_tokens))
                },
            );
            // The same figures by model, for the usage page.
            script.push(
                "INSERT INTO owner_model_usage (owner_id, day, model_id, answers, input_tokens, \
                 output_tokens, cache_read_tokens, cache_write_tokens, cost_nanos) \
                 SELECT $1, $2, COALESCE(model_id, ''), 1, $3, $4, $5, $6, $7 FROM messages WHERE id = $8 \
                 ON CONFLICT (owner_id, day, model_id) DO UPDATE SET \
                 answers = owner_model_usage.answers + 1, \
                 input_tokens = owner_model_usage.input_tokens + excluded.input_tokens, \
                 output_tokens = owner_model_usage.output_tokens + excluded.output_tokens, \
                 cache_read_tokens = owner_model_usage.cache_read_tokens + excluded.cache_read_tokens, \
                 cache_write_tokens = owner_model_usage.cache_write_tokens + excluded.cache_write_tokens, \
                 cost_nanos = owner_model_usage.cost_nanos + excluded.cost_nanos",
                |args| {
                    args.add(&answer.owner)?;
                    args.add(answer.day)?;
                    args.add(i64::from(usage.input_tokens))?;
                    args.add(i64::from(usage.output_tokens))?;
                    args.add(i64::from(usage.cache_read_tokens))?;
                    args.add(i64::from(usage.cache_write_tokens))?;
                    args.add(nanos_to_i64(usage.cost_nanos.unwrap_or(0)))?;
                    args.add(&answer.answer_id)
                },
            );
        }
    }

    /// Stores an answer whose instance died (its lease expired) as
    /// `interrupted`, with `rebuilt` (its text and parts from the events the
    /// instance had written) unless the last checkpoint holds more. False
    /// when the answer was no longer `streaming`.
    pub async fn settle_abandoned(
        &self,
        answer_id: &str,
        content: &str,
        blocks: &[AnswerBlock],
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let rebuilt = sqlx::query(
            "UPDATE messages SET content = $1, blocks = $2, status = 'interrupted' \
             WHERE id = $3 AND status = 'streaming' AND LENGTH(content) <= LENGTH($1)",
        )
        .bind(content)
        .bind(blocks_json(blocks))
        .bind(answer_id)
        .execute(&mut *tx)
        .await?;
        let kept =
            sqlx::query("UPDATE messages SET status = 'interrupted' WHERE id = $1 AND status = 'streaming'")
                .bind(answer_id)
                .execute(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(rebuilt.rows_affected() + kept.rows_affected() > 0)
    }

    /// Saves the text (and parts) of `owner`'s answer still being written.
    /// A no-op once the answer is stored (its row is no longer `streaming`).
    /// Shares a transaction with other writes under group commit (in the
    /// owner's lane, so lanes never hold each other's rows): thousands of
    /// answers checkpointing on their own took every pooled connection.
    pub async fn checkpoint(
        &self,
        owner: &str,
        answer_id: &str,
        content: &str,
        blocks: &[AnswerBlock],
    ) -> Result<()> {
        crate::telemetry::time_store("checkpoint", async {
            if let Some(committer) = &self.committer {
                let checkpoint = super::finishes::Checkpoint {
                    owner: owner.to_owned(),
                    answer_id: answer_id.to_owned(),
                    content: content.to_owned(),
                    blocks: blocks.to_vec(),
                };
                return committer.checkpoint(checkpoint).await;
            }
            self.checkpoint_on(&mut *self.pool.acquire().await?, answer_id, content, blocks)
                .await
        })
        .await
    }

    /// [`Store::checkpoint`]'s write, on `conn`.
    pub(super) async fn checkpoint_on(
        &self,
        conn: &mut sqlx::AnyConnection,
        answer_id: &str,
        content: &str,
        blocks: &[AnswerBlock],
    ) -> Result<()> {
        let mut script = Script::new(self.backend);
        push_checkpoint(&mut script, answer_id, content, blocks);
        script.execute(conn).await
    }
}

/// Pushes [`Store::checkpoint`]'s write onto `script`.
pub(super) fn push_checkpoint<'q>(
    script: &mut Script<'q>,
    answer_id: &'q str,
    content: &'q str,
    blocks: &[AnswerBlock],
) {
    let blocks = blocks_json(blocks);
    script.push(
        "UPDATE messages SET content = $1, blocks = $2 WHERE id = $3 AND status = 'streaming'",
        move |args| {
            args.add(content)?;
            args.add(blocks)?;
            args.add(answer_id)
        },
    );
}

/// The columns an answer's end sets, in the order [`bind_end`] binds them
/// (after the answer's id).
pub(super) const ENDED_COLUMNS: [&str; 15] = [
    "content",
    "status",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "latency_ms",
    "first_token_ms",
    "duration_ms",
    "error_code",
    "error_message",
    "error_retryable",
    "blocks",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_nanos",
];

/// Binds `answer`'s end: its id, then the values of [`ENDED_COLUMNS`].
pub(super) fn bind_end<'q>(
    args: &mut AnyArguments<'q>,
    answer: &'q FinishedAnswer,
) -> std::result::Result<(), BoxDynError> {
    let usage = answer.usage;
    let error = answer.error.as_ref();
    args.add(&answer.answer_id)?;
    args.add(&answer.content)?;
    args.add(answer.status.as_str())?;
    args.add(usage.map(|u| i64::from(u.input_tokens)))?;
    args.add(usage.map(|u| i64::from(u.output_tokens)))?;
    args.add(usage.map(|u| i64::from(u.total_tokens)))?;
    args.add(usage.map(|u| u.latency_ms as i64))?;
    args.add(answer.first_token_ms.map(|ms| ms as i64))?;
    args.add(answer.duration_ms as i64)?;
    args.add(error.map(|e| e.code.as_str()))?;
    args.add(error.map(|e| e.message.clone()))?;
    args.add(error.map(|e| i64::from(e.retryable)))?;
    args.add(blocks_json(&answer.blocks))?;
    args.add(usage.map(|u| i64::from(u.cache_read_tokens)))?;
    args.add(usage.map(|u| i64::from(u.cache_write_tokens)))?;
    args.add(usage.and_then(|u| u.cost_nanos).map(nanos_to_i64))
}

/// The `blocks` column: NULL for an answer of text only.
pub(super) fn blocks_json(blocks: &[AnswerBlock]) -> Option<String> {
    crate::conversations::blocks::has_more_than_text(blocks)
        .then(|| serde_json::to_string(blocks).expect("answer blocks serialise"))
}

/// A cost in a BIGINT column (no bill reaches 9.2 billion units).
pub(super) fn nanos_to_i64(nanos: u64) -> i64 {
    i64::try_from(nanos).unwrap_or(i64::MAX)
}
