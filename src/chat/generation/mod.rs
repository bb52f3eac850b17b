//! Generations: an answer being written belongs to the server, not to the
//! HTTP connection that asked for it.
//!
//! Each generation is a task that reads the Bedrock stream, frames every
//! event once (with its sequence number as the SSE `id:`), appends it to an
//! in-memory log, and stores the answer when it ends. Any number of listeners
//! read that log: from the start, or from the id after the last one they saw
//! (resume), and then follow it live. The task never waits for a listener: it
//! appends and signals, so a slow or gone client costs it nothing.
//!
//! * Replay and live hand-over cannot race: a listener marks the current log
//!   length as seen *before* it reads the log, so an event appended after its
//!   read always wakes it, and it reads by index, so nothing is sent twice.
//! * A woken listener reads after one turn of its worker (the tasks already
//!   waiting run first), so frames appended in that turn leave in the same
//!   write; a lone frame waits one poll. The first frame a listener is
//!   woken for (usually the first token) is read at once.
//! * A listener writes at most once per `write_interval` (`sse::pace`): a
//!   frame appended sooner after its last write waits in the log, and the
//!   listener sleeps until the interval's end (or the log's end) instead
//!   of being woken for each frame.
//! * Stop is an explicit request ([`Generation::cancel`]): the Bedrock stream
//!   is dropped at once and every listener sees `done` with
//!   `stop_reason: "stopped"`.
//! * Tool rounds happen inside the answer's stream ([`AnswerStream`]): their
//!   events are logged, replayed and resumed like text, and Stop drops the
//!   running calls with the Bedrock stream.
//! * With no listener for the grace period (a much shorter one before the
//!   first delta), the Bedrock stream is dropped and the answer stored as
//!   `interrupted`.
//! * Every answer holds a [`Reservation`] from before its user message is
//!   stored until its answer is: the per-owner and server-wide caps count
//!   them, and "an answer is being written in this conversation" means one
//!   is held for it (not that a row says `streaming`).
//! * A finished generation's log is kept for `linger` (so a late reconnect
//!   still gets the end), then released; the stored answer remains.

mod answer;

pub use answer::Generation;

use super::{
    cluster::{Cluster, Control},
    record::AnswerRecorder,
    relay::encode,
    StreamEvent,
};
use crate::{bedrock::AnswerStream, conversations::store::StoreError, sse, telemetry};
use answer::Abandon;
use bytes::Bytes;
use futures::Stream;
use std::{
    collections::HashMap,
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio_util::task::{task_tracker::TaskTrackerToken, TaskTracker};
use tracing::Instrument;

/// How long things last; from `[streams]` in Leptos.toml.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How long an answer goes on with nobody listening.
    pub grace: Duration,
    /// The same, before its first delta.
    pub first_delta_grace: Duration,
    /// Idle time after which a listener gets an SSE comment.
    pub keep_alive: Duration,
    /// A response's writes are at least this far apart (see `sse::pace`).
    pub write_interval: Duration,
    /// How long a finished log stays for late reconnects.
    pub linger: Duration,
    /// How often an answer's text is checkpointed (time, new bytes).
    pub checkpoint: Duration,
    pub checkpoint_bytes: usize,
}

impl Timing {
    pub fn from_settings(streams: &crate::settings::StreamSettings) -> Self {
        use crate::settings::secs;
        Self {
            grace: secs(streams.grace_period_secs),
            first_delta_grace: secs(streams.first_delta_grace_secs.min(streams.grace_period_secs)),
            keep_alive: secs(streams.keep_alive_secs),
            write_interval: Duration::from_millis(streams.write_interval_ms),
            linger: secs(streams.linger_secs),
            checkpoint: secs(streams.checkpoint_secs),
            checkpoint_bytes: streams.checkpoint_bytes,
        }
    }

    pub fn checkpoints(&self) -> super::record::Checkpoints {
        super::record::Checkpoints {
            every: self.checkpoint,
            bytes: self.checkpoint_bytes.max(1),
        }
    }
}

/// Caps on answers being written at once; 0 is no cap.
#[derive(Debug, Clone, Copy)]
pub struct SlotLimits {
    pub per_owner: usize,
    pub total: usize,
}

