//! Many next messages at once, each in a conversation its owner already
//! has, written as sets.
//!
//! Most of a burst of people pressing Enter is people going on with a
//! conversation. One by one, each is three round trips in the committing
//! lane (the conversation marked active and read, its history read, the
//! message and its empty answer inserted); a set of them is four or five
//! statements in all (`group_commit::TOGETHER`).
//!
//! Invariants:
//! * The rows are exactly those [`Store::exchange_on`] writes for each
//!   exchange: the conversation marked active, the question and its empty
//!   `streaming` answer after every place taken (replaced messages
//!   included), the settings row only when they change, the lease when
//!   instances share the database. Each exchange's `earlier` is its current
//!   history, as one written alone reads it.
//! * A set that is anything but the plain case fails whole, and the caller
//!   writes its exchanges one by one, where every case is handled and every
//!   failure is the exchange's own: a conversation missing or someone
//!   else's, one named twice, a row left `streaming` to settle, an answer
//!   another instance is writing (a lease), an owner that would pass a
//!   cap of several instances (`set_caps`).

use super::{
    exchange::remember_settings,
    new_conversations::{insert_questions_and_answers, parameters},
    new_id, now_ms,
    rows::{conversation_from_rows, message_from_row, CONVERSATION_COLUMNS},
    script::Script,
    Exchange, NewExchange, Result, Store, StoreError, StoreErrorKind, MESSAGE_COLUMNS,
};
use crate::conversations::{MessageStatus, StoredMessage};
use sqlx::Row;
use std::collections::HashMap;

impl Store {
    /// Commits, in `conn`'s transaction, each exchange's question and empty
    /// answer in the conversation it names; fails whole unless every one is
    /// the plain case (see the module's notes).
    pub(super) async fn next_messages_on(
        &self,
        conn: &mut sqlx::AnyConnection,
        news: &[NewExchange<'_>],
    ) -> Result<Vec<Exchange>> {
        let ids: Vec<&str> = news.iter().filter_map(|new| new.conversation_id).collect();
        let mut distinct = ids.clone();
        distinct.sort_unstable();
        distinct.dedup();
        if ids.len() != news.len() || distinct.len() != ids.len() {
            return Err(not_plain("a conversation named twice, or none"));
        }
        let now = now_ms();

        // Marked active and read, the owner checked: a write first, so that
        // SQLite takes its write lock at once.
        let sql = format!(
            "UPDATE conversations SET updated_at = $1 WHERE {} RETURNING {CONVERSATION_COLUMNS}",
            (0..news.len())
                .map(|i| format!("(id = ${} AND owner_id = ${})", 2 * i + 2, 2 * i + 3))
                .collect::<Vec<_>>()
                .join(" OR ")
        );
        let mut query = sqlx::query(&sql).bind(now);
        for (new, id) in news.iter().zip(&ids) {
            query = query.bind(*id).bind(new.owner);
        }
        let mut conversations = HashMap::with_capacity(news.len());
        for row in query.fetch_all(&mut *conn).await? {
            let id: String = row.try_get("id")?;
            conversations.insert(id, conversation_from_rows(std::slice::from_ref(&row))?);
        }
        if conversations.len() != news.len() {
            return Err(not_plain("a conversation missing or someone else's"));
        }

        // The current messages of every one are its history. Replaced ones
        // still hold their places, but only the last place matters: that row
        // is read too, even if replaced (the unique index on
        // `(conversation_id, position)` finds it), the others are not.
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS}, conversation_id, position, replaced_at FROM messages \
             WHERE conversation_id IN ({}) AND (replaced_at IS NULL OR position = \
             (SELECT MAX(position) FROM messages AS later WHERE later.conversation_id = messages.conversation_id)) \
             ORDER BY position",
            parameters(1, news.len())
        );
        let mut query = sqlx::query(&sql);
        for id in &ids {
            query = query.bind(*id);
        }
        let mut histories: HashMap<String, (Vec<StoredMessage>, i64)> = HashMap::with_capacity(news.len());
        for row in query.fetch_all(&mut *conn).await? {
            let (history, last) = histories.entry(row.try_get("conversation_id")?).or_default();
            *last = (*last).max(row.try_get("position")?);
            if row.try_get::<Option<i64>, _>("replaced_at")?.is_none() {
                history.push(message_from_row(&row)?);
            }
        }
        if histories
            .values()
            .flat_map(|(history, _)| history)
            .any(|m| m.status == MessageStatus::Streaming)
        {
            return Err(not_plain("a row left streaming"));
        }

        if self.leases.is_some() {
            let sql = format!(
                "SELECT conversation_id FROM answer_leases WHERE conversation_id IN ({})",
                parameters(1, news.len())
            );
            let mut query = sqlx::query(&sql);
            for id in &ids {
                query = query.bind(*id);
            }
            if !query.fetch_all(&mut *conn).await?.is_empty() {
                return Err(not_plain("an answer under a lease"));
            }
            let owners: Vec<&str> = news.iter().map(|new| new.owner).collect();
            self.count_set_against_caps(conn, &owners).await?;
        }

        let mut exchanges = Vec::with_capacity(news.len());
        let mut settings_writes = Script::new(self.backend);
        for new in news {
            let id = new.conversation_id.expect("checked above");
            let (summary, stored) = conversations.remove(id).expect("checked above");
            let (earlier, last) = histories.remove(id).unwrap_or_default();
            let mut settings = new.settings.cloned().unwrap_or_else(|| stored.clone());
            let model_id = remember_settings(&mut settings_writes, id, &stored, &mut settings, new.model);
            exchanges.push((
                Exchange {
                    conversation: summary,
                    settings,
                    model_id,
                    created: false,
                    user_message_id: new_id(),
                    user_text: new.text.to_owned(),
                    answer_id: new_id(),
                    earlier,
                },
                last,
            ));
        }

        settings_writes.execute(&mut *conn).await?;
        let placed: Vec<(&Exchange, i64)> = exchanges
            .iter()
            .map(|(exchange, last)| (exchange, *last))
            .collect();
        insert_questions_and_answers(conn, &placed, now).await?;
        let exchanges: Vec<Exchange> = exchanges.into_iter().map(|(exchange, _)| exchange).collect();
        let owners: Vec<&str> = news.iter().map(|new| new.owner).collect();
        self.insert_leases(conn, &owners, &exchanges).await?;
        Ok(exchanges)
    }
}

/// Why a set goes back to be written one by one.
fn not_plain(why: &str) -> StoreError {
    StoreError::new(StoreErrorKind::Internal, format!("written one by one: {why}"))
}
