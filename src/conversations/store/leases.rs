//! One answer's lease, taken in the transaction that begins it, when
//! several instances share the database (see `set_caps` for a set's).

use super::{rows::scalar_i64, Result, Store, StoreError, StoreErrorKind};

impl Store {
    /// Leases the answer being begun to this instance, in the transaction
    /// that stores it (when several instances share the database). The
    /// lease is one per conversation: another instance's answer still being
    /// written refuses this one (`Busy`); so does the owner's count of
    /// answers being written anywhere reaching the cap.
    pub(super) async fn take_lease(
        &self,
        conn: &mut sqlx::AnyConnection,
        owner: &str,
        conversation_id: &str,
        answer_id: &str,
    ) -> Result<()> {
        let Some(policy) = &self.leases else {
            return Ok(());
        };
        let leased = sqlx::query("SELECT 1 FROM answer_leases WHERE conversation_id = $1")
            .bind(conversation_id)
            .fetch_all(&mut *conn)
            .await?;
        if !leased.is_empty() {
            return Err(StoreError::new(
                StoreErrorKind::Busy,
                "another instance writes an answer here",
            ));
        }
        if policy.per_owner > 0 {
            // The owner's row, locked: two instances admitting answers of
            // one owner at once count one after the other.
            sqlx::query("SELECT id FROM owners WHERE id = $1 FOR UPDATE")
                .bind(owner)
                .fetch_all(&mut *conn)
                .await?;
            let leased = sqlx::query("SELECT COUNT(*) AS n FROM answer_leases WHERE owner_id = $1")
                .bind(owner)
                .fetch_all(&mut *conn)
                .await?;
            if scalar_i64(leased, "n")? >= policy.per_owner as i64 {
                return Err(StoreError::new(
                    StoreErrorKind::OwnerAtLimit,
                    format!("{} answers being written", policy.per_owner),
                ));
            }
        }
        if policy.per_owner_per_minute > 0 {
            let counted = sqlx::query(&format!(
                "INSERT INTO owner_minutes (owner_id, minute, answers) VALUES ($1, {} / 60000, 1) \
                 ON CONFLICT (owner_id, minute) DO UPDATE SET answers = owner_minutes.answers + 1 \
                 RETURNING answers",
                super::PG_NOW_MS
            ))
            .bind(owner)
            .fetch_all(&mut *conn)
            .await?;
            if scalar_i64(counted, "answers")? > i64::from(policy.per_owner_per_minute) {
                return Err(StoreError::new(
                    StoreErrorKind::RateLimited,
                    "per-owner rate over all instances",
                ));
            }
        }
        // A race with another instance ends in the unique conversation id:
        // a unique violation is `Busy`.
        sqlx::query(&format!(
            "INSERT INTO answer_leases (answer_id, conversation_id, owner_id, instance_id, expires_at) \
             VALUES ($1, $2, $3, $4, {} + $5)",
            super::PG_NOW_MS
        ))
        .bind(answer_id)
        .bind(conversation_id)
        .bind(owner)
        .bind(&policy.instance_id)
        .bind(policy.ttl_ms)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}