/// Why an answer may not start now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// An answer is being written in this conversation.
    ConversationBusy,
    /// The owner has this many answers being written.
    OwnerAtLimit(usize),
    /// The server streams this many answers.
    ServerAtLimit(usize),
}

/// The answers being written (or about to be), one slot each.
#[derive(Default)]
struct Slots {
    next: u64,
    taken: HashMap<u64, Slot>,
}

struct Slot {
    owner: String,
    conversation: Option<String>,
    answer: Option<String>,
}

/// A place for one answer, held from before its message is stored until the
/// answer is; released when dropped.
pub struct Reservation {
    id: u64,
    slots: Arc<Mutex<Slots>>,
    /// Drops the answer's lease should its final save not have (several
    /// instances).
    cluster: Option<Cluster>,
    /// Counts this answer as running until it is stored (the shutdown
    /// drain waits for it).
    _running: TaskTrackerToken,
}

impl Reservation {
    /// Names the conversation and answer once they are stored.
    pub fn claim(&self, conversation_id: &str, answer_id: &str) {
        let mut slots = self.slots.lock().expect("slots lock");
        if let Some(slot) = slots.taken.get_mut(&self.id) {
            slot.conversation = Some(conversation_id.to_owned());
            slot.answer = Some(answer_id.to_owned());
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let slot = self.slots.lock().expect("slots lock").taken.remove(&self.id);
        if let (Some(cluster), Some(answer)) = (&self.cluster, slot.and_then(|s| s.answer)) {
            cluster.release(&answer);
        }
    }
}

/// What an answer is reported with (never user text): its log line, its
/// figures in `/metrics`, its trace spans, and the price its usage is
/// costed at.
#[derive(Debug, Clone)]
pub struct AnswerLabels {
    /// A hash of the owner, not the owner.
    pub owner_tag: String,
    pub conversation_id: String,
    pub model_id: String,
    /// The model's price, when it has one: the answer's cost is its usage
    /// at this price.
    pub price: Option<crate::conversations::Price>,
    pub currency: String,
    pub spans: AnswerSpans,
}

/// An answer's trace spans (exported when traces are on): the answer, a
/// child of the request that began it, and the Bedrock call under it.
#[derive(Debug, Clone)]
pub struct AnswerSpans {
    pub answer: tracing::Span,
    pub bedrock: tracing::Span,
}

impl AnswerSpans {
    pub fn new(model_id: &str, answer_id: &str) -> Self {
        use tracing::field::Empty;
        if !crate::telemetry::traces::exporting() {
            return Self::none();
        }
        let answer = tracing::info_span!(
            "answer",
            answer.id = answer_id,
            gen_ai.request.model = model_id,
            answer.status = Empty,
        );
        let bedrock = tracing::info_span!(
            parent: &answer,
            "bedrock.converse_stream",
            gen_ai.system = "aws.bedrock",
            gen_ai.operation.name = "chat",
            gen_ai.request.model = model_id,
            gen_ai.usage.input_tokens = Empty,
            gen_ai.usage.output_tokens = Empty,
            gen_ai.usage.cache_read_input_tokens = Empty,
            gen_ai.usage.cache_write_input_tokens = Empty,
            time_to_first_token_ms = Empty,
            gen_ai.response.finish_reasons = Empty,
            error.type = Empty,
        );
        Self { answer, bedrock }
    }

    /// Spans that record nothing (the compatibility endpoint's answers).
    pub fn none() -> Self {
        Self {
            answer: tracing::Span::none(),
            bedrock: tracing::Span::none(),
        }
    }

    fn record_end(&self, status: &str, usage: &super::Usage, first_token_ms: Option<u64>) {
        self.answer.record("answer.status", status);
        let bedrock = &self.bedrock;
        bedrock.record("gen_ai.usage.input_tokens", usage.input_tokens);
        bedrock.record("gen_ai.usage.output_tokens", usage.output_tokens);
        bedrock.record("gen_ai.usage.cache_read_input_tokens", usage.cache_read_tokens);
        bedrock.record("gen_ai.usage.cache_write_input_tokens", usage.cache_write_tokens);
        if let Some(ms) = first_token_ms {
            bedrock.record("time_to_first_token_ms", ms);
        }
    }

