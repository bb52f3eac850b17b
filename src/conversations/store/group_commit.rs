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

use super::{
    finishes::Checkpoint, Edit, Exchange, FinishedAnswer, ModelChoice, NewExchange, Regeneration, Result,
    Store, StoreError,
};
use crate::conversations::{AnswerBlock, ConversationSettings, ModelOption};
use sqlx::Connection;
use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};
use tokio::sync::{mpsc, oneshot};

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
}

enum Write {
    Begin(Box<OwnedExchange>, oneshot::Sender<Result<Exchange>>),
    Edit(Box<OwnedEdit>, oneshot::Sender<Result<Exchange>>),
    Regenerate(Box<OwnedRegeneration>, oneshot::Sender<Result<Exchange>>),
    Finish(Box<FinishedAnswer>, oneshot::Sender<Result<()>>),
    Checkpoint(Box<Checkpoint>, oneshot::Sender<Result<()>>),
}

/// A [`ModelChoice`] that can wait in a queue.
struct OwnedModelChoice {
    requested: Option<String>,
    offered: Vec<ModelOption>,
    default: String,
}

impl OwnedModelChoice {
    fn of(model: &ModelChoice<'_>) -> Self {
        Self {
            requested: model.requested.map(str::to_owned),
            offered: model.offered.to_vec(),
            default: model.default.to_owned(),
        }
    }

    fn as_choice(&self) -> ModelChoice<'_> {
        ModelChoice {
            requested: self.requested.as_deref(),
            offered: &self.offered,
            default: &self.default,
        }
    }
}

/// A [`NewExchange`] that can wait in a queue.
struct OwnedExchange {
    owner: String,
    conversation_id: Option<String>,
    title: String,
    text: String,
    model: OwnedModelChoice,
    settings: Option<ConversationSettings>,
}

impl OwnedExchange {
    fn of(new: &NewExchange<'_>) -> Self {
        Self {
            owner: new.owner.to_owned(),
            conversation_id: new.conversation_id.map(str::to_owned),
            title: new.title.to_owned(),
            text: new.text.to_owned(),
            model: OwnedModelChoice::of(&new.model),
            settings: new.settings.cloned(),
        }
    }

    fn as_new(&self) -> NewExchange<'_> {
        NewExchange {
            owner: &self.owner,
            conversation_id: self.conversation_id.as_deref(),
            title: &self.title,
            text: &self.text,
            model: self.model.as_choice(),
            settings: self.settings.as_ref(),
        }
    }
}

/// An [`Edit`] that can wait in a queue.
struct OwnedEdit {
    owner: String,
    conversation_id: String,
    message_id: String,
    text: String,
    model: OwnedModelChoice,
}

impl OwnedEdit {
    fn of(edit: &Edit<'_>) -> Self {
        Self {
            owner: edit.owner.to_owned(),
            conversation_id: edit.conversation_id.to_owned(),
            message_id: edit.message_id.to_owned(),
            text: edit.text.to_owned(),
            model: OwnedModelChoice::of(&edit.model),
        }
    }

    fn as_edit(&self) -> Edit<'_> {
        Edit {
            owner: &self.owner,
            conversation_id: &self.conversation_id,
            message_id: &self.message_id,
            text: &self.text,
            model: self.model.as_choice(),
        }
    }
}

/// A [`Regeneration`] that can wait in a queue.
struct OwnedRegeneration {
    owner: String,
    conversation_id: String,
    model: OwnedModelChoice,
}

impl OwnedRegeneration {
    fn of(retry: &Regeneration<'_>) -> Self {
        Self {
            owner: retry.owner.to_owned(),
            conversation_id: retry.conversation_id.to_owned(),
            model: OwnedModelChoice::of(&retry.model),
        }
    }

