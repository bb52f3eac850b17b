//! One answer being written: its log of frames, its listeners, and the
//! task that reads the model into the log and stores the answer (see the
//! invariants in [`super`]).

use super::{
    super::{
        cluster::Cluster,
        record::AnswerRecorder,
        relay::{encode, AnswerEvents, Step},
        Done, ErrorInfo, StreamEvent, STOPPED_REASON,
    },
    AnswerLabels, Timing,
};
use crate::{bedrock::AnswerStream, conversations::MessageStatus, sse, sse::pace::WriteClock};
use bytes::Bytes;
use futures::Stream;
use std::{
    convert::Infallible,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, OnceLock,
    },
    time::{Duration, Instant},
};
use tokio::sync::watch;

/// Lets the tasks already waiting on this worker run before a woken
/// listener reads the log, so the frames they append leave in the same
/// write.
///
/// Under load the model's events queue up in the connection to Bedrock,
/// but hyper hands them to the SDK one body chunk at a time: the
/// generation appends one frame, waits, and is woken for the next. A
/// listener that wrote each frame as it was woken made one `writev` per
/// event. Going once to the back of the queue lets the connection and the
/// generation append what is ready first (at 1,000 answers at once: a
/// quarter fewer writes, streams 8 % shorter). On an idle worker nothing is
/// ahead of it, so a lone frame waits one poll. A listener's first wake-up
/// skips it: that frame is usually the first token.
///
/// Not `tokio::task::yield_now`: it defers the wake-up until the worker
/// would park, which on an idle worker polls the I/O driver first (an
/// `epoll_wait` per frame, +0.08 ms of CPU per one-token answer).
async fn one_turn_behind_the_others() {
    let mut woken = false;
    std::future::poll_fn(|cx| {
        if woken {
            return std::task::Poll::Ready(());
        }
        woken = true;
        // A task woken while it runs goes to the back of its worker's
        // queue once it returns `Pending`.
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await;
}

/// One answer being written (or just written).
pub struct Generation {
    pub(super) owner: String,
    /// Its tool calls that wait for the user's decision.
    approvals: super::super::approvals::Approvals,
    /// Whether a delta has been written (the short grace ends then).
    has_text: AtomicBool,
    log: Mutex<Log>,
    /// Where its frames are also written for other instances.
    shared: Option<(Cluster, Arc<str>)>,
    /// The number of frames in the log; listeners wait for it to change.
    length: watch::Sender<usize>,
    /// Whether the log is finished; a listener holding frames until its
    /// next write waits for this instead of each frame.
    finished: watch::Sender<bool>,
    /// How many listeners are attached now.
    listeners: watch::Sender<usize>,
    halt: watch::Sender<Halt>,
    /// When Stop was first asked for (for the stop latency in `/metrics`).
    stop_asked: OnceLock<Instant>,
}

/// A request to end a generation early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Halt {
    No,
    /// The user pressed Stop: stored as `stopped`.
    Stop,
    /// The server is shutting down: stored as `interrupted`.
    Interrupt,
}

#[derive(Default)]
struct Log {
    frames: Vec<Bytes>,
    bytes: usize,
    finished: bool,
}

/// What decides that nobody listens to an answer any more.
pub(super) struct Abandon {
    pub timing: Timing,
    pub cluster: Option<Cluster>,
    pub answer_id: String,
}

impl Abandon {
    async fn followed_elsewhere(&self, within: Duration) -> bool {
        match &self.cluster {
            Some(cluster) => cluster.followed_within(&self.answer_id, within).await,
            None => false,
        }
    }
}

/// How a generation ended, before it is stored.
enum End {
    Done(String),
    Failed(ErrorInfo),
    Cancelled,
    Abandoned,
}

impl Generation {
    pub(super) fn new(
        owner: &str,
        approvals: super::super::approvals::Approvals,
        shared: Option<(Cluster, Arc<str>)>,
    ) -> Self {
        Self {
            owner: owner.to_owned(),
            approvals,
            has_text: AtomicBool::new(false),
            log: Mutex::new(Log::default()),
            shared,
            length: watch::Sender::new(0),
            finished: watch::Sender::new(false),
            listeners: watch::Sender::new(0),
            halt: watch::Sender::new(Halt::No),
            stop_asked: OnceLock::new(),
        }
    }

    /// Asks the generation to stop. Returns false when it had already finished.
    pub fn cancel(&self) -> bool {
        if self.is_finished() {
            return false;
        }
        let _ = self.stop_asked.set(Instant::now());
        self.halt.send_if_modified(|halt| {
            let first = *halt == Halt::No;
            if first {
                *halt = Halt::Stop;
            }
            first
        });
        true
    }

    /// Decides on one of its calls that waits for approval; false when that
    /// call is not waiting.
    pub fn decide(&self, call_id: &str, approve: bool) -> bool {
        self.approvals.decide(call_id, approve)
    }

    /// Ends the generation for a server shutdown.
    pub(super) fn interrupt(&self) {
        self.halt.send_replace(Halt::Interrupt);
    }

    pub fn is_finished(&self) -> bool {
        self.log.lock().expect("log lock").finished
    }

    /// How many streams are attached to it now.
    pub fn listener_count(&self) -> usize {
        *self.listeners.borrow()
    }

    /// Frames so far and their size in bytes (for tests and figures).
    pub fn log_size(&self) -> (usize, usize) {
        let log = self.log.lock().expect("log lock");
        (log.frames.len(), log.bytes)
    }

    /// Appends a frame; `urgent` ones (all but text) reach other instances
    /// without waiting for a batch.
    pub(super) fn push(&self, frame: Bytes, urgent: bool) {
        self.append(frame, urgent, false);
    }

    /// Appends the terminal frame: the log is finished.
    fn push_last(&self, frame: Bytes) {
        self.append(frame, true, true);
    }

    fn append(&self, frame: Bytes, urgent: bool, last: bool) {
        let len = {
            let mut log = self.log.lock().expect("log lock");
            log.bytes += frame.len();
            if let Some((cluster, answer_id)) = &self.shared {
                // Under the log's lock: frames reach the writer in order.
                cluster.append(
                    answer_id,
                    log.frames.len() as u64 + 1,
                    frame.clone(),
                    urgent,
                    last,
                );
            }
            log.frames.push(frame);
            log.finished = last;
            log.frames.len()
        };
        self.length.send_replace(len);
        if last {
            self.finished.send_replace(true);
        }
    }

    /// The frames from index `from` on, joined, and the index after them.
    fn read_from(&self, from: usize) -> (Option<(Bytes, usize)>, bool) {
        let log = self.log.lock().expect("log lock");
        let frames = log.frames.get(from..).unwrap_or_default();
        let chunk = match frames {
            [] => None,
            [one] => Some((one.clone(), from + 1)),
            many => {
                let mut joined = Vec::with_capacity(many.iter().map(Bytes::len).sum());
                for frame in many {
                    joined.extend_from_slice(frame);
                }
                Some((Bytes::from(joined), from + many.len()))
            }
        };
        (chunk, log.finished)
    }

    /// The frames after the first `seen` ones, then live frames until the
    /// end, with keep-alive comments when idle. Writes are paced by
    /// `write_interval` (see `sse::pace`): a frame appended within it after
    /// a write of live frames waits in the log for the interval's end, and
    /// the frames appended meanwhile are read with it, without waking the
    /// listener for each. The log's end is read at once.
    pub fn listen(
        self: Arc<Self>,
        seen: usize,
        keep_alive: Duration,
        write_interval: Duration,
    ) -> impl Stream<Item = Result<Bytes, Infallible>> + Send {
        struct Listener {
            generation: Arc<Generation>,
            length: watch::Receiver<usize>,
            finished: watch::Receiver<bool>,
            next: usize,
            pace: WriteClock,
            /// Fires at the end of the write interval while frames wait.
            hold: Pin<Box<tokio::time::Sleep>>,
            /// The keep-alive timer. It is armed once and re-armed only when
            /// it fires (to `keep_alive` after the last write), not on every
            /// frame: a timer per frame cost a timer-wheel insert and removal
            /// per event per listener.
            idle: Pin<Box<tokio::time::Sleep>>,
            last_write: tokio::time::Instant,
            /// Whether it has been woken for a frame before. Until then what
            /// it writes (what was in the log when it came) begins no write
            /// interval, and the first frame it is woken for is read at once
            /// without a turn: it is usually the first token, which the
            /// person is waiting for.
            woken_before: bool,
        }
        impl Listener {
            /// Waits until `until`, or until the log is finished.
            async fn hold(&mut self, until: tokio::time::Instant) {
                self.hold.as_mut().reset(until);
                tokio::select! {
                    () = self.hold.as_mut() => {}
                    _ = self.finished.wait_for(|finished| *finished) => {}
                }
            }
        }
        impl Drop for Listener {
            fn drop(&mut self) {
                self.generation
                    .listeners
                    .send_modify(|n| *n = n.saturating_sub(1));
            }
        }
        self.listeners.send_modify(|n| *n += 1);
        let listener = Listener {
            length: self.length.subscribe(),
            finished: self.finished.subscribe(),
            generation: self,
            next: seen,
            pace: WriteClock::new(write_interval),
            hold: Box::pin(tokio::time::sleep(Duration::ZERO)),
            idle: Box::pin(tokio::time::sleep(keep_alive)),
            last_write: tokio::time::Instant::now(),
            woken_before: false,
        };
        futures::stream::unfold(listener, move |mut listener| async move {
            loop {
                // Seen before reading: an append after the read wakes us.
                let length = *listener.length.borrow_and_update();
                if length > listener.next && !*listener.finished.borrow() {
                    if let Some(until) = listener.pace.held_until() {
                        listener.hold(until).await;
                        continue;
                    }
                }
                let (chunk, finished) = listener.generation.read_from(listener.next);
                if let Some((bytes, next)) = chunk {
                    listener.next = next;
                    // What was in the log when the listener came (the
                    // `start` frame, a resume's backlog) begins no write
                    // interval: the frame it is first woken for, usually
                    // the first token, is written at once too.
                    if listener.woken_before {
                        listener.pace.wrote();
                    }
                    listener.last_write = tokio::time::Instant::now();
                    return Some((Ok(bytes), listener));
                }
                if finished {
                    return None;
                }
                tokio::select! {
                    changed = listener.length.changed() => match changed {
                        Ok(()) => {
                            // A frame that will be held needs no turn: it
                            // waits for the interval's end anyway.
                            if listener.woken_before && listener.pace.held_until().is_none() {
                                one_turn_behind_the_others().await;
                            }
                            listener.woken_before = true;
                            continue;
                        }
                        Err(_) => return None,
                    },
                    () = listener.idle.as_mut() => {
                        let due = listener.last_write + keep_alive;
                        let now = tokio::time::Instant::now();
                        if now < due {
                            listener.idle.as_mut().reset(due);
                            continue;
                        }
                        listener.last_write = now;
                        listener.idle.as_mut().reset(now + keep_alive);
                        return Some((Ok(Bytes::from_static(sse::encode::KEEP_ALIVE)), listener));
                    }
                }
            }
        })
    }

    /// Reads the model to its end (or until stopped or abandoned), appending
    /// each event to the log; stores the answer; then appends the terminal
    /// event, so `done` always means "stored".
    pub(super) async fn run(
        self: Arc<Self>,
        mut model: AnswerStream,
        mut recorder: AnswerRecorder,
        abandon: Abandon,
        labels: AnswerLabels,
    ) {
        let timing = abandon.timing;
        // The log holds the `start` frame: ids continue from 2.
        let mut next_id = 2_u64;
        let mut frame = |event: StreamEvent| {
            let id = next_id;
            next_id += 1;
            encode(id, &event)
        };
        let halted = {
            let mut rx = self.halt.subscribe();
            async move {
                match rx.wait_for(|h| *h != Halt::No).await {
                    Ok(halt) => *halt,
                    Err(_) => Halt::Interrupt,
                }
            }
        };
        let abandoned = {
            let mut rx = self.listeners.subscribe();
            let this = self.clone();
            async move {
                loop {
                    if rx.wait_for(|n| *n == 0).await.is_err() {
                        return;
                    }
                    // A page that fires a request and hangs up before the
                    // first delta gets the short grace, not the long one.
                    let grace = if this.has_text.load(Ordering::Relaxed) {
                        timing.grace
                    } else {
                        timing.first_delta_grace
                    };
                    let came_back = tokio::time::timeout(grace, rx.wait_for(|n| *n > 0)).await.is_ok();
                    // Listeners on other instances count too.
                    if came_back || abandon.followed_elsewhere(grace).await {
                        continue;
                    }
                    return;
                }
            }
        };
        tokio::pin!(halted, abandoned);
        let mut events = AnswerEvents::default();
        let end = loop {
            let next = tokio::select! {
                biased;
                halt = &mut halted => break match halt {
                    Halt::Stop => End::Cancelled,
                    _ => End::Abandoned,
                },
                _ = &mut abandoned => break End::Abandoned,
                next = model.next() => next,
            };
            match events.step(next) {
                Step::Event(mut event) => {
                    if let StreamEvent::Usage(usage) = &mut event {
                        *usage = labels.priced(*usage);
                    }
                    if recorder.record(&event) {
                        self.has_text.store(true, Ordering::Relaxed);
                    }
                    let urgent = !matches!(
                        event,
                        StreamEvent::Delta(_) | StreamEvent::Reasoning(_) | StreamEvent::ToolInput(_)
                    );
                    self.push(frame(event), urgent);
                }
                Step::Nothing => {}
                Step::End(Ok(reason)) => break End::Done(reason),
                Step::End(Err(info)) => break End::Failed(info),
            }
        };
        // Generation (and billing) stops here, before the answer is stored.
        drop(model);
        let (status, error, terminal) = match end {
            End::Done(reason) => (
                MessageStatus::Complete,
                None,
                StreamEvent::Done(Done::new(reason)),
            ),
            End::Failed(info) => (MessageStatus::Error, Some(info.clone()), StreamEvent::Error(info)),
            End::Cancelled => (
                MessageStatus::Stopped,
                None,
                StreamEvent::Done(Done::new(STOPPED_REASON)),
            ),
            End::Abandoned => (
                MessageStatus::Interrupted,
                None,
                StreamEvent::Done(Done::new(STOPPED_REASON)),
            ),
        };
        let stored_status = status;
        let terminal = match recorder.finish(status, error).await {
            Ok(()) => match terminal {
                // The timings the store has, for the answer's footer.
                StreamEvent::Done(mut done) => {
                    (done.first_token_ms, done.duration_ms) = recorder.timings();
                    StreamEvent::Done(done)
                }
                other => other,
            },
            Err(err) => StreamEvent::Error(ErrorInfo::from(err)),
        };
        let outcome = match &terminal {
            StreamEvent::Error(info) => info.code.as_str(),
            _ => stored_status.as_str(),
        };
        match &terminal {
            StreamEvent::Done(done) => labels.spans.record_stop(Some(&done.stop_reason), None),
            StreamEvent::Error(info) => labels.spans.record_stop(None, Some(info.code.as_str())),
            _ => {}
        }
        self.push_last(frame(terminal));
        if let (Some(asked), MessageStatus::Stopped) = (self.stop_asked.get(), stored_status) {
            metrics::histogram!(crate::telemetry::STOP_LATENCY).record(asked.elapsed().as_secs_f64());
        }
        let (first_token_ms, duration_ms) = recorder.timings();
        labels.log_finished(
            outcome,
            recorder.usage_so_far().unwrap_or_default(),
            first_token_ms,
            duration_ms.unwrap_or_default(),
            recorder.checkpoint_count(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn generation() -> Arc<Generation> {
        Arc::new(Generation::new("owner", Default::default(), None))
    }

    async fn next_chunk(listener: &mut (impl Stream<Item = Result<Bytes, Infallible>> + Unpin)) -> Bytes {
        listener.next().await.expect("a chunk").expect("infallible")
    }

    /// What hyper and the SDK do under load: the model's events are ready,
    /// but the generation is handed one per turn of the runtime.
    #[tokio::test]
    async fn a_listener_writes_its_first_woken_frame_at_once_and_later_ones_with_the_next_turns() {
        let generation = generation();
        let mut listener = Box::pin(
            generation
                .clone()
                .listen(0, Duration::from_secs(60), Duration::ZERO),
        );
        generation.push(Bytes::from_static(b"a"), false);
        assert_eq!(
            next_chunk(&mut listener).await,
            "a",
            "a frame already there is read at once"
        );

        // Both as tasks of the runtime, each taking its turn.
        let reader = tokio::spawn(async move {
            let first = next_chunk(&mut listener).await;
            (first, next_chunk(&mut listener).await)
        });
        let upstream = tokio::spawn({
            let generation = generation.clone();
            async move {
                for frame in [b"b", b"c", b"d"] {
                    generation.push(Bytes::from_static(frame), false);
                    one_turn_behind_the_others().await;
                }
            }
        });
        let (first, second) = reader.await.unwrap();
        assert_eq!(first, "b", "the first frame it is woken for goes alone, at once");
        assert_eq!(second, "cd", "one write for the frames of the next turn");
        upstream.await.unwrap();
    }

    /// Within the write interval after a write, appended frames wait in
    /// the log and leave together; the log's end ends the wait at once.
    #[tokio::test]
    async fn a_listener_holds_frames_within_its_write_interval_until_the_end() {
        use futures::FutureExt;
        let generation = generation();
        let mut listener = Box::pin(generation.clone().listen(
            0,
            Duration::from_secs(60),
            Duration::from_secs(60),
        ));
        assert!(listener.next().now_or_never().is_none(), "nothing yet");
        generation.push(Bytes::from_static(b"a"), false);
        assert_eq!(next_chunk(&mut listener).await, "a");
        assert!(listener.next().now_or_never().is_none(), "nothing yet");
        generation.push(Bytes::from_static(b"b"), false);
        generation.push(Bytes::from_static(b"c"), false);
        assert!(
            listener.next().now_or_never().is_none(),
            "held within the interval"
        );
        generation.push_last(Bytes::from_static(b"end"));
        let chunk = listener.next().now_or_never().expect("the end is not held");
        assert_eq!(chunk.unwrap().unwrap(), "bcend");
        assert_eq!(listener.next().await, None);
    }

    #[tokio::test]
    async fn a_lone_frame_is_written_without_waiting_for_another() {
        let generation = generation();
        let mut listener = Box::pin(
            generation
                .clone()
                .listen(0, Duration::from_secs(60), Duration::ZERO),
        );
        let reader = tokio::spawn(async move { next_chunk(&mut listener).await });
        tokio::task::yield_now().await;
        generation.push(Bytes::from_static(b"lone"), false);
        let chunk = tokio::time::timeout(Duration::from_secs(5), reader).await;
        assert_eq!(chunk.expect("written without another frame").unwrap(), "lone");
    }
}
