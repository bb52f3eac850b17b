//! The transactions that start an answer: a new message, an edit, a retry
//! (its end is `answer_end`; its lease, `leases`).

use super::{
    new_id, now_ms,
    rows::{conversation_from_rows, messages_of, scalar_i64, CONVERSATION_COLUMNS},
    script::Script,
    settings_json, Edit, Exchange, ModelChoice, NewExchange, Regeneration, Result, Store, StoreError,
    StoreErrorKind,
};
use crate::{
    conversations::Role,
    conversations::{ConversationSettings, ConversationSummary, MessageStatus, StoredMessage},
};
use sqlx::Arguments;

impl NewExchange<'_> {
    /// The conversation this exchange starts (it names none), its settings
    /// and the model that answers.
    pub(super) fn fresh_conversation(&self, now: i64) -> (ConversationSummary, ConversationSettings, String) {
        let summary = ConversationSummary {
            id: new_id(),
            title: self.title.to_owned(),
            created_at: now,
            updated_at: now,
        };
        let mut settings = self.settings.cloned().unwrap_or_default();
        let model_id = self.model.resolve(settings.model_id.as_deref());
        settings.model_id = Some(model_id.clone());
        (summary, settings, model_id)
    }
}

impl Store {
    /// Commits the user's message and an empty answer (status `streaming`)
    /// in one transaction, creating the conversation when asked to (shared
    /// with other writes under group commit).
    pub async fn begin_exchange(&self, new: NewExchange<'_>) -> Result<Exchange> {
        crate::telemetry::time_store("begin_exchange", async {
            if let Some(committer) = &self.committer {
                return committer.begin(&new).await;
            }
            let mut tx = self.pool.begin().await?;
            let exchange = self.exchange_on(&mut tx, &new).await?;
            tx.commit().await?;
            Ok(exchange)
        })
        .await
    }

    /// [`Store::begin_exchange`]'s writes, in `tx`'s transaction.
    pub(super) async fn exchange_on(
        &self,
        tx: &mut sqlx::AnyConnection,
        new: &NewExchange<'_>,
    ) -> Result<Exchange> {
        let Some(id) = new.conversation_id else {
            let mut writes = Script::new(self.backend);
            let exchange = self.push_first_message(&mut writes, new);
            writes.execute(&mut *tx).await?;
            self.take_lease(
                &mut *tx,
                new.owner,
                &exchange.conversation.id,
                &exchange.answer_id,
            )
            .await?;
            return Ok(exchange);
        };
        let now = now_ms();
        // Opening it writes first, so SQLite takes its write lock now
        // rather than failing to upgrade a read lock later in the
        // transaction. The other writes go as one script (on SQLite, one
        // hop to the connection's thread).
        let (conversation, stored, earlier) = open_for_answer(&mut *tx, new.owner, id, now).await?;
        let mut writes = Script::new(self.backend);
        let mut settings = new.settings.cloned().unwrap_or_else(|| stored.clone());
        let model_id = remember_settings(&mut writes, id, &stored, &mut settings, new.model);
        let (user_message_id, answer_id) =
            insert_question_and_answer(&mut writes, id, new.text, &model_id, now);
        self.push_lease(&mut writes, new.owner, id, &answer_id, false);
        writes.execute(&mut *tx).await?;
        self.take_lease(&mut *tx, new.owner, id, &answer_id).await?;
        Ok(Exchange {
            conversation,
            settings,
            model_id,
            created: false,
            user_message_id,
            user_text: new.text.to_owned(),
            answer_id,
            earlier,
        })
    }

