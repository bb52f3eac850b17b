//! Several instances on one PostgreSQL: the answer's events, its lease,
//! Stop and Approve/Deny reach every instance through the database.
//!
//! With SQLite there is one process and none of this runs: an answer's
//! events live only in its generation's memory ([`super::generation`]).
//! With PostgreSQL the instance writing an answer (its *owner*) still serves
//! its own listeners from memory; the database carries what the others need.
//!
//! Invariants:
//! * **Events.** The owner appends every frame of an answer to
//!   `answer_events`, in order, in batches ([`writer`]): every
//!   `event_flush_ms`, or at once for any event but text. A row holds the
//!   frames of one answer in one batch, joined; its `seq` is the SSE id of
//!   the last of them (each frame starts with its own `id:` line).
//!   Each batch commits with `NOTIFY`s carrying only answer ids (several
//!   each, comma-separated). A listener
//!   on another instance reads `seq > last seen` and waits for a wake-up
//!   ([`follow`]); wake-ups are not replayed, so after the notification
//!   connection drops every follower re-reads. Batches of one answer commit
//!   in order, so a reader never sees a gap.
//! * **Leases.** An answer's lease row is taken in the transaction that
//!   stores its user message (one per conversation: another instance's new
//!   answer there is refused with 409), renewed by its instance every third
//!   of `lease_secs`, and deleted in the transaction that stores the answer
//!   (so the conversation takes its next answer as soon as `done` is sent). An
//!   instance that finds a lease expired takes it over ([`upkeep`]): it
//!   rebuilds the answer's text from the events written, stores it
//!   `interrupted` (unless the last checkpoint holds more), and appends a
//!   `done` so followers end.
//! * **Control.** Stop and Approve/Deny sent to an instance that does not
//!   own the answer are `NOTIFY`d on a control channel; the owner acts on
//!   them as if they had been sent to it.
//! * **Grace.** An answer with no listener on its owner is not abandoned
//!   while listeners on other instances follow it: they mark
//!   `followed_at`, which the owner reads before giving up.
//! * **Restart.** An instance keeps its id in the data directory (locked
//!   while it runs), so on start it settles at once the answers its
//!   previous run left leased.
//! * **Secret.** Every instance records a fingerprint of its cookie secret;
//!   one whose secret differs from a live instance's refuses to start.

mod follow;
mod upkeep;
mod writer;

use crate::conversations::store::{Store, PG_NOW_MS};
use bytes::Bytes;
use sqlx::{postgres::PgPoolOptions, PgPool, Row};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::sync::{mpsc, watch};

/// The channel whose notifications say "answers X, Y, … have new events".
const EVENTS_CHANNEL: &str = "bedrock_chat_events";
/// What separates the answer ids of one [`EVENTS_CHANNEL`] notification.
const ANSWER_IDS_SEPARATOR: char = ',';
/// The channel of Stop and Approve/Deny requests for another instance.
const CONTROL_CHANNEL: &str = "bedrock_chat_control";

/// How the cluster behaves; from `[streams]` in Leptos.toml.
#[derive(Debug, Clone, Copy)]
pub struct ClusterTiming {
    pub lease: Duration,
    pub flush: Duration,
    /// How long a finished answer's events stay readable.
    pub linger: Duration,
    pub keep_alive: Duration,
}

/// A request for the instance that owns an answer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Control {
    Stop,
    Decide { call_id: String, approve: bool },
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ControlMessage {
    answer_id: String,
    control: Control,
}

/// What acts on control requests for this instance's answers: the answer
/// id and the request.
pub type ControlHandler = Arc<dyn Fn(&str, Control) + Send + Sync>;

/// This instance's handle on the shared database; cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    /// Held while the instance runs: its id is not used by another process.
    _id_lock: Option<std::fs::File>,
    store: Store,
    instance_id: String,
    timing: ClusterTiming,
    writes: mpsc::UnboundedSender<writer::Write>,
    /// Followers on this instance of answers written elsewhere: a wake-up
    /// counter per answer, and how many follow it.
    following: Mutex<HashMap<String, Followed>>,
    on_control: Mutex<Option<ControlHandler>>,
}

struct Followed {
    wake: watch::Sender<u64>,
    followers: usize,
}

/// Who may read an answer's events, and whether it is still being written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedAnswer {
    pub owner_id: String,
    /// An instance holds its lease (it is being written).
    pub leased: bool,
    /// Its events so far (the last `seq`; 0 when none are written yet).
    pub last_seq: i64,
    /// Its last event is written.
    pub finished: bool,
}

