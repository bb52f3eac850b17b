//! A page of a conversation as the page shows it: its newest messages
//! before a given one, read as such.
//!
//! Invariants:
//! * Only the page's rows are read whole; what the messages before it add
//!   up to (how many, their tokens and cost) is one aggregate over four
//!   numeric columns, so opening a 1,000-message conversation reads 100
//!   messages' text, not 1,000.
//! * The totals mean what [`crate::conversations::usage::totals`] means on
//!   the same messages read whole: a message has a usage when both its
//!   input and output tokens are stored; the cost adds only priced answers.
//! * Replaced messages (an edit's old branch) are in no page, and are not
//!   a message a page can start before.

use super::{rows::owned_conversation, Result, Store, MESSAGE_COLUMNS};
use crate::conversations::{Conversation, LeftOut};
use sqlx::Row;

impl Store {
    /// The owner's conversation `id` with its newest `size` messages before
    /// the message `before` (before none: the newest of all), oldest first;
    /// the older ones are counted in `earlier`. `Ok(None)` when `before` is
    /// not one of its messages; someone else's conversation is not found,
    /// exactly as a missing one.
    pub async fn page(
        &self,
        owner: &str,
        id: &str,
        before: Option<&str>,
        size: usize,
    ) -> Result<Option<Conversation>> {
        crate::telemetry::time_store("page", async {
            let mut conn = self.pool.acquire().await?;
            let (summary, settings) = owned_conversation(&mut conn, owner, id).await?;
            let end = match before {
                None => i64::MAX,
                Some(before) => match position_of(&mut conn, id, before).await? {
                    Some(position) => position,
                    None => return Ok(None),
                },
            };
            let rows = sqlx::query(&format!(
                "SELECT {MESSAGE_COLUMNS}, position FROM messages \
                 WHERE conversation_id = $1 AND replaced_at IS NULL AND position < $2 \
                 ORDER BY position DESC LIMIT $3"
            ))
            .bind(id)
            .bind(end)
            .bind(i64::try_from(size).unwrap_or(i64::MAX))
            .fetch_all(&mut *conn)
            .await?;
            // A short page holds everything before `end`.
            let earlier = match rows.last() {
                Some(oldest) if rows.len() == size => {
                    left_out_before(&mut conn, id, oldest.try_get("position")?).await?
                }
                _ => LeftOut::default(),
            };
            let messages = rows
                .iter()
                .rev()
                .map(super::rows::message_from_row)
                .collect::<Result<_>>()?;
            Ok(Some(Conversation {
                summary,
                settings,
                messages,
                earlier,
            }))
        })
        .await
    }
}

/// The place of message `message_id` in the conversation, unless it is not
/// one of its current messages.
async fn position_of(
    conn: &mut sqlx::AnyConnection,
    conversation_id: &str,
    message_id: &str,
) -> Result<Option<i64>> {
    let rows = sqlx::query(
        "SELECT position FROM messages WHERE id = $1 AND conversation_id = $2 AND replaced_at IS NULL",
    )
    .bind(message_id)
    .bind(conversation_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.first()
        .map(|row| row.try_get("position"))
        .transpose()
        .map_err(Into::into)
}

/// How many current messages come before `position`, and their answers'
/// tokens and cost.
async fn left_out_before(
    conn: &mut sqlx::AnyConnection,
    conversation_id: &str,
    position: i64,
) -> Result<LeftOut> {
    // SUM of BIGINT is NUMERIC on PostgreSQL, which the Any driver cannot
    // read: cast back.
    let rows = sqlx::query(
        "SELECT COUNT(*) AS messages, \
           CAST(COALESCE(SUM(CASE WHEN input_tokens IS NOT NULL AND output_tokens IS NOT NULL \
             THEN input_tokens + output_tokens + COALESCE(cache_read_tokens, 0) \
                  + COALESCE(cache_write_tokens, 0) END), 0) AS BIGINT) AS tokens, \
           CAST(SUM(CASE WHEN input_tokens IS NOT NULL AND output_tokens IS NOT NULL \
             THEN cost_nanos END) AS BIGINT) AS cost_nanos \
         FROM messages WHERE conversation_id = $1 AND replaced_at IS NULL AND position < $2",
    )
    .bind(conversation_id)
    .bind(position)
    .fetch_all(&mut *conn)
    .await?;
    let Some(row) = rows.first() else {
        return Ok(LeftOut::default());
    };
    let count = |column: &str| -> Result<u64> { Ok(row.try_get::<i64, _>(column)?.max(0) as u64) };
    Ok(LeftOut {
        messages: count("messages")? as usize,
        tokens: count("tokens")?,
        cost_nanos: row
            .try_get::<Option<i64>, _>("cost_nanos")?
            .map(|c| c.max(0) as u64),
    })
}
