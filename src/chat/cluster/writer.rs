//! The event writer: one task per instance puts the frames of every answer
//! written here into `answer_events`, in batches.
//!
//! A batch holds one row per answer: the answer's frames queued since the
//! previous batch, joined, under the `seq` (SSE id) of the last of them.
//! Readers cut a row at the id they resume from ([`super::follow`]). A row
//! per frame was 200 rows for a 200-token answer, each inserted, indexed,
//! logged and later deleted by PostgreSQL: most of its work under a burst.
//!
//! A batch is one statement: the rows (an `INSERT … SELECT FROM UNNEST`),
//! `NOTIFY`s naming its answers (a few, each naming up to ~190), and the
//! leases of answers whose last frame it holds. It goes out `flush` after
//! its first frame, or at once when a frame other than text arrives (a tool
//! call, the end: what followers must not wait for), taking along whatever
//! else is queued by then. While the database is away the batch is retried
//! with backoff and new frames queue behind it, so the rows of one answer
//! always commit in order.

use super::{Cluster, ANSWER_IDS_SEPARATOR, EVENTS_CHANNEL, PG_NOW_MS};
use bytes::Bytes;
use std::{collections::HashMap, sync::Arc, time::Duration};
use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};

pub(super) enum Write {
    Frame(Frame),
    /// The answer is stored: drop its lease once its frames are written.
    Release(String),
    /// Says when everything queued before it is written (shutdown).
    Flush(oneshot::Sender<()>),
}

pub(super) struct Frame {
    pub answer_id: Arc<str>,
    pub seq: i64,
    pub frame: Bytes,
    pub urgent: bool,
    pub last: bool,
}

/// A batch goes out early once it holds this many bytes.
const BATCH_BYTES: usize = 256 * 1024;

/// The rows of a batch: one per answer, holding its frames queued since
/// the last batch, joined, under the `seq` of the last of them.
#[derive(Default)]
struct Batch {
    answer_ids: Vec<String>,
    seqs: Vec<i64>,
    frames: Vec<String>,
    lasts: Vec<bool>,
    /// Each answer's row in the vectors above.
    rows: HashMap<Arc<str>, usize>,
    bytes: usize,
    releases: Vec<String>,
    flushed: Vec<oneshot::Sender<()>>,
    urgent: bool,
}

impl Batch {
    fn add(&mut self, write: Write) {
        match write {
            Write::Frame(frame) => {
                self.urgent |= frame.urgent;
                self.bytes += frame.frame.len();
                // Frames are JSON in SSE lines: UTF-8 by construction.
                let text = String::from_utf8_lossy(&frame.frame);
                // An answer's frames reach the writer in order: the row's
                // frames run on from the last, and its `seq` is the newest.
                match self.rows.get(&frame.answer_id) {
                    Some(&row) => {
                        self.frames[row].push_str(&text);
                        self.seqs[row] = frame.seq;
                        self.lasts[row] = frame.last;
                    }
                    None => {
                        self.rows.insert(frame.answer_id.clone(), self.seqs.len());
                        self.answer_ids.push(frame.answer_id.to_string());
                        self.seqs.push(frame.seq);
                        self.frames.push(text.into_owned());
                        self.lasts.push(frame.last);
                    }
                }
            }
            Write::Release(answer_id) => {
                // A release goes with the frames queued before it.
                self.urgent = true;
                self.releases.push(answer_id);
            }
            Write::Flush(done) => {
                self.urgent = true;
                self.flushed.push(done);
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.seqs.is_empty() && self.releases.is_empty()
    }

    fn full(&self) -> bool {
        self.urgent || self.bytes >= BATCH_BYTES
    }
}

pub(super) async fn run(cluster: Cluster, mut queued: mpsc::UnboundedReceiver<Write>) {
    let flush = cluster.timing().flush;
    loop {
        let mut batch = Batch::default();
        match queued.recv().await {
            Some(first) => batch.add(first),
            None => return,
        }
        let due = Instant::now() + flush;
        while !batch.full() {
            match tokio::time::timeout_at(due, queued.recv()).await {
                Ok(Some(write)) => batch.add(write),
                Ok(None) | Err(_) => break,
            }
        }
        // Whatever else is queued already rides along.
        while let Ok(write) = queued.try_recv() {
            batch.add(write);
        }
        write_until_done(&cluster, &batch).await;
        for done in batch.flushed {
            let _ = done.send(());
        }
    }
}

async fn write_until_done(cluster: &Cluster, batch: &Batch) {
    if batch.is_empty() {
        return;
    }
    let mut wait = Duration::from_millis(100);
    let mut tries = 1;
    loop {
        match write(cluster, batch).await {
            Ok(()) => {
                if tries > 1 {
                    tracing::info!(tries, "answer events written once the database was back");
                }
                return;
            }
            Err(err) => {
                if tries == 1 {
                    tracing::warn!(error = %err, "could not write answer events; retrying");
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
                tries += 1;
            }
        }
    }
}

async fn write(cluster: &Cluster, batch: &Batch) -> Result<(), sqlx::Error> {
    // One statement, so one round trip and a transaction of its own: a
    // `BEGIN`, the rows, the releases and a `COMMIT` were four, and under
    // load every round trip waits for the database's process to be
    // scheduled. `ON CONFLICT DO NOTHING`: a retried batch that did commit,
    // or an instance cut off long enough for its answer to be taken over,
    // writes nothing twice. The `NOTIFY`s go out when it commits.
    sqlx::query(&WRITE_BATCH)
        .bind(&batch.answer_ids)
        .bind(&batch.seqs)
        .bind(&batch.frames)
        .bind(&batch.lasts)
        .bind(&batch.releases)
        .bind(cluster.instance_id())
        .execute(cluster.pool())
        .await?;
    Ok(())
}

/// A batch: `$1`–`$4` its frames' answers, ids, frames and whether each is
/// the last; `$5` the answers whose leases it releases, `$6` this instance.
///
/// The answers written go out as few `NOTIFY`s as fit them, their ids
/// joined by commas, each payload under PostgreSQL's limit of 8,000 bytes
/// (a running sum of the ids' lengths cut every `NOTIFY_BYTES`). A
/// `NOTIFY` per answer was a thousand per batch under a burst: each queued
/// by PostgreSQL, sent to every instance's listener and decoded there.
static WRITE_BATCH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH written AS ( \
           INSERT INTO answer_events (answer_id, seq, frame, last, created_at) \
           SELECT a, s, f, l, {PG_NOW_MS} FROM UNNEST($1::TEXT[], $2::BIGINT[], $3::TEXT[], $4::BOOLEAN[]) \
             AS t(a, s, f, l) \
           ON CONFLICT DO NOTHING RETURNING answer_id), \
         released AS ( \
           DELETE FROM answer_leases WHERE answer_id = ANY($5::TEXT[]) AND instance_id = $6), \
         answers AS (SELECT DISTINCT answer_id FROM written) \
         SELECT pg_notify('{EVENTS_CHANNEL}', string_agg(answer_id, '{ANSWER_IDS_SEPARATOR}')) FROM ( \
           SELECT answer_id, SUM(LENGTH(answer_id) + 1) OVER (ORDER BY answer_id) / {NOTIFY_BYTES} AS part \
           FROM answers) AS a \
         GROUP BY part"
    )
});

/// Where a batch's `NOTIFY` payloads are cut: an answer id past it still
/// fits under PostgreSQL's 8,000 bytes (ids are UUIDs, 36 bytes).
const NOTIFY_BYTES: usize = 7_000;
