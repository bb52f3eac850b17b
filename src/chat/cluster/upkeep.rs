//! The lease upkeep, once a second on every instance:
//! * renews this instance's leases (every third of a lease) and says it is
//!   alive;
//! * marks the answers followed here as followed (their owners read that
//!   before abandoning them);
//! * takes over expired leases (their instance died): the answer is stored
//!   `interrupted` with the text its events hold, and ends with a `done`;
//! * deletes the events of answers that ended more than `linger` ago, and
//!   the per-owner counts of past minutes.

use super::{Cluster, EVENTS_CHANNEL, PG_NOW_MS};
use crate::{
    chat::{
        record::{AnswerRecorder, AnswerRef, Checkpoints},
        relay::encode,
        Done, StreamEvent, STOPPED_REASON,
    },
    conversations::store::StoreError,
    sse,
};
use sqlx::Row;
use std::time::{Duration, Instant};

pub(super) const TICK: Duration = Duration::from_secs(1);
/// Leases taken over in one go (the rest on the next tick).
const TAKEOVER_BATCH: i64 = 20;

pub(super) async fn run(cluster: Cluster) {
    let timing = cluster.timing();
    let renew_every = (timing.lease / 3).max(TICK);
    let mut renewed = Instant::now();
    let mut cleaned = Instant::now();
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if renewed.elapsed() >= renew_every {
            renewed = Instant::now();
            if let Err(err) = renew(&cluster).await {
                tracing::warn!(error = %err, "could not renew this instance's answer leases");
            }
        }
        if let Err(err) = cluster.touch_followed(&cluster.followed_here()).await {
            tracing::debug!(error = %err, "could not mark followed answers");
        }
        match take_over_expired(&cluster).await {
            Ok(0) => {}
            Ok(taken) => tracing::warn!(
                taken,
                "answers of an instance that stopped answering are stored interrupted"
            ),
            Err(err) => {
                tracing::debug!(error = %err, "lease takeover skipped: the database is not answering")
            }
        }
        if cleaned.elapsed() >= Duration::from_secs(10) {
            cleaned = Instant::now();
            if let Err(err) = delete_lingering(&cluster).await {
                tracing::debug!(error = %err, "old answer events not deleted yet");
            }
        }
    }
}

async fn renew(cluster: &Cluster) -> Result<(), sqlx::Error> {
    let lease_ms = cluster.timing().lease.as_millis() as i64;
    // Passing over the leases a transaction holds (`SKIP LOCKED`): a
    // committing lane that ends answers holds their leases, deleting them,
    // and may go on to another of this instance's; waiting for it while
    // holding the rest deadlocked with it, and PostgreSQL ended one of the
    // two after a second. A lease passed over is being ended, or is renewed
    // on the next round (every third of a lease).
    sqlx::query(&format!(
        "UPDATE answer_leases SET expires_at = {PG_NOW_MS} + $2 WHERE answer_id IN \
         (SELECT answer_id FROM answer_leases WHERE instance_id = $1 FOR UPDATE SKIP LOCKED)"
    ))
    .bind(cluster.instance_id())
    .bind(lease_ms)
    .execute(cluster.pool())
    .await?;
    sqlx::query(&format!(
        "UPDATE instances SET seen_at = {PG_NOW_MS} WHERE id = $1"
    ))
    .bind(cluster.instance_id())
    .execute(cluster.pool())
    .await?;
    Ok(())
}

/// Takes over the leases that expired, and settles their answers. Returns
/// how many were taken.
async fn take_over_expired(cluster: &Cluster) -> Result<usize, StoreError> {
    take_over(cluster, &format!("expires_at < {PG_NOW_MS}")).await
}

/// Settles the answers leased to this instance's id before it started (a
/// previous run of it, now dead).
pub(super) async fn take_over_own(cluster: &Cluster) -> Result<usize, StoreError> {
    let mut settled = 0;
    loop {
        match take_over(cluster, "instance_id = $1").await? {
            0 => return Ok(settled),
            n => settled += n,
        }
    }
}