impl Cluster {
    /// Joins the instances serving `database_url`: checks that they share
    /// this cookie secret (`secret_tag`), then starts the event writer, the
    /// notification listener and the lease upkeep.
    pub async fn start(
        database_url: &str,
        store: Store,
        instance_id: String,
        id_lock: Option<std::fs::File>,
        secret_tag: &str,
        timing: ClusterTiming,
    ) -> Result<Self, String> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            .connect(database_url)
            .await
            .map_err(|e| format!("cannot connect the instances' event log: {e}"))?;
        register_instance(&pool, &instance_id, secret_tag, timing.lease).await?;
        let (writes, queued) = mpsc::unbounded_channel();
        let cluster = Self {
            inner: Arc::new(Inner {
                pool,
                _id_lock: id_lock,
                store,
                instance_id,
                timing,
                writes,
                following: Mutex::default(),
                on_control: Mutex::default(),
            }),
        };
        // Leases still held under this id are a previous run's: it died.
        match upkeep::take_over_own(&cluster).await {
            Ok(0) => {}
            Ok(settled) => tracing::warn!(
                settled,
                "answers cut off by this instance's last run are marked interrupted"
            ),
            Err(err) => {
                return Err(format!(
                    "cannot settle the answers of this instance's last run: {err}"
                ))
            }
        }
        tokio::spawn(writer::run(cluster.clone(), queued));
        tokio::spawn(follow::listen(cluster.clone()));
        tokio::spawn(upkeep::run(cluster.clone()));
        Ok(cluster)
    }

    pub fn instance_id(&self) -> &str {
        &self.inner.instance_id
    }

    pub fn timing(&self) -> ClusterTiming {
        self.inner.timing
    }

    fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// Who acts on Stop and Approve/Deny sent to other instances for
    /// answers written here.
    pub fn on_control(&self, handler: ControlHandler) {
        *self.inner.on_control.lock().expect("control handler lock") = Some(handler);
    }

    /// Queues frame `seq` of an answer written here for the database.
    /// `urgent` frames (anything but text) go out without waiting for the
    /// batch; `last` is the answer's terminal frame.
    pub fn append(&self, answer_id: &Arc<str>, seq: u64, frame: Bytes, urgent: bool, last: bool) {
        let _ = self.inner.writes.send(writer::Write::Frame(writer::Frame {
            answer_id: answer_id.clone(),
            seq: seq as i64,
            frame,
            urgent: urgent || last,
            last,
        }));
    }

    /// The answer's reservation is gone: its lease goes (if the final save
    /// has not dropped it already) once its queued frames are written.
    pub fn release(&self, answer_id: &str) {
        let _ = self
            .inner
            .writes
            .send(writer::Write::Release(answer_id.to_owned()));
    }

    /// Waits until every frame and release queued so far is written (the
    /// end of a shutdown), or `limit` passes.
    pub async fn flush(&self, limit: Duration) {
        let (done, written) = tokio::sync::oneshot::channel();
        if self.inner.writes.send(writer::Write::Flush(done)).is_ok() {
            let _ = tokio::time::timeout(limit, written).await;
        }
    }

    /// What the database knows of an answer written (or recently written)
    /// by any instance; `None` when it has neither a lease nor events.
    pub async fn answer(&self, answer_id: &str) -> Result<Option<SharedAnswer>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT l.owner_id AS leased_to, \
               (SELECT c.owner_id FROM messages m JOIN conversations c ON c.id = m.conversation_id \
                WHERE m.id = $1) AS stored_owner, \
               (SELECT COALESCE(MAX(seq), 0) FROM answer_events WHERE answer_id = $1) AS last_seq, \
               EXISTS (SELECT 1 FROM answer_events WHERE answer_id = $1 AND last) AS finished \
             FROM (SELECT 1) AS one LEFT JOIN answer_leases l ON l.answer_id = $1",
        )
        .bind(answer_id)
        .fetch_one(self.pool())
        .await?;
        let leased_to: Option<String> = row.try_get("leased_to")?;
        let stored_owner: Option<String> = row.try_get("stored_owner")?;
        let last_seq: i64 = row.try_get("last_seq")?;
        if leased_to.is_none() && last_seq == 0 {
            return Ok(None);
        }
        let Some(owner_id) = leased_to.clone().or(stored_owner) else {
            return Ok(None);
        };
        Ok(Some(SharedAnswer {
            owner_id,
            leased: leased_to.is_some(),
            last_seq,
            finished: row.try_get("finished")?,
        }))
    }

    /// Sends Stop or Approve/Deny to the instance writing `answer_id`.
    pub async fn send_control(&self, answer_id: &str, control: Control) -> Result<(), sqlx::Error> {
        let payload = serde_json::to_string(&ControlMessage {
            answer_id: answer_id.to_owned(),
            control,
        })
        .expect("control messages serialise");
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CONTROL_CHANNEL)
            .bind(payload)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Whether a call of the answer waits for Approve or Deny, as its
    /// events say (asked `tool_approval`, not yet running or finished).
    /// Tool events are written at once, but a client may see one from the
    /// writer's memory a moment before it is in the database: a call not
    /// found there yet is looked for again for up to half a second. Two
    /// decisions racing on two instances both get through here, and the
    /// owner takes the first.
    pub async fn awaits_decision(&self, answer_id: &str, call_id: &str) -> Result<bool, sqlx::Error> {
        let needle = format!("\"id\":\"{call_id}\"");
        for _ in 0..10 {
            let frames: Vec<String> = sqlx::query_scalar(
                "SELECT frame FROM answer_events WHERE answer_id = $1 AND STRPOS(frame, $2) > 0 ORDER BY seq",
            )
            .bind(answer_id)
            .bind(&needle)
            .fetch_all(self.pool())
            .await?;
            let mut asked = None;
            let mut parser = crate::sse::Parser::new();
            // A row holds every frame of a batch: only this call's count.
            for frame in &frames {
                parser.feed(frame.as_bytes(), |event| {
                    if !event.data.contains(&needle) {
                        return;
                    }
                    match event.event.as_str() {
                        "tool_approval" => asked = Some(true),
                        "tool_running" | "tool_result" => asked = Some(false),
                        _ => {}
                    }
                });
            }
            if let Some(asked) = asked {
                return Ok(asked);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(false)
    }

    /// Whether a listener on another instance followed the answer within
    /// `within` (so its owner must not abandon it). Followers are marked
    /// once a second: a shorter `within` counts as three seconds.
    pub async fn followed_within(&self, answer_id: &str, within: Duration) -> bool {
        let within = within.max(3 * upkeep::TICK);
        let query = format!(
            "SELECT followed_at > {PG_NOW_MS} - $2 AS recent FROM answer_leases WHERE answer_id = $1"
        );
        match sqlx::query(&query)
            .bind(answer_id)
            .bind(within.as_millis() as i64)
            .fetch_optional(self.pool())
            .await
        {
            Ok(Some(row)) => row.try_get::<bool, _>("recent").unwrap_or(false),
            Ok(None) => false,
            // The database is away: nobody can tell, so keep the answer.
            Err(_) => true,
        }
    }

    fn handle_control(&self, payload: &str) {
        let Ok(message) = serde_json::from_str::<ControlMessage>(payload) else {
            tracing::warn!("a control notification that is not ours was ignored");
            return;
        };
        let handler = self
            .inner
            .on_control
            .lock()
            .expect("control handler lock")
            .clone();
        if let Some(handler) = handler {
            handler(&message.answer_id, message.control);
        }
    }
}

/// Records this instance and its secret's fingerprint, refusing to start
/// when a live instance (seen within two leases) has another secret.
async fn register_instance(pool: &PgPool, id: &str, secret_tag: &str, lease: Duration) -> Result<(), String> {
    let live =
        format!("SELECT id FROM instances WHERE secret_tag <> $1 AND seen_at > {PG_NOW_MS} - $2 LIMIT 1");
    let other: Option<String> = sqlx::query_scalar(&live)
        .bind(secret_tag)
        .bind(2 * lease.as_millis() as i64)
        .fetch_optional(pool)
        .await
        .map_err(|e| format!("cannot read the instances of this database: {e}"))?;
    if other.is_some() {
        return Err(
            "another instance serving this database signs cookies with a different secret, \
             so visitors would lose their conversations when moved between instances. Set the same \
             identity.cookie_secret (environment: BEDROCK_CHAT_IDENTITY_COOKIE_SECRET) on every \
             instance, for example to the output of `openssl rand -hex 32`."
                .into(),
        );
    }
    let upsert = format!(
        "INSERT INTO instances (id, secret_tag, seen_at) VALUES ($1, $2, {PG_NOW_MS}) \
         ON CONFLICT (id) DO UPDATE SET secret_tag = excluded.secret_tag, seen_at = excluded.seen_at"
    );
    sqlx::query(&upsert)
        .bind(id)
        .bind(secret_tag)
        .execute(pool)
        .await
        .map_err(|e| format!("cannot record this instance: {e}"))?;
    Ok(())
}
