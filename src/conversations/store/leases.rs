//! One answer's lease, taken in the transaction that begins it, when
//! several instances share the database (see `set_caps` for a set's).

use super::{script::Script, LeasePolicy, Result, Store, StoreError, StoreErrorKind};
use sqlx::{Arguments, Row};

/// How a new conversation's first message takes its answer's lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FirstLease {
    /// Answers are not leased (one instance: SQLite).
    None,
    /// No cap can refuse it, and a new conversation has no other answer:
    /// it is one more statement of the message's script (on PostgreSQL, the
    /// whole write is then one statement, one round trip).
    InScript,
    /// The owner's caps count it: the script locks the owner's row, and
    /// [`Store::take_lease`] counts and takes it in the next statement.
    Counted,
}

impl LeasePolicy {
    /// Whether a cap can refuse a lease.
    fn has_caps(&self) -> bool {
        self.per_owner > 0 || self.per_owner_per_minute > 0
    }
}

impl Store {
    pub(super) fn first_lease(&self) -> FirstLease {
        match &self.leases {
            None => FirstLease::None,
            Some(policy) if policy.has_caps() => FirstLease::Counted,
            Some(_) => FirstLease::InScript,
        }
    }
}

impl Store {
    /// Adds to `writes` the lease of a new conversation's first answer,
    /// which nothing can refuse ([`FirstLease::InScript`]).
    pub(super) fn push_first_lease<'q>(
        &self,
        writes: &mut Script<'q>,
        owner: &'q str,
        conversation_id: &str,
        answer_id: &str,
    ) {
        let Some(policy) = &self.leases else {
            return;
        };
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
    /// that stores it (when several instances share the database). The
    /// lease is one per conversation: another instance's answer still being
    /// written refuses this one (`Busy`); so does the owner's count of
    /// answers being written anywhere reaching the cap. `owner_locked`: a
    /// statement before it in the transaction locked the owner's row.
    pub(super) async fn take_lease(
        &self,
        conn: &mut sqlx::AnyConnection,
        owner: &str,
        conversation_id: &str,
        answer_id: &str,
        owner_locked: bool,
    ) -> Result<()> {
        let Some(policy) = &self.leases else {
            return Ok(());
        };
        if policy.per_owner > 0 && !owner_locked {
            // The owner's row, locked: two instances admitting answers of
            // one owner at once count one after the other. (The count is
            // the next statement's: a statement sees what was committed
            // when it started, so it must start once the lock is held.)
            sqlx::query("SELECT id FROM owners WHERE id = $1 FOR UPDATE")
                .bind(owner)
                .fetch_all(&mut *conn)
                .await?;
        }
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
        if policy.per_owner > 0 && row.try_get::<i64, _>("held")? >= policy.per_owner as i64 {
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
