//! Group commit: the writes that start answers (a message, an edit, a
//! regeneration) and end them (and their checkpoints), when they come at
//! once, share one transaction and so one fsync.
//!
//! A burst of people pressing Enter costs two durable commits each (the
//! message before the model is called, the answer when it ends). One by
//! one, SQLite's fsync per commit caps that at a few hundred answers a
//! second; in a batch, hundreds share one.
//!
//! Invariants:
//! * A batch is whatever queued while the previous one committed (at most
//!   [`MAX_BATCH`]): no timer, so a lone write waits for nobody.
//! * A write that fails (a busy conversation, a missing one) fails alone:
//!   its caller gets its own error and the others go on. A batch is first
//!   run as it comes, with no savepoint per write (two round trips fewer
//!   each, on the way to first tokens); should a write fail, that
//!   transaction is rolled back and the batch run again with a savepoint
//!   per write, rolled back alone when it fails.
//! * A batch of a few writes of different owners whose statements are
//!   known up front (first messages when no cap counts their lease,
//!   answers' ends, checkpoints) goes as one script (`batch`): on
//!   PostgreSQL one statement, its own transaction. Under a burst spread
//!   over a second most batches are of one to three writes, and their
//!   `BEGIN`, each write and `COMMIT` were a round trip each.
//! * Messages go in sets of [`TOGETHER`]: first messages of new
//!   conversations (`new_conversations`; with savepoints, a savepoint per
//!   set, and one by one again if it fails) and, without savepoints, next
//!   messages in conversations people have (`next_messages`), answers'
//!   ends and their checkpoints (`finishes`). Several instances' per-owner caps are counted per
//!   set (`set_caps`).
//! * One owner's writes go to one lane (PostgreSQL has several): every row
//!   a write locks is its owner's (the owner, its conversations, its
//!   usage), so two lanes never wait on each other. (When one person's
//!   messages were in two lanes at once, PostgreSQL found deadlocks.)
//! * A caller hears back only once the batch has committed (or failed to):
//!   nothing is reported stored before it is durable.

//!
//! The parts: this file (the lanes, their queues and figures), `writes`
//! (a write as it waits in a queue, and its reply) and `batch` (a batch run
//! in one transaction: as one script, or with or without a savepoint per
//! write).

mod batch;
mod writes;

use super::{
    finishes::Checkpoint, Edit, Exchange, FinishedAnswer, NewExchange, Regeneration, Result, Store,
    StoreError, StoreErrorKind,
};
use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};
use tokio::sync::{mpsc, oneshot};
use writes::{OwnedEdit, OwnedExchange, OwnedRegeneration, Write};

/// The most writes one transaction carries.
const MAX_BATCH: usize = 256;

/// Messages written as one set. Always this many, so that each
/// statement is prepared once and then found in the connection's cache:
/// sets of every size a batch happened to hold (up to 256) were slower
/// than one by one, and sets of 8 slower than 32 (`./dev bench`, load).
const TOGETHER: usize = 32;

/// Queues writes for the committing lanes; cheap to clone.
#[derive(Clone)]
pub(super) struct Committer {
    /// One queue per lane.
    lanes: Arc<[mpsc::UnboundedSender<Write>]>,
    figures: Arc<Figures>,
}

/// Transactions committed and the writes they carried (for figures).
#[derive(Default)]
pub(super) struct Figures {
    transactions: AtomicU64,
    writes: AtomicU64,
    begun_together: AtomicU64,
    finished_together: AtomicU64,
    checkpointed_together: AtomicU64,
    joined: AtomicU64,
}

impl Figures {
    /// Counts a committed batch of `writes`, of which `together` were
    /// written as sets.
    fn committed(&self, writes: usize, together: Together) {
        self.transactions.fetch_add(1, Ordering::Relaxed);
        self.writes.fetch_add(writes as u64, Ordering::Relaxed);
        self.begun_together
            .fetch_add(together.begun as u64, Ordering::Relaxed);
        self.finished_together
            .fetch_add(together.finished as u64, Ordering::Relaxed);
        self.checkpointed_together
            .fetch_add(together.checkpointed as u64, Ordering::Relaxed);
        self.joined.fetch_add(together.joined as u64, Ordering::Relaxed);
    }
}

/// Writes of one batch that went in sets.
#[derive(Default, Clone, Copy)]
struct Together {
    /// Messages (first and next).
    begun: usize,
    /// Answers' ends.
    finished: usize,
    /// Checkpoints.
    checkpointed: usize,
    /// Writes of several owners joined in one script.
    joined: usize,
}