    /// Pushes onto `writes` the writes of a new conversation's first
    /// message (it names none), with what its lease needs
    /// ([`Store::push_lease`]): the exchange they begin once committed.
    pub(super) fn push_first_message<'q>(&self, writes: &mut Script<'q>, new: &NewExchange<'q>) -> Exchange {
        let now = now_ms();
        // A write first, so SQLite takes its write lock now rather than
        // failing to upgrade a read lock later in the transaction. Updating
        // the row when it is there locks it, as `FOR UPDATE` would.
        let owner = new.owner;
        let locks_owner = self.lease_locks_owner();
        writes.push(
            if locks_owner {
                "INSERT INTO owners (id, created_at) VALUES ($1, $2) \
                 ON CONFLICT (id) DO UPDATE SET created_at = owners.created_at"
            } else {
                "INSERT INTO owners (id, created_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING"
            },
            move |args| {
                args.add(owner)?;
                args.add(now)
            },
        );
        let (conversation, settings, model_id) = new.fresh_conversation(now);
        let (id, title, settings_text) = (
            conversation.id.clone(),
            conversation.title.clone(),
            settings_json(&settings),
        );
        writes.push(
            "INSERT INTO conversations (id, owner_id, title, created_at, updated_at, settings) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            move |args| {
                args.add(id)?;
                args.add(owner)?;
                args.add(title)?;
                args.add(now)?;
                args.add(now)?;
                args.add(settings_text)
            },
        );
        let (user_message_id, answer_id) =
            insert_question_and_answer(writes, &conversation.id, new.text, &model_id, now);
        self.push_lease(writes, owner, &conversation.id, &answer_id, locks_owner);
        Exchange {
            conversation,
            settings,
            model_id,
            created: true,
            user_message_id,
            user_text: new.text.to_owned(),
            answer_id,
            earlier: Vec::new(),
        }
    }

    /// Rewrites one of the conversation's user messages (edit and resend):
    /// the message and every turn after it are replaced (kept, marked
    /// `replaced_at`, no longer shown), and the new text is committed with
    /// an empty answer, as [`Store::begin_exchange`] does. `earlier` holds
    /// the messages before the edited one.
    pub async fn begin_edit(
        &self,
        owner: &str,
        conversation_id: &str,
        message_id: &str,
        text: &str,
        model: ModelChoice<'_>,
    ) -> Result<Exchange> {
        let edit = Edit {
            owner,
            conversation_id,
            message_id,
            text,
            model,
        };
        crate::telemetry::time_store("begin_edit", async {
            if let Some(committer) = &self.committer {
                return committer.edit(&edit).await;
            }
            let mut tx = self.pool.begin().await?;
            let exchange = self.edit_on(&mut tx, &edit).await?;
            tx.commit().await?;
            Ok(exchange)
        })
        .await
    }

    /// [`Store::begin_edit`] in `conn`'s transaction (shared with other
    /// writes under group commit).
    pub(super) async fn edit_on(&self, tx: &mut sqlx::AnyConnection, edit: &Edit<'_>) -> Result<Exchange> {
        let Edit {
            owner,
            conversation_id,
            message_id,
            text,
            model,
        } = *edit;
        let now = now_ms();
        let (conversation, stored, mut messages) =
            open_for_answer(&mut *tx, owner, conversation_id, now).await?;
        let at = messages
            .iter()
            .position(|m| m.id == message_id && m.role == Role::User)
            .ok_or_else(|| {
                StoreError::new(
                    StoreErrorKind::MessageNotFound,
                    "no such user message in this conversation",
                )
            })?;
        let mut writes = Script::new(self.backend);
        writes.push(
            "UPDATE messages SET replaced_at = $1 WHERE conversation_id = $2 AND replaced_at IS NULL \
             AND position >= (SELECT position FROM messages WHERE id = $3)",
            |args| {
                args.add(now)?;
                args.add(conversation_id)?;
                args.add(message_id)
            },
        );
        messages.truncate(at);
        let mut settings = stored.clone();
        let model_id = remember_settings(&mut writes, conversation_id, &stored, &mut settings, model);
        let (user_message_id, answer_id) =
            insert_question_and_answer(&mut writes, conversation_id, text, &model_id, now);
        self.push_lease(&mut writes, owner, conversation_id, &answer_id, false);
        writes.execute(&mut *tx).await?;
        self.take_lease(&mut *tx, owner, conversation_id, &answer_id)
            .await?;
        Ok(Exchange {
            conversation,
            settings,
            model_id,
            created: false,
            user_message_id,
            user_text: text.to_owned(),
            answer_id,
            earlier: messages,
        })
    }

    /// Starts a new answer to the conversation's last user message (Retry):
    /// the previous answer stays stored, and the new one follows it, in
    /// status `streaming`. Returns the exchange as if the user message had
    /// just been sent: `earlier` holds the messages before it.
    pub async fn begin_regeneration(
        &self,
        owner: &str,
        conversation_id: &str,
        model: ModelChoice<'_>,
    ) -> Result<Exchange> {
        let retry = Regeneration {
            owner,
            conversation_id,
            model,
        };
        crate::telemetry::time_store("begin_regeneration", async {
            if let Some(committer) = &self.committer {
                return committer.regenerate(&retry).await;
            }
            let mut tx = self.pool.begin().await?;
            let exchange = self.regeneration_on(&mut tx, &retry).await?;
            tx.commit().await?;
            Ok(exchange)
        })
        .await
    }

    /// [`Store::begin_regeneration`] in `conn`'s transaction (shared with
    /// other writes under group commit).
    pub(super) async fn regeneration_on(
        &self,
        tx: &mut sqlx::AnyConnection,
        retry: &Regeneration<'_>,
    ) -> Result<Exchange> {
        let Regeneration {
            owner,
            conversation_id,
            model,
        } = *retry;
        let now = now_ms();
        let (conversation, stored, mut messages) =
            open_for_answer(&mut *tx, owner, conversation_id, now).await?;
        match messages.last() {
            Some(last) if last.role == Role::Assistant => {}
            _ => {
                return Err(StoreError::new(
                    StoreErrorKind::NothingToRetry,
                    "the conversation does not end with an answer",
                ))
            }
        }
        // The user message being answered, and what came before it.
        let user_at = messages
            .iter()
            .rposition(|m| m.role == Role::User)
            .ok_or_else(|| StoreError::new(StoreErrorKind::NothingToRetry, "no user message to answer"))?;
        let position = next_position(&mut *tx, conversation_id).await?;
        let answer_id = new_id();
        let mut settings = stored.clone();
        let mut writes = Script::new(self.backend);
        let model_id = remember_settings(&mut writes, conversation_id, &stored, &mut settings, model);
        let (id, answering_model) = (answer_id.clone(), model_id.clone());
        writes.push(
            "INSERT INTO messages (id, conversation_id, position, role, content, status, model_id, created_at) \
             VALUES ($1, $2, $3, 'assistant', '', 'streaming', $4, $5)",
            move |args| {
                args.add(id)?;
                args.add(conversation_id)?;
                args.add(position)?;
                args.add(answering_model)?;
                args.add(now)
            },
        );
        self.push_lease(&mut writes, owner, conversation_id, &answer_id, false);
        writes.execute(&mut *tx).await?;
        self.take_lease(&mut *tx, owner, conversation_id, &answer_id)
            .await?;
        messages.truncate(user_at + 1);
        let user = messages.pop().expect("the user message is there");
        Ok(Exchange {
            conversation,
            settings,
            model_id,
            created: false,
            user_message_id: user.id,
            user_text: user.content,
            answer_id,
            earlier: messages,
        })
    }
}