    fn as_regeneration(&self) -> Regeneration<'_> {
        Regeneration {
            owner: &self.owner,
            conversation_id: &self.conversation_id,
            model: self.model.as_choice(),
        }
    }
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
        }
    }

    pub(super) async fn begin(&self, new: &NewExchange<'_>) -> Result<Exchange> {
        let (reply, replied) = oneshot::channel();
        self.send(new.owner, Write::Begin(Box::new(OwnedExchange::of(new)), reply))?;
        replied.await.map_err(|_| stopped())?
    }

    pub(super) async fn edit(&self, edit: &Edit<'_>) -> Result<Exchange> {
        let (reply, replied) = oneshot::channel();
        self.send(edit.owner, Write::Edit(Box::new(OwnedEdit::of(edit)), reply))?;
        replied.await.map_err(|_| stopped())?
    }

    pub(super) async fn regenerate(&self, retry: &Regeneration<'_>) -> Result<Exchange> {
        let (reply, replied) = oneshot::channel();
        let write = Write::Regenerate(Box::new(OwnedRegeneration::of(retry)), reply);
        self.send(retry.owner, write)?;
        replied.await.map_err(|_| stopped())?
    }

    pub(super) async fn finish(&self, answer: &FinishedAnswer) -> Result<()> {
        let (reply, replied) = oneshot::channel();
        self.send(&answer.owner, Write::Finish(Box::new(answer.clone()), reply))?;
        replied.await.map_err(|_| stopped())?
    }

    pub(super) async fn checkpoint(
        &self,
        owner: &str,
        answer_id: &str,
        content: &str,
        blocks: &[AnswerBlock],
    ) -> Result<()> {
        let (reply, replied) = oneshot::channel();
        let checkpoint = Checkpoint {
            answer_id: answer_id.to_owned(),
            content: content.to_owned(),
            blocks: blocks.to_vec(),
        };
        self.send(owner, Write::Checkpoint(Box::new(checkpoint), reply))?;
        replied.await.map_err(|_| stopped())?
    }

    /// Queues `write` on the lane of `key` (its owner).
    fn send(&self, key: &str, write: Write) -> Result<()> {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(key);
        let lane = &self.lanes[hash as usize % self.lanes.len()];
        lane.send(write).map_err(|_| stopped())
    }
}

fn stopped() -> StoreError {
    StoreError::new(
        super::StoreErrorKind::Unavailable,
        "the store's committer stopped",
    )
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
        commit(&store, batch, &figures).await;
    }
}

/// A write's outcome, told once the batch is committed.
enum Reply {
    Begin(oneshot::Sender<Result<Exchange>>, Box<Result<Exchange>>),
    /// A finished answer or a checkpoint.
    Written(oneshot::Sender<Result<()>>, Result<()>),
}

impl Reply {
    fn is_ok(&self) -> bool {
        match self {
            Reply::Begin(_, result) => result.is_ok(),
            Reply::Written(_, result) => result.is_ok(),
        }
    }

    /// Sends the outcome; `failed` replaces a success (the commit failed).
    fn send(self, failed: Option<&StoreError>) {
        match self {
            Reply::Begin(reply, result) => {
                let _ = reply.send(match (*result, failed) {
                    (Ok(_), Some(err)) => Err(err.clone()),
                    (result, _) => result,
                });
            }
            Reply::Written(reply, result) => {
                let _ = reply.send(match (result, failed) {
                    (Ok(()), Some(err)) => Err(err.clone()),
                    (result, _) => result,
                });
            }
        }
    }
}

