//! A write as it waits in a committing lane's queue (owning what its
//! caller lent), and the reply its caller hears once the batch is settled.

use super::super::{
    answer_end::push_checkpoint, finishes::Checkpoint, script::Script, Edit, Exchange, FinishedAnswer,
    ModelChoice, NewExchange, Regeneration, Result, Store, StoreError, StoreErrorKind,
};
use crate::conversations::{ConversationSettings, ModelOption};
use tokio::sync::oneshot;

pub(super) enum Write {
    Begin(Box<OwnedExchange>, oneshot::Sender<Result<Exchange>>),
    Edit(Box<OwnedEdit>, oneshot::Sender<Result<Exchange>>),
    Regenerate(Box<OwnedRegeneration>, oneshot::Sender<Result<Exchange>>),
    Finish(Box<FinishedAnswer>, oneshot::Sender<Result<()>>),
    Checkpoint(Box<Checkpoint>, oneshot::Sender<Result<()>>),
}

/// A [`ModelChoice`] that can wait in a queue.
pub(super) struct OwnedModelChoice {
    requested: Option<String>,
    offered: Vec<ModelOption>,
    default: String,
}

impl OwnedModelChoice {
    pub(super) fn of(model: &ModelChoice<'_>) -> Self {
        Self {
            requested: model.requested.map(str::to_owned),
            offered: model.offered.to_vec(),
            default: model.default.to_owned(),
        }
    }

    pub(super) fn as_choice(&self) -> ModelChoice<'_> {
        ModelChoice {
            requested: self.requested.as_deref(),
            offered: &self.offered,
            default: &self.default,
        }
    }
}

/// A [`NewExchange`] that can wait in a queue.
pub(super) struct OwnedExchange {
    owner: String,
    pub(super) conversation_id: Option<String>,
    title: String,
    text: String,
    model: OwnedModelChoice,
    settings: Option<ConversationSettings>,
}

impl OwnedExchange {
    pub(super) fn of(new: &NewExchange<'_>) -> Self {
        Self {
            owner: new.owner.to_owned(),
            conversation_id: new.conversation_id.map(str::to_owned),
            title: new.title.to_owned(),
            text: new.text.to_owned(),
            model: OwnedModelChoice::of(&new.model),
            settings: new.settings.cloned(),
        }
    }

    pub(super) fn as_new(&self) -> NewExchange<'_> {
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
pub(super) struct OwnedEdit {
    owner: String,
    conversation_id: String,
    message_id: String,
    text: String,
    model: OwnedModelChoice,
}

impl OwnedEdit {
    pub(super) fn of(edit: &Edit<'_>) -> Self {
        Self {
            owner: edit.owner.to_owned(),
            conversation_id: edit.conversation_id.to_owned(),
            message_id: edit.message_id.to_owned(),
            text: edit.text.to_owned(),
            model: OwnedModelChoice::of(&edit.model),
        }
    }

    pub(super) fn as_edit(&self) -> Edit<'_> {
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
pub(super) struct OwnedRegeneration {
    owner: String,
    conversation_id: String,
    model: OwnedModelChoice,
}

impl OwnedRegeneration {
    pub(super) fn of(retry: &Regeneration<'_>) -> Self {
        Self {
            owner: retry.owner.to_owned(),
            conversation_id: retry.conversation_id.to_owned(),
            model: OwnedModelChoice::of(&retry.model),
        }
    }

    pub(super) fn as_regeneration(&self) -> Regeneration<'_> {
        Regeneration {
            owner: &self.owner,
            conversation_id: &self.conversation_id,
            model: self.model.as_choice(),
        }
    }
}

/// A write's outcome, told once the batch is committed.
pub(super) enum Reply {
    Begin(oneshot::Sender<Result<Exchange>>, Box<Result<Exchange>>),
    /// A finished answer or a checkpoint.
    Written(oneshot::Sender<Result<()>>, Result<()>),
}

impl Reply {
    pub(super) fn is_ok(&self) -> bool {
        match self {
            Reply::Begin(_, result) => result.is_ok(),
            Reply::Written(_, result) => result.is_ok(),
        }
    }

    /// Sends the outcome; `failed` replaces a success (the commit failed).
    pub(super) fn send(self, failed: Option<&StoreError>) {
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
    pub(super) fn first_message(&self) -> Option<NewExchange<'_>> {
        match self {
            Write::Begin(new, _) if new.conversation_id.is_none() => Some(new.as_new()),
            _ => None,
        }
    }