/// Opens one of the owner's conversations for a new answer, in `conn`'s
/// transaction: marks it active now (the write first, so SQLite takes its
/// write lock at once; see `begin_exchange`), and reads its settings and
/// messages. The caller holds the conversation (no answer is being written
/// in it), so a row still `streaming` is an orphan: it is settled as
/// `interrupted`, keeping its text.
async fn open_for_answer(
    conn: &mut sqlx::AnyConnection,
    owner: &str,
    id: &str,
    now: i64,
) -> Result<(ConversationSummary, ConversationSettings, Vec<StoredMessage>)> {
    // Marked active and read in one round trip.
    let rows = sqlx::query(&format!(
        "UPDATE conversations SET updated_at = $1 WHERE id = $2 AND owner_id = $3 \
         RETURNING {CONVERSATION_COLUMNS}"
    ))
    .bind(now)
    .bind(id)
    .bind(owner)
    .fetch_all(&mut *conn)
    .await?;
    let (summary, settings) = conversation_from_rows(&rows)?;
    let mut messages = messages_of(&mut *conn, id).await?;
    settle_orphans(&mut *conn, id, &mut messages).await?;
    Ok((summary, settings, messages))
}

/// The model that answers now. The conversation remembers it, with the rest
/// of `settings`, for the next message; the row is only written (by
/// `writes`) when that changes what it `stored`.
pub(super) fn remember_settings<'q>(
    writes: &mut Script<'q>,
    conversation_id: &'q str,
    stored: &ConversationSettings,
    settings: &mut ConversationSettings,
    model: ModelChoice<'_>,
) -> String {
    let model_id = model.resolve(settings.model_id.as_deref());
    settings.model_id = Some(model_id.clone());
    if settings != stored {
        let json = settings_json(settings);
        writes.push(
            "UPDATE conversations SET settings = $1 WHERE id = $2",
            move |args| {
                args.add(json)?;
                args.add(conversation_id)
            },
        );
    }
    model_id
}

