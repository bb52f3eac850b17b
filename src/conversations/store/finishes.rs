//! Many answers ending, or saving their text so far, at once, written as
//! sets.
//!
//! Answers begun in a burst end in a burst: 1,000 people who pressed Enter
//! in the same second get their last tokens within a second of each other,
//! and their answers save their text (checkpoints) at the same moments
//! while they are written. One by one, an answer's end is four or five
//! statements (the message, its conversation, the lease, the owner's usage
//! by day and by model), each a round trip in the committing lane, the same
//! lane the next burst of messages waits in. A set of them is five
//! statements in all; a set of checkpoints, one.
//!
//! Invariants:
//! * The rows are exactly those [`Store::finish_on`] writes for each
//!   answer: the message as it ended (a missing one is no error, as there),
//!   its conversation's time, its lease dropped, and, for an answer with
//!   usage, the owner's day and day-by-model figures added to (once per
//!   answer, however many of a set share an owner, a day or a model).
//! * A checkpoint changes only an answer still `streaming`, as
//!   [`Store::checkpoint_on`]: one run after its answer's end changes
//!   nothing.
//! * A set names each answer once; one named twice fails the set, and the
//!   caller writes the answers one by one.
//! * Every statement has the same shape for a set of the same size (an
//!   answer without usage is filtered out in SQL, not left out of the
//!   statement), so each is prepared once per connection.

use super::{
    answer_end::{bind_end, blocks_json, nanos_to_i64, ENDED_COLUMNS},
    new_conversations::{parameters, plain, rows},
    now_ms, FinishedAnswer, Result, Store, StoreError, StoreErrorKind,
};
use crate::conversations::AnswerBlock;

/// An answer's text (and parts) so far, to be saved.
pub(super) struct Checkpoint {
    /// Whose answer it is (the committing lane, and what sets a batch's
    /// writes apart).
    pub owner: String,
    pub answer_id: String,
    pub content: String,
    pub blocks: Vec<AnswerBlock>,
}

impl Store {
    /// Saves, in `conn`'s transaction, the text so far of each answer still
    /// being written.
    pub(super) async fn checkpoints_on(
        &self,
        conn: &mut sqlx::AnyConnection,
        checkpoints: &[&Checkpoint],
    ) -> Result<()> {
        each_once(checkpoints.iter().map(|c| c.answer_id.as_str()))?;
        let sql = format!(
            "UPDATE messages SET content = v.column2, blocks = v.column3 FROM (VALUES {}) AS v \
             WHERE messages.id = v.column1 AND messages.status = 'streaming'",
            rows(checkpoints.len(), 3, plain)
        );
        let mut query = sqlx::query(&sql);
        for checkpoint in checkpoints {
            query = query
                .bind(&checkpoint.answer_id)
                .bind(&checkpoint.content)
                .bind(blocks_json(&checkpoint.blocks));
        }
        query.execute(&mut *conn).await?;
        Ok(())
    }