impl Write {
    /// The first message of a new conversation, as [`NewExchange`].
    fn first_message(&self) -> Option<NewExchange<'_>> {
        match self {
            Write::Begin(new, _) if new.conversation_id.is_none() => Some(new.as_new()),
            _ => None,
        }
    }

    /// The next message in a conversation its owner has, as [`NewExchange`].
    fn next_message(&self) -> Option<NewExchange<'_>> {
        match self {
            Write::Begin(new, _) if new.conversation_id.is_some() => Some(new.as_new()),
            _ => None,
        }
    }

    /// The end of an answer, as [`FinishedAnswer`].
    fn finished_answer(&self) -> Option<&FinishedAnswer> {
        match self {
            Write::Finish(answer, _) => Some(answer),
            _ => None,
        }
    }

    /// A checkpoint of an answer being written.
    fn checkpoint(&self) -> Option<&Checkpoint> {
        match self {
            Write::Checkpoint(checkpoint, _) => Some(checkpoint),
            _ => None,
        }
    }

    /// Runs the write on `conn` keeping it, to be told later or run again:
    /// the exchange begun, if it begins one.
    async fn attempt(&self, store: &Store, conn: &mut sqlx::AnyConnection) -> Result<Option<Exchange>> {
        match self {
            Write::Begin(new, _) => store.exchange_on(conn, &new.as_new()).await.map(Some),
            Write::Edit(edit, _) => store.edit_on(conn, &edit.as_edit()).await.map(Some),
            Write::Regenerate(retry, _) => store
                .regeneration_on(conn, &retry.as_regeneration())
                .await
                .map(Some),
            Write::Finish(answer, _) => store.finish_on(conn, answer).await.map(|()| None),
            Write::Checkpoint(c, _) => store
                .checkpoint_on(conn, &c.answer_id, &c.content, &c.blocks)
                .await
                .map(|()| None),
        }
    }

    /// The reply of a write that [`Write::attempt`] ran.
    fn succeeded(self, begun: Option<Exchange>) -> Reply {
        match self {
            Write::Begin(_, reply) | Write::Edit(_, reply) | Write::Regenerate(_, reply) => Reply::Begin(
                reply,
                Box::new(begun.ok_or_else(|| {
                    StoreError::new(super::StoreErrorKind::Internal, "a begun exchange went missing")
                })),
            ),
            Write::Finish(_, reply) | Write::Checkpoint(_, reply) => Reply::Written(reply, Ok(())),
        }
    }

    /// The reply of a write that could not be run.
    fn failed(self, err: StoreError) -> Reply {
        match self {
            Write::Begin(_, reply) | Write::Edit(_, reply) | Write::Regenerate(_, reply) => {
                Reply::Begin(reply, Box::new(Err(err)))
            }
            Write::Finish(_, reply) | Write::Checkpoint(_, reply) => Reply::Written(reply, Err(err)),
        }
    }

    /// Runs the write on `conn` (a transaction or a savepoint of one).
    async fn run_on(self, store: &Store, conn: &mut sqlx::AnyConnection) -> Reply {
        match self {
            Write::Begin(new, reply) => {
                Reply::Begin(reply, Box::new(store.exchange_on(conn, &new.as_new()).await))
            }
            Write::Edit(edit, reply) => {
                Reply::Begin(reply, Box::new(store.edit_on(conn, &edit.as_edit()).await))
            }
            Write::Regenerate(retry, reply) => Reply::Begin(
                reply,
                Box::new(store.regeneration_on(conn, &retry.as_regeneration()).await),
            ),
            Write::Finish(answer, reply) => Reply::Written(reply, store.finish_on(conn, &answer).await),
            Write::Checkpoint(c, reply) => Reply::Written(
                reply,
                store
                    .checkpoint_on(conn, &c.answer_id, &c.content, &c.blocks)
                    .await,
            ),
        }
    }
}

/// Runs a batch in one transaction, and counts it if it committed.
async fn commit(store: &Store, batch: Vec<Write>, figures: &Figures) {
    if let Err(batch) = without_savepoints(store, batch, figures).await {
        with_savepoints(store, batch, figures).await;
    }
}