/// What group commit has done so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommitFigures {
    /// Transactions committed.
    pub transactions: u64,
    /// Writes they carried.
    pub writes: u64,
    /// Messages among them written as sets (`new_conversations`,
    /// `next_messages`).
    pub begun_together: u64,
    /// Answers' ends among them written as sets (`finishes`).
    pub finished_together: u64,
    /// Checkpoints among them written as sets (`finishes`).
    pub checkpointed_together: u64,
    /// Writes among them joined with others of the same batch in one
    /// script: one statement on PostgreSQL, one query on SQLite.
    pub joined: u64,
}

impl Committer {
    /// Starts `lanes` committing threads on `store` (one for SQLite, which
    /// has one writer anyway; a few for PostgreSQL).
    ///
    /// Each lane is a thread with a runtime of its own rather than a task
    /// on the server's: a batch is a dozen database round trips per write,
    /// and on the shared runtime every one of them waited again behind
    /// every stream task that was ready (under a burst of 1,000 answers a
    /// batch took a quarter of a second). The lane ends when the last
    /// [`Committer`] is dropped.
    pub(super) fn start(store: Store, lanes: usize) -> Self {
        let figures = Arc::new(Figures::default());
        let lanes = (0..lanes.max(1))
            .map(|lane| {
                let (queue, queued) = mpsc::unbounded_channel();
                let (store, figures) = (store.clone(), figures.clone());
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for the store's committing thread");
                std::thread::Builder::new()
                    .name(format!("store-commit-{lane}"))
                    .spawn(move || runtime.block_on(run(store, queued, figures)))
                    .expect("the store's committing thread starts");
                queue
            })
            .collect();
        Self { lanes, figures }
    }

    pub(super) fn figures(&self) -> GroupCommitFigures {
        GroupCommitFigures {
            transactions: self.figures.transactions.load(Ordering::Relaxed),
            writes: self.figures.writes.load(Ordering::Relaxed),
            begun_together: self.figures.begun_together.load(Ordering::Relaxed),
            finished_together: self.figures.finished_together.load(Ordering::Relaxed),
            checkpointed_together: self.figures.checkpointed_together.load(Ordering::Relaxed),
            joined: self.figures.joined.load(Ordering::Relaxed),
        }
    }

    pub(super) async fn begin(&self, new: &NewExchange<'_>) -> Result<Exchange> {
        let (reply, replied) = oneshot::channel();
        self.send(Write::Begin(Box::new(OwnedExchange::of(new)), reply))?;
        replied.await.map_err(|_| stopped())?
    }

    pub(super) async fn edit(&self, edit: &Edit<'_>) -> Result<Exchange> {
        let (reply, replied) = oneshot::channel();
        self.send(Write::Edit(Box::new(OwnedEdit::of(edit)), reply))?;
        replied.await.map_err(|_| stopped())?
    }

    pub(super) async fn regenerate(&self, retry: &Regeneration<'_>) -> Result<Exchange> {
        let (reply, replied) = oneshot::channel();
        let write = Write::Regenerate(Box::new(OwnedRegeneration::of(retry)), reply);
        self.send(write)?;
        replied.await.map_err(|_| stopped())?
    }

    pub(super) async fn finish(&self, answer: &FinishedAnswer) -> Result<()> {
        let (reply, replied) = oneshot::channel();
        self.send(Write::Finish(Box::new(answer.clone()), reply))?;
        replied.await.map_err(|_| stopped())?
    }

    pub(super) async fn checkpoint(&self, checkpoint: Checkpoint) -> Result<()> {
        let (reply, replied) = oneshot::channel();
        self.send(Write::Checkpoint(Box::new(checkpoint), reply))?;
        replied.await.map_err(|_| stopped())?
    }

    /// Queues `write` on its owner's lane.
    fn send(&self, write: Write) -> Result<()> {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(write.owner());
        let lane = &self.lanes[hash as usize % self.lanes.len()];
        lane.send(write).map_err(|_| stopped())
    }
}

fn stopped() -> StoreError {
    StoreError::new(StoreErrorKind::Unavailable, "the store's committer stopped")
}

async fn run(store: Store, mut queued: mpsc::UnboundedReceiver<Write>, figures: Arc<Figures>) {
    while let Some(first) = queued.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queued.try_recv() {
                Ok(write) => batch.push(write),
                Err(_) => break,
            }
        }
        batch::commit(&store, batch, &figures).await;
    }
}