    /// The next message in a conversation its owner has, as [`NewExchange`].
    pub(super) fn next_message(&self) -> Option<NewExchange<'_>> {
        match self {
            Write::Begin(new, _) if new.conversation_id.is_some() => Some(new.as_new()),
            _ => None,
        }
    }

    /// The end of an answer, as [`FinishedAnswer`].
    pub(super) fn finished_answer(&self) -> Option<&FinishedAnswer> {
        match self {
            Write::Finish(answer, _) => Some(answer),
            _ => None,
        }
    }

    /// A checkpoint of an answer being written.
    pub(super) fn checkpoint(&self) -> Option<&Checkpoint> {
        match self {
            Write::Checkpoint(checkpoint, _) => Some(checkpoint),
            _ => None,
        }
    }

    /// Whose write it is: every row it writes is theirs (their lane's).
    pub(super) fn owner(&self) -> &str {
        match self {
            Write::Begin(new, _) => &new.owner,
            Write::Edit(edit, _) => &edit.owner,
            Write::Regenerate(retry, _) => &retry.owner,
            Write::Finish(answer, _) => &answer.owner,
            Write::Checkpoint(checkpoint, _) => &checkpoint.owner,
        }
    }

    /// Where the write goes in a joined [`Script`] ([`Write::push_onto`]),
    /// or none when its statements are not known before it runs. Scripted:
    /// an answer's end, a checkpoint, and a new conversation's first
    /// message unless its lease is counted against the owner's caps (that
    /// reads first). Writes of the same statements go side by side, so that
    /// the same mix of writes makes the same query (prepared once per
    /// connection).
    pub(super) fn script_rank(&self, store: &Store) -> Option<u8> {
        match self {
            Write::Begin(new, _) if new.conversation_id.is_none() && !store.leases_counted() => Some(0),
            Write::Finish(answer, _) if answer.usage.is_some() => Some(1),
            Write::Finish(..) => Some(2),
            Write::Checkpoint(..) => Some(3),
            Write::Begin(..) | Write::Edit(..) | Write::Regenerate(..) => None,
        }
    }

    /// Pushes the statements of a write that has a [`Write::script_rank`]
    /// onto `script`: the exchange they begin, if they begin one.
    pub(super) fn push_onto<'w>(&'w self, store: &Store, script: &mut Script<'w>) -> Option<Exchange> {
        match self {
            Write::Begin(new, _) => Some(store.push_first_message(script, &new.as_new())),
            Write::Finish(answer, _) => {
                store.push_finish(script, answer);
                None
            }
            Write::Checkpoint(c, _) => {
                push_checkpoint(script, &c.answer_id, &c.content, &c.blocks);
                None
            }
            Write::Edit(..) | Write::Regenerate(..) => {
                unreachable!("only a write with a script rank is pushed onto a script")
            }
        }
    }

    /// Runs the write on `conn` keeping it, to be told later or run again:
    /// the exchange begun, if it begins one.
    pub(super) async fn attempt(
        &self,
        store: &Store,
        conn: &mut sqlx::AnyConnection,
    ) -> Result<Option<Exchange>> {
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
    pub(super) fn succeeded(self, begun: Option<Exchange>) -> Reply {
        match self {
            Write::Begin(_, reply) | Write::Edit(_, reply) | Write::Regenerate(_, reply) => Reply::Begin(
                reply,
                Box::new(begun.ok_or_else(|| {
                    StoreError::new(StoreErrorKind::Internal, "a begun exchange went missing")
                })),
            ),
            Write::Finish(_, reply) | Write::Checkpoint(_, reply) => Reply::Written(reply, Ok(())),
        }
    }

    /// The reply of a write that could not be run.
    pub(super) fn failed(self, err: StoreError) -> Reply {
        match self {
            Write::Begin(_, reply) | Write::Edit(_, reply) | Write::Regenerate(_, reply) => {
                Reply::Begin(reply, Box::new(Err(err)))
            }
            Write::Finish(_, reply) | Write::Checkpoint(_, reply) => Reply::Written(reply, Err(err)),
        }
    }

    /// Runs the write on `conn` (a transaction or a savepoint of one).
    pub(super) async fn run_on(self, store: &Store, conn: &mut sqlx::AnyConnection) -> Reply {
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
