//! One answer's lease, taken in the transaction that begins it, when
//! several instances share the database (see `set_caps` for a set's).
//!
//! Invariants:
//! * With no per-owner cap, nothing but another answer in the conversation
//!   refuses a lease (the unique conversation id: `Busy`): it is a
//!   statement of the script that begins the answer.
//! * With one, the script locks the owner's row, and the next statement
//!   counts the owner's leases and takes this one within the caps: two
//!   instances admitting answers of one owner at once count one after the
//!   other.

use super::{script::Script, LeasePolicy, Result, Store, StoreError, StoreErrorKind};
use sqlx::{Arguments, Row};

impl LeasePolicy {
    /// Whether a cap can refuse a lease.
    fn has_caps(&self) -> bool {
        self.per_owner > 0 || self.per_owner_per_minute > 0
    }

    /// Whether the owner's leases are counted, under the lock of the
    /// owner's row (the minute's count is an upsert, which needs none).
    fn counts_held(&self) -> bool {
        self.per_owner > 0
    }
}

impl Store {
    /// Whether the owner's caps count an answer's lease: it is then taken
    /// by [`Store::take_lease`], in the statement after the script that
    /// begins the answer. Otherwise nothing but another answer in the
    /// conversation refuses it, and it is a statement of that script.
    pub(super) fn leases_counted(&self) -> bool {
        self.leases.as_ref().is_some_and(|policy| policy.has_caps())
    }

    /// Whether the script that begins an answer must lock the owner's row
    /// for its lease to be counted ([`Store::push_lease`]).
    pub(super) fn lease_locks_owner(&self) -> bool {
        self.leases.as_ref().is_some_and(|policy| policy.counts_held())
    }

    /// Adds to `writes`, the script that begins an answer, what the
    /// answer's lease needs (nothing when answers are not leased): the
    /// lease itself, unless a cap counts it ([`Store::leases_counted`]);
    /// then the lock of the owner's row, unless `writes` already takes it
    /// (`owner_locked`). Every statement is a round trip: on PostgreSQL the
    /// script is one, and a `BEGIN`, lease and `COMMIT` of their own were
    /// three more.
    pub(super) fn push_lease<'q>(
        &self,
        writes: &mut Script<'q>,
        owner: &'q str,
        conversation_id: &str,
        answer_id: &str,
        owner_locked: bool,
    ) {
        let Some(policy) = &self.leases else {
            return;
        };
        if policy.has_caps() {
            if policy.counts_held() && !owner_locked {
                // The count is the next statement's: a statement sees what
                // was committed when it started, so it must start once the
                // lock is held.
                writes.push(
                    "UPDATE owners SET created_at = created_at WHERE id = $1",
                    move |args| args.add(owner),
                );
            }
            return;
        }
        let (answer, conversation, instance, ttl) = (
            answer_id.to_owned(),
            conversation_id.to_owned(),
            policy.instance_id.clone(),
            policy.ttl_ms,
        );
        writes.push(&LEASE_UNCOUNTED, move |args| {
            args.add(answer)?;
            args.add(conversation)?;
            args.add(owner)?;
            args.add(instance)?;
            args.add(ttl)
        });
    }

    /// Leases the answer being begun to this instance, in the transaction
    /// that stores it, when a cap counts it ([`Store::leases_counted`]),
    /// after the script that begins the answer ([`Store::push_lease`]
    /// locked the owner's row in it: two instances admitting answers of one
    /// owner at once count one after the other). The lease is one per
    /// conversation: another instance's answer still being written refuses
    /// this one (`Busy`); so does the owner's count of answers being
    /// written anywhere reaching the cap.
    pub(super) async fn take_lease(
        &self,
        conn: &mut sqlx::AnyConnection,
        owner: &str,
        conversation_id: &str,
        answer_id: &str,
    ) -> Result<()> {
        let Some(policy) = self.leases.as_deref().filter(|policy| policy.has_caps()) else {
            return Ok(());
        };
        let rows = sqlx::query(&TAKE_LEASE)
            .bind(answer_id)
            .bind(conversation_id)
            .bind(owner)
            .bind(&policy.instance_id)
            .bind(policy.ttl_ms)
            .bind(policy.per_owner as i64)
            .bind(i64::from(policy.per_owner_per_minute))
            .fetch_all(&mut *conn)
            .await?;
        let row = rows
            .first()
            .ok_or_else(|| StoreError::new(StoreErrorKind::Internal, "no row from taking a lease"))?;
        if row.try_get::<i64, _>("leased")? == 1 {
            return Ok(());
        }
        if policy.counts_held() && row.try_get::<i64, _>("held")? >= policy.per_owner as i64 {
            return Err(StoreError::new(
                StoreErrorKind::OwnerAtLimit,
                format!("{} answers being written", policy.per_owner),
            ));
        }
        Err(StoreError::new(
            StoreErrorKind::RateLimited,
            "per-owner rate over all instances",
        ))
    }
}

/// Takes an answer's lease in one statement (one round trip), unless the
/// owner's caps refuse it: `$1` answer, `$2` conversation, `$3` owner, `$4`
/// instance, `$5` the lease's length in ms, `$6` answers being written at
/// once and `$7` answers a minute per owner (0: no cap). It counts the
/// owner's leases, counts this answer in its minute (only with a cap), and
/// inserts the lease only within both caps; it reads `leased` (1 or 0)
/// and `held`, the owner's leases before this one (which cap refused).
///
/// A second answer in the conversation, from any instance, is refused by
/// the unique conversation id: a unique violation is `Busy`. An answer
/// refused by a cap has still been counted in its minute; the caller's
/// transaction, which fails with it, takes that back.
static TAKE_LEASE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH held AS (SELECT COUNT(*) AS n FROM answer_leases WHERE owner_id = $3), \
         minute AS (INSERT INTO owner_minutes (owner_id, minute, answers) \
                    SELECT $3, {now} / 60000, 1 WHERE $7 > 0 \
                    ON CONFLICT (owner_id, minute) DO UPDATE SET answers = owner_minutes.answers + 1 \
                    RETURNING answers), \
         lease AS (INSERT INTO answer_leases (answer_id, conversation_id, owner_id, instance_id, expires_at) \
                   SELECT $1, $2, $3, $4, {now} + $5 \
                   WHERE ($6 = 0 OR (SELECT n FROM held) < $6) \
                   AND ($7 = 0 OR (SELECT answers FROM minute) <= $7) \
                   RETURNING 1) \
         SELECT (SELECT COUNT(*) FROM lease) AS leased, (SELECT n FROM held) AS held",
        now = super::PG_NOW_MS
    )
});

/// A lease no cap counts: `$1` answer, `$2` conversation, `$3` owner, `$4`
/// instance, `$5` the lease's length in ms.
static LEASE_UNCOUNTED: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "INSERT INTO answer_leases (answer_id, conversation_id, owner_id, instance_id, expires_at) \
         VALUES ($1, $2, $3, $4, {now} + $5)",
        now = super::PG_NOW_MS
    )
});