async fn take_over(cluster: &Cluster, which: &str) -> Result<usize, StoreError> {
    let lease_ms = cluster.timing().lease.as_millis() as i64;
    // Taking the lease first (`SKIP LOCKED`, renewed to us) means one
    // instance settles each answer, and should it die doing so, another
    // takes over again.
    let taken = sqlx::query(&format!(
        "UPDATE answer_leases SET instance_id = $1, expires_at = {PG_NOW_MS} + $2 \
         WHERE answer_id IN (SELECT answer_id FROM answer_leases WHERE {which} \
           ORDER BY expires_at LIMIT $3 FOR UPDATE SKIP LOCKED) \
         RETURNING answer_id, conversation_id, owner_id"
    ))
    .bind(cluster.instance_id())
    .bind(lease_ms)
    .bind(TAKEOVER_BATCH)
    .fetch_all(cluster.pool())
    .await?;
    for row in &taken {
        let answer = AnswerRef {
            answer_id: row.try_get("answer_id")?,
            conversation_id: row.try_get("conversation_id")?,
            owner: row.try_get("owner_id")?,
            day: 0,
        };
        settle(cluster, answer).await?;
    }
    Ok(taken.len())
}

/// Stores an abandoned answer as `interrupted` with the text its events
/// hold, ends its events with `done`, and drops its lease.
async fn settle(cluster: &Cluster, answer: AnswerRef) -> Result<(), StoreError> {
    let rows = sqlx::query("SELECT seq, frame, last FROM answer_events WHERE answer_id = $1 ORDER BY seq")
        .bind(&answer.answer_id)
        .fetch_all(cluster.pool())
        .await?;
    let last_seq = match rows.last() {
        Some(row) => row.try_get::<i64, _>("seq")?,
        None => 0,
    };
    let already_ended = match rows.last() {
        Some(row) => row.try_get::<bool, _>("last")?,
        None => false,
    };
    let answer_id = answer.answer_id.clone();
    if !already_ended {
        let mut recorder = AnswerRecorder::new(
            cluster.inner.store.clone(),
            answer,
            Instant::now(),
            Checkpoints {
                every: Duration::MAX,
                bytes: usize::MAX,
            },
        );
        let mut parser = sse::Parser::new();
        for row in &rows {
            let frame: String = row.try_get("frame")?;
            parser.feed(frame.as_bytes(), |event| {
                if let Some(Ok(event)) = StreamEvent::decode(&event.event, &event.data) {
                    recorder.record(&event);
                }
            });
        }
        let (content, blocks) = recorder.into_parts();
        cluster
            .inner
            .store
            .settle_abandoned(&answer_id, &content, &blocks)
            .await?;
    }
    let mut tx = cluster.pool().begin().await?;
    if !already_ended {
        let done = encode(last_seq as u64 + 1, &StreamEvent::Done(Done::new(STOPPED_REASON)));
        sqlx::query(&format!(
            "INSERT INTO answer_events (answer_id, seq, frame, last, created_at) \
             VALUES ($1, $2, $3, TRUE, {PG_NOW_MS}) ON CONFLICT DO NOTHING"
        ))
        .bind(&answer_id)
        .bind(last_seq + 1)
        .bind(String::from_utf8_lossy(&done).into_owned())
        .execute(&mut *tx)
        .await?;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(EVENTS_CHANNEL)
            .bind(&answer_id)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("DELETE FROM answer_leases WHERE answer_id = $1 AND instance_id = $2")
        .bind(&answer_id)
        .bind(cluster.instance_id())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Events of answers that ended more than `linger` ago are deleted (the
/// stored answers remain). Every answer's events end: by its owner, or by
/// the instance that took over its lease.
async fn delete_lingering(cluster: &Cluster) -> Result<(), sqlx::Error> {
    let linger_ms = cluster.timing().linger.as_millis() as i64;
    sqlx::query(&format!(
        "DELETE FROM answer_events WHERE answer_id IN ( \
           SELECT answer_id FROM answer_events WHERE last AND created_at < {PG_NOW_MS} - $1)"
    ))
    .bind(linger_ms)
    .execute(cluster.pool())
    .await?;
    // The per-owner rate counts this minute only.
    sqlx::query(&format!(
        "DELETE FROM owner_minutes WHERE minute < {PG_NOW_MS} / 60000 - 1"
    ))
    .execute(cluster.pool())
    .await?;
    Ok(())
}