/// Runs a batch in one transaction with no savepoint per write (a lone
/// write never needs one). Gives the batch back, rolled back, when a write
/// fails: run with savepoints, its failure is then its own.
async fn without_savepoints(
    store: &Store,
    batch: Vec<Write>,
    figures: &Figures,
) -> std::result::Result<(), Vec<Write>> {
    let Ok(mut tx) = store.pool.begin().await else {
        return Err(batch);
    };
    let writes = batch.len();
    // First messages, then next messages, then answers' ends, then
    // checkpoints, then the rest: each kind in sets of `TOGETHER` from its
    // front, where it may be. (A checkpoint run after its answer's end
    // changes nothing.)
    let (fresh, rest): (Vec<Write>, Vec<Write>) = batch
        .into_iter()
        .partition(|write| write.first_message().is_some());
    let (next, rest): (Vec<Write>, Vec<Write>) =
        rest.into_iter().partition(|write| write.next_message().is_some());
    let (ends, rest): (Vec<Write>, Vec<Write>) = rest
        .into_iter()
        .partition(|write| write.finished_answer().is_some());
    let (saves, rest): (Vec<Write>, Vec<Write>) =
        rest.into_iter().partition(|write| write.checkpoint().is_some());
    let in_sets = |writes: &[Write]| writes.len() / TOGETHER * TOGETHER;
    let (fresh_in_sets, next_in_sets) = (in_sets(&fresh), in_sets(&next));
    let (ends_in_sets, saves_in_sets) = (in_sets(&ends), in_sets(&saves));
    let mut begun: Vec<Option<Exchange>> = Vec::with_capacity(writes);
    let mut together = Together::default();
    // The error of the write that failed; none for a set.
    let ran: std::result::Result<(), Option<StoreError>> = async {
        for set in fresh[..fresh_in_sets].chunks(TOGETHER) {
            let news: Vec<NewExchange<'_>> = set.iter().filter_map(Write::first_message).collect();
            let exchanges = store
                .new_conversations_on(&mut tx, &news)
                .await
                .map_err(|_| None)?;
            together.begun += exchanges.len();
            begun.extend(exchanges.into_iter().map(Some));
        }
        attempt_each(store, &mut tx, &fresh[fresh_in_sets..], &mut begun)
            .await
            .map_err(Some)?;
        for set in next[..next_in_sets].chunks(TOGETHER) {
            let news: Vec<NewExchange<'_>> = set.iter().filter_map(Write::next_message).collect();
            let exchanges = store.next_messages_on(&mut tx, &news).await.map_err(|err| {
                tracing::debug!(error = %err, "next messages written one by one");
                None
            })?;
            together.begun += exchanges.len();
            begun.extend(exchanges.into_iter().map(Some));
        }
        attempt_each(store, &mut tx, &next[next_in_sets..], &mut begun)
            .await
            .map_err(Some)?;
        for set in ends[..ends_in_sets].chunks(TOGETHER) {
            let answers: Vec<&FinishedAnswer> = set.iter().filter_map(Write::finished_answer).collect();
            store.finishes_on(&mut tx, &answers).await.map_err(|err| {
                tracing::debug!(error = %err, "answers' ends written one by one");
                None
            })?;
            together.finished += answers.len();
            begun.extend(answers.iter().map(|_| None));
        }
        attempt_each(store, &mut tx, &ends[ends_in_sets..], &mut begun)
            .await
            .map_err(Some)?;
        for set in saves[..saves_in_sets].chunks(TOGETHER) {
            let checkpoints: Vec<&Checkpoint> = set.iter().filter_map(Write::checkpoint).collect();
            store.checkpoints_on(&mut tx, &checkpoints).await.map_err(|err| {
                tracing::debug!(error = %err, "checkpoints written one by one");
                None
            })?;
            together.checkpointed += checkpoints.len();
            begun.extend(checkpoints.iter().map(|_| None));
        }
        attempt_each(
            store,
            &mut tx,
            saves[saves_in_sets..].iter().chain(&rest),
            &mut begun,
        )
        .await
        .map_err(Some)
    }
    .await;
    let mut batch = fresh.into_iter().chain(next).chain(ends).chain(saves).chain(rest);
    if let Err(err) = ran {
        let _ = tx.rollback().await;
        return match (err, batch.next()) {
            // Alone, its error is its own, whatever the rollback says.
            (Some(err), Some(write)) if writes == 1 => {
                write.failed(err).send(None);
                Ok(())
            }
            (_, first) => Err(first.into_iter().chain(batch).collect()),
        };
    }
    let failed = tx.commit().await.err().map(StoreError::from);
    if failed.is_none() {
        figures.committed(writes, together);
    }
    for (write, exchange) in batch.zip(begun) {
        write.succeeded(exchange).send(failed.as_ref());
    }
    Ok(())
}