    /// The model's stop reason, or the code of the failure that ended it.
    pub fn record_stop(&self, stop_reason: Option<&str>, error: Option<&str>) {
        if let Some(reason) = stop_reason {
            self.bedrock.record("gen_ai.response.finish_reasons", reason);
        }
        if let Some(code) = error {
            self.bedrock.record("error.type", code);
        }
    }
}

impl AnswerLabels {
    /// `usage` with its cost at the model's price.
    pub fn priced(&self, mut usage: super::Usage) -> super::Usage {
        usage.cost_nanos = self.price.map(|price| price.cost_nanos(&usage));
        usage
    }

    /// Counts an answer begun (`/metrics`).
    pub fn count_started(&self) {
        metrics::counter!(telemetry::ANSWERS_STARTED, "model" => self.model_id.clone()).increment(1);
    }

    /// The one log line (`bedrock_chat::answer`) of an answer that ended,
    /// and its figures in `/metrics`.
    pub fn log_finished(
        &self,
        status: &str,
        usage: super::Usage,
        first_token_ms: Option<u64>,
        duration_ms: u64,
        checkpoints: usize,
    ) {
        tracing::info!(
            target: "bedrock_chat::answer",
            owner = %self.owner_tag,
            conversation = %self.conversation_id,
            model = %self.model_id,
            status,
            tokens_in = usage.input_tokens,
            tokens_out = usage.output_tokens,
            cache_read = usage.cache_read_tokens,
            cache_write = usage.cache_write_tokens,
            cost_nanos = usage.cost_nanos.unwrap_or(0),
            first_token_ms = first_token_ms.unwrap_or(0),
            duration_ms,
            checkpoints,
            "answer finished"
        );
        self.spans.record_end(status, &usage, first_token_ms);
        let model = self.model_id.clone();
        metrics::counter!(telemetry::ANSWERS, "model" => model.clone(), "status" => status.to_owned())
            .increment(1);
        if let Some(ms) = first_token_ms {
            metrics::histogram!(telemetry::FIRST_TOKEN, "model" => model.clone()).record(ms as f64 / 1e3);
        }
        metrics::histogram!(telemetry::ANSWER_DURATION, "model" => model.clone())
            .record(duration_ms as f64 / 1e3);
        metrics::counter!(telemetry::TOKENS, "model" => model.clone(), "kind" => "input")
            .increment(u64::from(usage.input_tokens));
        for (kind, tokens) in [
            ("output", usage.output_tokens),
            ("cache_read", usage.cache_read_tokens),
            ("cache_write", usage.cache_write_tokens),
        ] {
            metrics::counter!(telemetry::TOKENS, "model" => model.clone(), "kind" => kind)
                .increment(u64::from(tokens));
        }
        if let Some(nanos) = usage.cost_nanos {
            metrics::counter!(telemetry::COST, "model" => model, "currency" => self.currency.clone())
                .increment(nanos);
        }
    }
}

/// Every live (and recently finished) generation of this server.
#[derive(Clone)]
pub struct Generations {
    live: Arc<Mutex<HashMap<String, Arc<Generation>>>>,
    timing: Timing,
    slots: Arc<Mutex<Slots>>,
    /// Every reservation held (answers being written, or about to be,
    /// compatibility streams included) is one of its tasks; closed on
    /// shutdown, when new generations are refused.
    running: TaskTracker,
    /// The other instances on the same PostgreSQL, if any.
    cluster: Option<Cluster>,
}

/// What following an answer found.
pub enum Follow {
    /// Its events, paced (see `sse::pace`).
    Events(std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, Infallible>> + Send>>),
    /// No instance writes it, or has written it lately.
    Gone,
    /// The client claims an event the answer does not have.
    BadEventId,
}

impl Generations {
    pub fn new(timing: Timing) -> Self {
        Self {
            live: Arc::default(),
            timing,
            slots: Arc::default(),
            running: TaskTracker::new(),
            cluster: None,
        }
    }

    /// Shares this instance's answers with the other instances of `cluster`,
    /// and acts on their Stop and Approve/Deny requests for them.
    pub fn with_cluster(mut self, cluster: Cluster) -> Self {
        self.cluster = Some(cluster.clone());
        let generations = self.clone();
        cluster.on_control(Arc::new(move |answer_id, control| {
            let live = generations.live.lock().expect("generation map lock");
            let Some(generation) = live.get(answer_id) else {
                return;
            };
            match control {
                Control::Stop => {
                    generation.cancel();
                }
                Control::Decide { call_id, approve } => {
                    generation.decide(&call_id, approve);
                }
            }
        }));
        self
    }