    /// Writes, in `conn`'s transaction, each answer as it ended.
    pub(super) async fn finishes_on(
        &self,
        conn: &mut sqlx::AnyConnection,
        answers: &[&FinishedAnswer],
    ) -> Result<()> {
        each_once(answers.iter().map(|a| a.answer_id.as_str()))?;
        let now = now_ms();

        // The messages, from one row of values each. (`columnN` is what
        // both SQLite and PostgreSQL name the columns of a `VALUES` list.)
        let set: Vec<String> = ENDED_COLUMNS
            .iter()
            .enumerate()
            .map(|(i, column)| format!("{column} = v.column{}", i + 2))
            .collect();
        let sql = format!(
            "UPDATE messages SET {} FROM (VALUES {}) AS v WHERE messages.id = v.column1",
            set.join(", "),
            rows(answers.len(), 1 + ENDED_COLUMNS.len(), plain)
        );
        let mut args = sqlx::any::AnyArguments::default();
        for answer in answers {
            bind_end(&mut args, answer).map_err(sqlx::Error::Encode)?;
        }
        sqlx::query_with(&sql, args).execute(&mut *conn).await?;

        let sql = format!(
            "UPDATE conversations SET updated_at = $1 WHERE id IN ({})",
            parameters(2, answers.len())
        );
        let mut query = sqlx::query(&sql).bind(now);
        for answer in answers {
            query = query.bind(&answer.conversation_id);
        }
        query.execute(&mut *conn).await?;

        // No longer being written: each conversation takes its next answer,
        // on any instance, as soon as `done` is sent.
        if self.leases.is_some() {
            let sql = format!(
                "DELETE FROM answer_leases WHERE answer_id IN ({})",
                parameters(1, answers.len())
            );
            let mut query = sqlx::query(&sql);
            for answer in answers {
                query = query.bind(&answer.answer_id);
            }
            query.execute(&mut *conn).await?;
        }

        // The owners' days, summed per owner and day in SQL: one upsert may
        // not touch a row twice.
        let sql = format!(
            "INSERT INTO owner_usage (owner_id, day, input_tokens, output_tokens, answers) \
             SELECT v.column1, v.column2, SUM(v.column3), SUM(v.column4), COUNT(*) \
             FROM (VALUES {}) AS v WHERE v.column3 IS NOT NULL GROUP BY v.column1, v.column2 \
             ON CONFLICT (owner_id, day) DO UPDATE SET \
             input_tokens = owner_usage.input_tokens + excluded.input_tokens, \
             output_tokens = owner_usage.output_tokens + excluded.output_tokens, \
             answers = owner_usage.answers + excluded.answers",
            rows(answers.len(), 4, plain)
        );
        let mut query = sqlx::query(&sql);
        for answer in answers {
            let usage = answer.usage;
            query = query
                .bind(&answer.owner)
                .bind(answer.day)
                .bind(usage.map(|u| i64::from(u.input_tokens)))
                .bind(usage.map(|u| i64::from(u.output_tokens)));
        }
        query.execute(&mut *conn).await?;

        // The same by model, each answer's model read from its message.
        let sql = format!(
            "INSERT INTO owner_model_usage (owner_id, day, model_id, answers, input_tokens, \
             output_tokens, cache_read_tokens, cache_write_tokens, cost_nanos) \
             SELECT v.column2, v.column3, COALESCE(m.model_id, ''), COUNT(*), SUM(v.column4), \
             SUM(v.column5), SUM(v.column6), SUM(v.column7), SUM(v.column8) \
             FROM (VALUES {}) AS v JOIN messages AS m ON m.id = v.column1 \
             WHERE v.column4 IS NOT NULL GROUP BY v.column2, v.column3, COALESCE(m.model_id, '') \
             ON CONFLICT (owner_id, day, model_id) DO UPDATE SET \
             answers = owner_model_usage.answers + excluded.answers, \
             input_tokens = owner_model_usage.input_tokens + excluded.input_tokens, \
             output_tokens = owner_model_usage.output_tokens + excluded.output_tokens, \
             cache_read_tokens = owner_model_usage.cache_read_tokens + excluded.cache_read_tokens, \
             cache_write_tokens = owner_model_usage.cache_write_tokens + excluded.cache_write_tokens, \
             cost_nanos = owner_model_usage.cost_nanos + excluded.cost_nanos",
            rows(answers.len(), 8, plain)
        );
        let mut query = sqlx::query(&sql);
        for answer in answers {
            let usage = answer.usage;
            query = query
                .bind(&answer.answer_id)
                .bind(&answer.owner)
                .bind(answer.day)
                .bind(usage.map(|u| i64::from(u.input_tokens)))
                .bind(usage.map(|u| i64::from(u.output_tokens)))
                .bind(usage.map(|u| i64::from(u.cache_read_tokens)))
                .bind(usage.map(|u| i64::from(u.cache_write_tokens)))
                .bind(usage.map(|u| nanos_to_i64(u.cost_nanos.unwrap_or(0))));
        }
        query.execute(&mut *conn).await?;
        Ok(())
    }
}

/// Fails unless every answer is named once.
fn each_once<'a>(answer_ids: impl ExactSizeIterator<Item = &'a str>) -> Result<()> {
    let named = answer_ids.len();
    let mut ids: Vec<&str> = answer_ids.collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.len() != named {
        return Err(StoreError::new(
            StoreErrorKind::Internal,
            "written one by one: an answer named twice",
        ));
    }
    Ok(())
}
