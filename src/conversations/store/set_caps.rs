//! The per-owner caps of instances that share a database (answers being
//! written at once, answers begun per minute), counted for a set of
//! exchanges written together.
//!
//! Invariants:
//! * Counted as [`Store::take_lease`] counts one exchange, and under the
//!   same locks: the owners' rows are locked (in one order, so two lanes or
//!   instances never wait on each other in a cycle) before their leases are
//!   counted; the minute's count is an upsert.
//! * A set that would take any owner past a cap fails whole: written one by
//!   one, each exchange then gets its own refusal, exactly as when alone.

use super::{new_conversations::parameters, Result, Store, StoreError, StoreErrorKind, PG_NOW_MS};
use sqlx::Row;
use std::collections::BTreeMap;

impl Store {
    /// Counts a set's new answers, one per entry of `owners`, against each
    /// owner's caps.
    pub(super) async fn count_set_against_caps(
        &self,
        conn: &mut sqlx::AnyConnection,
        owners: &[&str],
    ) -> Result<()> {
        let Some(policy) = &self.leases else {
            return Ok(());
        };
        // Sorted: the order the rows are locked in.
        let mut answers: BTreeMap<&str, i64> = BTreeMap::new();
        for owner in owners {
            *answers.entry(owner).or_default() += 1;
        }
        let list = |from: usize| parameters(from, answers.len());
        if policy.per_owner > 0 {
            let sql = format!(
                "SELECT id FROM owners WHERE id IN ({}) ORDER BY id FOR UPDATE",
                list(1)
            );
            let mut query = sqlx::query(&sql);
            for owner in answers.keys() {
                query = query.bind(*owner);
            }
            query.fetch_all(&mut *conn).await?;
            let sql = format!(
                "SELECT owner_id, COUNT(*) AS n FROM answer_leases WHERE owner_id IN ({}) GROUP BY owner_id",
                list(1)
            );
            let mut query = sqlx::query(&sql);
            for owner in answers.keys() {
                query = query.bind(*owner);
            }
            for row in query.fetch_all(&mut *conn).await? {
                let owner: String = row.try_get("owner_id")?;
                let leased: i64 = row.try_get("n")?;
                if leased + answers.get(owner.as_str()).copied().unwrap_or(0) > policy.per_owner as i64 {
                    return Err(over("answers being written at once"));
                }
            }
            if answers.values().any(|&n| n > policy.per_owner as i64) {
                return Err(over("answers being written at once"));
            }
        }
        if policy.per_owner_per_minute > 0 {
            let sql = format!(
                "INSERT INTO owner_minutes (owner_id, minute, answers) VALUES {} \
                 ON CONFLICT (owner_id, minute) DO UPDATE SET answers = owner_minutes.answers + EXCLUDED.answers \
                 RETURNING answers",
                (0..answers.len())
                    .map(|i| format!("(${}, {PG_NOW_MS} / 60000, ${})", 2 * i + 1, 2 * i + 2))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let mut query = sqlx::query(&sql);
            for (owner, n) in &answers {
                query = query.bind(*owner).bind(*n);
            }
            for row in query.fetch_all(&mut *conn).await? {
                if row.try_get::<i64, _>("answers")? > i64::from(policy.per_owner_per_minute) {
                    return Err(over("answers begun this minute"));
                }
            }
        }
        Ok(())
    }
}

/// A set that would take an owner past a cap: written one by one instead.
fn over(what: &str) -> StoreError {
    StoreError::new(
        StoreErrorKind::Internal,
        format!("written one by one: an owner's {what} over the cap"),
    )
}