    /// The other instances, when there are.
    pub fn cluster(&self) -> Option<&Cluster> {
        self.cluster.as_ref()
    }

    /// Takes a slot for an answer of `owner` (in `conversation`, when it
    /// exists already), unless a cap or the conversation refuses it.
    pub fn reserve(
        &self,
        owner: &str,
        conversation: Option<&str>,
        limits: SlotLimits,
    ) -> Result<Reservation, Refusal> {
        let mut slots = self.slots.lock().expect("slots lock");
        if let Some(id) = conversation {
            if slots
                .taken
                .values()
                .any(|s| s.conversation.as_deref() == Some(id))
            {
                return Err(Refusal::ConversationBusy);
            }
        }
        if limits.per_owner > 0
            && slots.taken.values().filter(|s| s.owner == owner).count() >= limits.per_owner
        {
            return Err(Refusal::OwnerAtLimit(limits.per_owner));
        }
        if limits.total > 0 && slots.taken.len() >= limits.total {
            return Err(Refusal::ServerAtLimit(limits.total));
        }
        slots.next += 1;
        let id = slots.next;
        slots.taken.insert(
            id,
            Slot {
                owner: owner.to_owned(),
                conversation: conversation.map(str::to_owned),
                answer: None,
            },
        );
        Ok(Reservation {
            id,
            slots: self.slots.clone(),
            cluster: self.cluster.clone(),
            _running: self.running.token(),
        })
    }

    /// Whether this answer is being written (or about to be) here.
    pub fn is_writing(&self, answer_id: &str) -> bool {
        let slots = self.slots.lock().expect("slots lock");
        slots
            .taken
            .values()
            .any(|s| s.answer.as_deref() == Some(answer_id))
    }

    pub fn timing(&self) -> Timing {
        self.timing
    }

    /// Whether new generations are refused (the server is shutting down).
    pub fn is_closed(&self) -> bool {
        self.running.is_closed()
    }

    /// Starts writing an answer. `start` is the first frame of its log; the
    /// reservation is released once the answer is stored.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        &self,
        owner: &str,
        answer_id: String,
        start: Bytes,
        model: AnswerStream,
        recorder: AnswerRecorder,
        reservation: Reservation,
        labels: AnswerLabels,
        approvals: super::approvals::Approvals,
    ) -> Arc<Generation> {
        let shared = self
            .cluster
            .clone()
            .map(|cluster| (cluster, Arc::from(answer_id.as_str())));
        let generation = Arc::new(Generation::new(owner, approvals, shared));
        generation.push(start, true);
        self.live
            .lock()
            .expect("generation map lock")
            .insert(answer_id.clone(), generation.clone());
        let this = self.clone();
        let task = generation.clone();
        let abandon = Abandon {
            timing: self.timing,
            cluster: self.cluster.clone(),
            answer_id: answer_id.clone(),
        };
        let span = labels.spans.answer.clone();
        tokio::spawn(async move {
            task.run(model, recorder, abandon, labels).instrument(span).await;
            drop(reservation);
            tokio::time::sleep(this.timing.linger).await;
            this.live.lock().expect("generation map lock").remove(&answer_id);
        });
        generation
    }

    /// The owner's generation with this answer id, live or lingering.
    pub fn get(&self, owner: &str, answer_id: &str) -> Option<Arc<Generation>> {
        let live = self.live.lock().expect("generation map lock");
        live.get(answer_id).filter(|g| g.owner == owner).cloned()
    }

    /// An answer's events after the first `seen`, then live ones until it
    /// ends: from this instance's memory when it writes the answer, else
    /// from the database when another instance does (or did recently).
    /// Both keep the same promises: ids are positions, with no gap and no
    /// repeat.
    pub async fn follow(&self, owner: &str, answer_id: &str, seen: usize) -> Result<Follow, StoreError> {
        let Timing {
            keep_alive,
            write_interval,
            ..
        } = self.timing;
        if let Some(generation) = self.get(owner, answer_id) {
            if seen > generation.log_size().0 {
                return Ok(Follow::BadEventId);
            }
            let events = generation.listen(seen, keep_alive, write_interval);
            return Ok(Follow::Events(Box::pin(events)));
        }
        let Some(cluster) = &self.cluster else {
            return Ok(Follow::Gone);
        };
        match cluster.answer(answer_id).await? {
            Some(shared) if shared.owner_id == owner => {
                if shared.finished && seen as i64 > shared.last_seq {
                    return Ok(Follow::BadEventId);
                }
                let events = cluster.follow(answer_id, seen as u64);
                Ok(Follow::Events(Box::pin(sse::pace::paced(events, write_interval))))
            }
            _ => Ok(Follow::Gone),
        }
    }

