//! Many new conversations begun at once, written as sets.
//!
//! A burst of people pressing Enter is mostly first messages: each starts a
//! conversation of its own, so nothing needs reading and nothing can be
//! busy. Under group commit such exchanges are written together, in sets
//! of a fixed size with one `INSERT` per table, instead of four statements
//! and a savepoint each: every statement is a round trip to the database
//! (on SQLite, to its connection's thread), and these are on the way to
//! every first token. A burst of 1,000 stores its messages in half the time
//! (see `group_commit::TOGETHER` for the set size).
//!
//! Invariants:
//! * The rows are exactly those [`Store::exchange_on`] writes for one such
//!   exchange (same ids, places 1 and 2, the answer `streaming`, the lease
//!   when instances share the database).
//! * The caller runs this in a savepoint and, when it fails, writes the
//!   exchanges one by one, so that a failure stays with the exchange whose
//!   it is.
//! * With several instances, the set's answers are counted against their
//!   owners' caps together (`set_caps`); a set that would pass one is
//!   written one by one, where each gets its own refusal.

use super::{new_id, now_ms, settings_json, Exchange, NewExchange, Result, Store, PG_NOW_MS};

impl Store {
    /// Commits, in `conn`'s transaction, each exchange's new conversation,
    /// its user message and its empty answer. Every exchange names no
    /// conversation.
    pub(super) async fn new_conversations_on(
        &self,
        conn: &mut sqlx::AnyConnection,
        news: &[NewExchange<'_>],
    ) -> Result<Vec<Exchange>> {
        debug_assert!(news.iter().all(|new| new.conversation_id.is_none()));
        let now = now_ms();
        let exchanges: Vec<Exchange> = news
            .iter()
            .map(|new| {
                let (conversation, settings, model_id) = new.fresh_conversation(now);
                Exchange {
                    conversation,
                    settings,
                    model_id,
                    created: true,
                    user_message_id: new_id(),
                    user_text: new.text.to_owned(),
                    answer_id: new_id(),
                    earlier: Vec::new(),
                }
            })
            .collect();

        // Owners first, as one exchange does: SQLite takes its write lock
        // with the first write.
        let mut owners: Vec<&str> = news.iter().map(|new| new.owner).collect();
        owners.sort_unstable();
        owners.dedup();
        let sql = format!(
            "INSERT INTO owners (id, created_at) VALUES {} ON CONFLICT (id) DO NOTHING",
            rows(owners.len(), 2, plain)
        );
        let mut query = sqlx::query(&sql);
        for owner in &owners {
            query = query.bind(*owner).bind(now);
        }
        query.execute(&mut *conn).await?;

        let sql = format!(
            "INSERT INTO conversations (id, owner_id, title, created_at, updated_at, settings) VALUES {}",
            rows(news.len(), 6, plain)
        );
        let mut query = sqlx::query(&sql);
        for (new, exchange) in news.iter().zip(&exchanges) {
            let conversation = &exchange.conversation;
            query = query
                .bind(conversation.id.clone())
                .bind(new.owner.to_owned())
                .bind(conversation.title.clone())
                .bind(now)
                .bind(now)
                .bind(settings_json(&exchange.settings));
        }
        query.execute(&mut *conn).await?;

        let firsts: Vec<(&Exchange, i64)> = exchanges.iter().map(|exchange| (exchange, 0)).collect();
        insert_questions_and_answers(conn, &firsts, now).await?;

        if self.leases.is_some() {
            // A new conversation has no lease yet: none to check. Its owner
            // may have others.
            let owners: Vec<&str> = news.iter().map(|new| new.owner).collect();
            self.count_set_against_caps(conn, &owners).await?;
            self.insert_leases(conn, &owners, &exchanges).await?;
        }
        Ok(exchanges)
    }
}

/// Inserts each exchange's question and its empty `streaming` answer in
/// the two places after `last`, the last place its conversation holds.
pub(super) async fn insert_questions_and_answers(
    conn: &mut sqlx::AnyConnection,
    exchanges: &[(&Exchange, i64)],
    now: i64,
) -> Result<()> {
    let sql = format!(
        "INSERT INTO messages (id, conversation_id, position, role, content, status, model_id, created_at) \
         VALUES {}",
        rows(exchanges.len() * 2, 8, plain)
    );
    let mut query = sqlx::query(&sql);
    for (exchange, last) in exchanges {
        let conversation_id = &exchange.conversation.id;
        query = query
            .bind(exchange.user_message_id.clone())
            .bind(conversation_id.clone())
            .bind(last + 1)
            .bind("user")
            .bind(exchange.user_text.clone())
            .bind("complete")
            .bind(None::<String>)
            .bind(now)
            .bind(exchange.answer_id.clone())
            .bind(conversation_id.clone())
            .bind(last + 2)
            .bind("assistant")
            .bind("")
            .bind("streaming")
            .bind(Some(exchange.model_id.clone()))
            .bind(now);
    }
    query.execute(&mut *conn).await?;
    Ok(())
}

impl Store {
    /// Takes a lease for each exchange's answer, for its owner (`owners`,
    /// in the same order), when instances share the database.
    pub(super) async fn insert_leases(
        &self,
        conn: &mut sqlx::AnyConnection,
        owners: &[&str],
        exchanges: &[Exchange],
    ) -> Result<()> {
        let Some(policy) = &self.leases else {
            return Ok(());
        };
        let sql = format!(
            "INSERT INTO answer_leases (answer_id, conversation_id, owner_id, instance_id, expires_at) \
             VALUES {}",
            rows(exchanges.len(), 5, |p| format!(
                "({}, {}, {}, {}, {PG_NOW_MS} + {})",
                p[0], p[1], p[2], p[3], p[4]
            ))
        );
        let mut query = sqlx::query(&sql);
        for (owner, exchange) in owners.iter().zip(exchanges) {
            query = query
                .bind(exchange.answer_id.clone())
                .bind(exchange.conversation.id.clone())
                .bind(owner.to_string())
                .bind(policy.instance_id.clone())
                .bind(policy.ttl_ms);
        }
        query.execute(&mut *conn).await?;
        Ok(())
    }
}

/// `$from, $from+1, …`: `count` numbered parameters, for `IN (…)`.
pub(super) fn parameters(from: usize, count: usize) -> String {
    (from..from + count)
        .map(|p| format!("${p}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `count` rows of `width` numbered parameters (`$1` on), each written
/// by `row` from its parameters' names.
pub(super) fn rows(count: usize, width: usize, row: impl Fn(&[String]) -> String) -> String {
    (0..count)
        .map(|r| {
            let params: Vec<String> = (1..=width).map(|c| format!("${}", r * width + c)).collect();
            row(&params)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `($1, $2, …)`.
pub(super) fn plain(params: &[String]) -> String {
    format!("({})", params.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_number_their_parameters_in_order() {
        assert_eq!(rows(2, 3, plain), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(
            rows(2, 2, |p| format!("({} + 1, {})", p[0], p[1])),
            "($1 + 1, $2), ($3 + 1, $4)"
        );
    }
}