/// Rows left `streaming` in a conversation nobody is writing into become
/// `interrupted` (see `open_for_answer`).
async fn settle_orphans(
    conn: &mut sqlx::AnyConnection,
    conversation_id: &str,
    messages: &mut [StoredMessage],
) -> Result<()> {
    if !messages.iter().any(|m| m.status == MessageStatus::Streaming) {
        return Ok(());
    }
    // An answer under a lease is being written by another instance (and
    // its lease refuses this one).
    sqlx::query(
        "UPDATE messages SET status = 'interrupted' WHERE conversation_id = $1 AND status = 'streaming' \
         AND id NOT IN (SELECT answer_id FROM answer_leases)",
    )
    .bind(conversation_id)
    .execute(&mut *conn)
    .await?;
    for message in messages
        .iter_mut()
        .filter(|m| m.status == MessageStatus::Streaming)
    {
        message.status = MessageStatus::Interrupted;
    }
    Ok(())
}

/// The place after every message of the conversation, replaced ones
/// included (their places stay taken).
async fn next_position(conn: &mut sqlx::AnyConnection, conversation_id: &str) -> Result<i64> {
    let last =
        sqlx::query("SELECT COALESCE(MAX(position), 0) AS last FROM messages WHERE conversation_id = $1")
            .bind(conversation_id)
            .fetch_all(&mut *conn)
            .await?;
    Ok(scalar_i64(last, "last")? + 1)
}

/// Adds to `writes` the user's message and an empty answer (status
/// `streaming`) after the conversation's last message; returns their ids.
///
/// One statement, the place included: on PostgreSQL every statement is a
/// round trip, and starting an answer is on the way to its first token.
fn insert_question_and_answer<'q>(
    writes: &mut Script<'q>,
    conversation_id: &str,
    text: &'q str,
    model_id: &str,
    now: i64,
) -> (String, String) {
    let user_message_id = new_id();
    let answer_id = new_id();
    let (question, answer, conversation_id, model) = (
        user_message_id.clone(),
        answer_id.clone(),
        conversation_id.to_owned(),
        model_id.to_owned(),
    );
    // The SELECT reads the table it inserts into, so both databases read
    // the last place before either row is written.
    writes.push(
        "WITH last AS (SELECT COALESCE(MAX(position), 0) AS n FROM messages \
                       WHERE conversation_id = $2) \
         INSERT INTO messages (id, conversation_id, position, role, content, status, model_id, created_at) \
         SELECT $1, $2, n + 1, 'user', $3, 'complete', NULL, $4 FROM last \
         UNION ALL \
         SELECT $5, $2, n + 2, 'assistant', '', 'streaming', $6, $4 FROM last",
        move |args| {
            args.add(question)?;
            args.add(conversation_id)?;
            args.add(text)?;
            args.add(now)?;
            args.add(answer)?;
            args.add(model)
        },
    );
    (user_message_id, answer_id)
}