/// Runs `writes` one after another on `tx`, each exchange begun onto
/// `begun`; stops at the first that fails, with its error.
async fn attempt_each<'a>(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    writes: impl IntoIterator<Item = &'a Write>,
    begun: &mut Vec<Option<Exchange>>,
) -> Result<()> {
    for write in writes {
        begun.push(write.attempt(store, tx).await?);
    }
    Ok(())
}

/// Runs a batch in one transaction, each write (or set of first messages)
/// in a savepoint of its own, rolled back alone when it fails.
async fn with_savepoints(store: &Store, batch: Vec<Write>, figures: &Figures) {
    let writes = batch.len();
    let mut tx = match store.pool.begin().await {
        Ok(tx) => tx,
        Err(err) => {
            let err = StoreError::from(err);
            for write in batch {
                write.failed(err.clone()).send(None);
            }
            return;
        }
    };
    let mut replies = Vec::with_capacity(batch.len());
    // First messages of new conversations (most of a burst): in sets of
    // `TOGETHER`, the rest one by one.
    let mut fresh: Vec<FirstMessage> = Vec::new();
    let mut one_by_one: Vec<Write> = Vec::new();
    for write in batch {
        match write {
            Write::Begin(new, reply) if new.conversation_id.is_none() => fresh.push((new, reply)),
            other => one_by_one.push(other),
        }
    }
    let mut together = Together::default();
    while fresh.len() >= TOGETHER {
        let set: Vec<FirstMessage> = fresh.drain(..TOGETHER).collect();
        match begin_together(store, &mut tx, set).await {
            Ok(begun) => {
                together.begun += begun.len();
                replies.extend(begun);
            }
            // Each on its own, so that a failure is only its own.
            Err(set) => fresh_one_by_one(&mut one_by_one, set),
        }
    }
    fresh_one_by_one(&mut one_by_one, fresh);
    for write in one_by_one {
        // Each write in a savepoint of its own: its failure is its own.
        let mut savepoint = match tx.begin().await {
            Ok(savepoint) => savepoint,
            Err(err) => {
                replies.push(write.failed(StoreError::from(err)));
                continue;
            }
        };
        let reply = write.run_on(store, &mut savepoint).await;
        let settled = if reply.is_ok() {
            savepoint.commit().await
        } else {
            savepoint.rollback().await
        };
        match settled {
            Ok(()) => replies.push(reply),
            Err(err) => {
                let err = StoreError::from(err);
                reply.send(Some(&err));
            }
        }
    }
    let failed = tx.commit().await.err().map(StoreError::from);
    if failed.is_none() {
        figures.committed(writes, together);
    }
    for reply in replies {
        reply.send(failed.as_ref());
    }
}

/// A new conversation's first message, waiting to be written.
type FirstMessage = (Box<OwnedExchange>, oneshot::Sender<Result<Exchange>>);

fn fresh_one_by_one(one_by_one: &mut Vec<Write>, fresh: Vec<FirstMessage>) {
    one_by_one.extend(fresh.into_iter().map(|(new, reply)| Write::Begin(new, reply)));
}

/// Begins `set` in one savepoint of `tx`; gives it back when that fails.
async fn begin_together(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    set: Vec<FirstMessage>,
) -> std::result::Result<Vec<Reply>, Vec<FirstMessage>> {
    let Ok(mut savepoint) = tx.begin().await else {
        return Err(set);
    };
    let news: Vec<NewExchange<'_>> = set.iter().map(|(new, _)| new.as_new()).collect();
    let exchanges = match store.new_conversations_on(&mut savepoint, &news).await {
        Ok(exchanges) => exchanges,
        Err(err) => {
            tracing::debug!(error = %err, "new conversations written one by one");
            let _ = savepoint.rollback().await;
            return Err(set);
        }
    };
    if savepoint.commit().await.is_err() {
        return Err(set);
    }
    Ok(set
        .into_iter()
        .zip(exchanges)
        .map(|((_, reply), exchange)| Reply::Begin(reply, Box::new(Ok(exchange))))
        .collect())
}
