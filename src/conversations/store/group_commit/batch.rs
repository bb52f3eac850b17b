//! A batch of writes run in one transaction: as one script when its writes
//! allow, else first with no savepoint per write, and again with one per
//! write should any fail.

use super::{
    writes::{OwnedExchange, Reply, Write},
    Figures, Together, TOGETHER,
};
use crate::conversations::store::{
    finishes::Checkpoint, script::Script, Exchange, FinishedAnswer, NewExchange, Result, Store, StoreError,
};
use sqlx::Connection;
use tokio::sync::oneshot;

/// The most writes joined in one script. Each mix of writes makes a query
/// of its own, prepared once per connection: up to four writes of the four
/// ranks ([`Write::script_rank`]) make 69 mixes, within the 100 statements
/// sqlx keeps prepared per connection. Larger batches go in sets.
const JOINED: usize = 4;

/// Runs a batch in one transaction, and counts it if it committed.
pub(super) async fn commit(store: &Store, mut batch: Vec<Write>, figures: &Figures) {
    // A few writes of different owners (most batches, unless many people
    // write at once) whose statements are known up front go as one script,
    // their transaction's `BEGIN` and `COMMIT` included: on PostgreSQL one
    // statement, where each write and the `BEGIN` and `COMMIT` were a round
    // trip each. Different owners, so that no two write the same row (one
    // statement could not say which of the two comes last).
    if batch.len() <= JOINED && joinable(store, &batch) {
        batch.sort_by_key(|write| write.script_rank(store));
        let mut script = Script::new(store.backend);
        let begun: Vec<Option<Exchange>> = batch
            .iter()
            .map(|write| write.push_onto(store, &mut script))
            .collect();
        let committed = script.commit_alone(&store.pool).await;
        match committed {
            Ok(()) => {
                let writes = batch.len();
                let joined = if writes > 1 { writes } else { 0 };
                figures.committed(
                    writes,
                    Together {
                        joined,
                        ..Together::default()
                    },
                );
                for (write, begun) in batch.into_iter().zip(begun) {
                    write.succeeded(begun).send(None);
                }
                return;
            }
            Err(err) if batch.len() == 1 => {
                batch.pop().expect("one write").failed(err).send(None);
                return;
            }
            // Run again below, where a write's failure is its own.
            Err(err) => tracing::debug!(error = %err, "joined writes run again one by one"),
        }
    }
    if let Err(batch) = without_savepoints(store, batch, figures).await {
        with_savepoints(store, batch, figures).await;
    }
}

/// Whether `batch` can go as one script: every write's statements known up
/// front (it has a [`Write::script_rank`]), and no two writes of the same
/// owner.
fn joinable(store: &Store, batch: &[Write]) -> bool {
    batch.iter().enumerate().all(|(n, write)| {
        write.script_rank(store).is_some() && batch[..n].iter().all(|before| before.owner() != write.owner())
    })
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