    /// Asks the instance writing the owner's answer to stop it. `None` when
    /// no instance writes it (it ended, or was never the owner's).
    pub async fn stop(&self, owner: &str, answer_id: &str) -> Result<Option<bool>, StoreError> {
        if let Some(generation) = self.get(owner, answer_id) {
            return Ok(Some(generation.cancel()));
        }
        Ok(match self.elsewhere(owner, answer_id).await? {
            Some((cluster, true)) => {
                cluster.send_control(answer_id, Control::Stop).await?;
                Some(true)
            }
            Some((_, false)) => Some(false),
            None => None,
        })
    }

    /// Approves or denies a call of the owner's answer that waits for it.
    /// `Some(false)` when the call is not waiting; `None` when no instance
    /// writes the answer. Another instance's answer is asked through the
    /// database when its events say the call waits.
    pub async fn decide(
        &self,
        owner: &str,
        answer_id: &str,
        call_id: &str,
        approve: bool,
    ) -> Result<Option<bool>, StoreError> {
        if let Some(generation) = self.get(owner, answer_id) {
            return Ok(Some(generation.decide(call_id, approve)));
        }
        Ok(match self.elsewhere(owner, answer_id).await? {
            Some((cluster, true)) if cluster.awaits_decision(answer_id, call_id).await? => {
                let call_id = call_id.to_owned();
                cluster
                    .send_control(answer_id, Control::Decide { call_id, approve })
                    .await?;
                Some(true)
            }
            Some(_) => Some(false),
            None => None,
        })
    }

    /// The owner's answer as another instance shares it: the cluster, and
    /// whether the answer is still being written. `None` when it is not
    /// the owner's or no instance has it.
    async fn elsewhere(&self, owner: &str, answer_id: &str) -> Result<Option<(&Cluster, bool)>, StoreError> {
        let Some(cluster) = &self.cluster else {
            return Ok(None);
        };
        Ok(match cluster.answer(answer_id).await? {
            Some(shared) if shared.owner_id == owner => Some((cluster, shared.leased && !shared.finished)),
            _ => None,
        })
    }

    /// How many generations are held (live or lingering), and the bytes of
    /// their logs (for figures).
    pub fn held(&self) -> (usize, usize) {
        let live = self.live.lock().expect("generation map lock");
        (live.len(), live.values().map(|g| g.log_size().1).sum())
    }

    /// Streams attached to this instance's answers now.
    pub fn listeners(&self) -> usize {
        let live = self.live.lock().expect("generation map lock");
        live.values().map(|g| g.listener_count()).sum()
    }

    /// The number of answers still being written (compatibility streams
    /// included).
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Refuses new generations, lets running ones finish until `deadline`,
    /// then stops the rest (stored as interrupted) and waits for them to be
    /// stored.
    pub async fn drain(&self, deadline: Duration) {
        self.running.close();
        if tokio::time::timeout(deadline, self.running.wait()).await.is_ok() {
            self.flush_shared().await;
            return;
        }
        let live: Vec<_> = self
            .live
            .lock()
            .expect("generation map lock")
            .values()
            .cloned()
            .collect();
        tracing::warn!(
            running = self.running(),
            "shutdown deadline passed: interrupting answers"
        );
        for generation in live {
            generation.interrupt();
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), self.running.wait()).await;
        self.flush_shared().await;
    }

    /// Other instances get the last events and leases of this one's answers.
    async fn flush_shared(&self) {
        if let Some(cluster) = &self.cluster {
            cluster.flush(Duration::from_secs(5)).await;
        }
    }
}

/// The `start` frame (id 1) of a generation's log.
pub fn start_frame(started: super::Started) -> Bytes {
    encode(1, &StreamEvent::Start(started))
}
