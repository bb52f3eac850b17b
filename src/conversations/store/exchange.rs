//! The transactions that start an answer (a new message, an edit, a retry)
//! and end it (checkpoints, the final save with the owner's usage).

use super::{
    new_id, now_ms,
    rows::{conversation_from_rows, messages_of, scalar_i64, CONVERSATION_COLUMNS},
    settings_json, Edit, Exchange, FinishedAnswer, ModelChoice, NewExchange, Regeneration, Result, Store,
    StoreError, StoreErrorKind,
};
use crate::{
    conversations::Role,
    conversations::{AnswerBlock, ConversationSettings, ConversationSummary, MessageStatus, StoredMessage},
};

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
        let now = now_ms();
        // A write first, so SQLite takes its write lock now rather than
        // failing to upgrade a read lock later in the transaction. (An
        // existing conversation's owner is stored already, and opening it
        // writes first.)
        if new.conversation_id.is_none() {
            sqlx::query("INSERT INTO owners (id, created_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING")
                .bind(new.owner)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }

        let (conversation, created, earlier, settings, model_id) = match new.conversation_id {
            Some(id) => {
                let (summary, stored, earlier) = open_for_answer(&mut *tx, new.owner, id, now).await?;
                let mut settings = new.settings.cloned().unwrap_or_else(|| stored.clone());
                let model_id = remember_settings(&mut *tx, id, &stored, &mut settings, new.model).await?;
                (summary, false, earlier, settings, model_id)
            }
            None => {
                let (summary, settings, model_id) = new.fresh_conversation(now);
                sqlx::query(
                    "INSERT INTO conversations (id, owner_id, title, created_at, updated_at, settings) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&summary.id)
                .bind(new.owner)
                .bind(&summary.title)
                .bind(now)
                .bind(now)
                .bind(settings_json(&settings))
                .execute(&mut *tx)
                .await?;
                (summary, true, Vec::new(), settings, model_id)
            }
        };
        let (user_message_id, answer_id) =
            insert_question_and_answer(&mut *tx, &conversation.id, new.text, &model_id, now).await?;
        self.take_lease(&mut *tx, new.owner, &conversation.id, &answer_id)
            .await?;
        Ok(Exchange {
            conversation,
            settings,
            model_id,
            created,
            user_message_id,
            user_text: new.text.to_owned(),
            answer_id,
            earlier,
        })
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
        sqlx::query(
            "UPDATE messages SET replaced_at = $1 WHERE conversation_id = $2 AND replaced_at IS NULL \
             AND position >= (SELECT position FROM messages WHERE id = $3)",
        )
        .bind(now)
        .bind(conversation_id)
        .bind(message_id)
        .execute(&mut *tx)
        .await?;
        messages.truncate(at);
        let mut settings = stored.clone();
        let model_id = remember_settings(&mut *tx, conversation_id, &stored, &mut settings, model).await?;
        let (user_message_id, answer_id) =
            insert_question_and_answer(&mut *tx, conversation_id, text, &model_id, now).await?;
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
        let model_id = remember_settings(&mut *tx, conversation_id, &stored, &mut settings, model).await?;
        sqlx::query(
            "INSERT INTO messages (id, conversation_id, position, role, content, status, model_id, created_at) \
             VALUES ($1, $2, $3, 'assistant', '', 'streaming', $4, $5)",
        )
        .bind(&answer_id)
        .bind(conversation_id)
        .bind(position)
        .bind(&model_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
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

    /// Writes the answer as it ended, and drops its lease. One transaction
    /// (shared with other writes under group commit).
    pub async fn finish_answer(&self, answer: &FinishedAnswer) -> Result<()> {
        crate::telemetry::time_store("finish_answer", async {
            if let Some(committer) = &self.committer {
                return committer.finish(answer).await;
            }
            let mut tx = self.pool.begin().await?;
            self.finish_on(&mut tx, answer).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// [`Store::finish_answer`]'s writes, in `tx`'s transaction.
    pub(super) async fn finish_on(
        &self,
        tx: &mut sqlx::AnyConnection,
        answer: &FinishedAnswer,
    ) -> Result<()> {
        let now = now_ms();
        let usage = answer.usage;
        sqlx::query(
            "UPDATE messages SET content = $1, status = $2, input_tokens = $3, output_tokens = $4, \
             total_tokens = $5, latency_ms = $6, first_token_ms = $7, duration_ms = $8, \
             error_code = $9, error_message = $10, error_retryable = $11, blocks = $13, \
             cache_read_tokens = $14, cache_write_tokens = $15, cost_nanos = $16 WHERE id = $12",
        )
        .bind(&answer.content)
        .bind(answer.status.as_str())
        .bind(usage.map(|u| i64::from(u.input_tokens)))
        .bind(usage.map(|u| i64::from(u.output_tokens)))
        .bind(usage.map(|u| i64::from(u.total_tokens)))
        .bind(usage.map(|u| u.latency_ms as i64))
        .bind(answer.first_token_ms.map(|ms| ms as i64))
        .bind(answer.duration_ms as i64)
        .bind(answer.error.as_ref().map(|e| e.code.as_str()))
        .bind(answer.error.as_ref().map(|e| e.message.clone()))
        .bind(answer.error.as_ref().map(|e| i64::from(e.retryable)))
        .bind(&answer.answer_id)
        .bind(blocks_json(&answer.blocks))
        .bind(usage.map(|u| i64::from(u.cache_read_tokens)))
        .bind(usage.map(|u| i64::from(u.cache_write_tokens)))
        .bind(usage.and_then(|u| u.cost_nanos).map(nanos_to_i64))
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE conversations SET updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(&answer.conversation_id)
            .execute(&mut *tx)
            .await?;
        // Stored is no longer being written: the conversation takes the
        // next answer, on any instance, as soon as `done` is sent.
        if self.leases.is_some() {
            sqlx::query("DELETE FROM answer_leases WHERE answer_id = $1")
                .bind(&answer.answer_id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(usage) = usage {
            sqlx::query(
                "INSERT INTO owner_usage (owner_id, day, input_tokens, output_tokens, answers) \
                 VALUES ($1, $2, $3, $4, 1) ON CONFLICT (owner_id, day) DO UPDATE SET \
                 input_tokens = owner_usage.input_tokens + excluded.input_tokens, \
                 output_tokens = owner_usage.output_tokens + excluded.output_tokens, \
                 answers = owner_usage.answers + 1",
            )
            .bind(&answer.owner)
            .bind(answer.day)
            .bind(i64::from(usage.input_tokens))
            .bind(i64::from(usage.output_tokens))
            .execute(&mut *tx)
            .await?;
            // The same figures by model, for the usage page.
            sqlx::query(
                "INSERT INTO owner_model_usage (owner_id, day, model_id, answers, input_tokens, \
                 output_tokens, cache_read_tokens, cache_write_tokens, cost_nanos) \
                 SELECT $1, $2, COALESCE(model_id, ''), 1, $3, $4, $5, $6, $7 FROM messages WHERE id = $8 \
                 ON CONFLICT (owner_id, day, model_id) DO UPDATE SET \
                 answers = owner_model_usage.answers + 1, \
                 input_tokens = owner_model_usage.input_tokens + excluded.input_tokens, \
                 output_tokens = owner_model_usage.output_tokens + excluded.output_tokens, \
                 cache_read_tokens = owner_model_usage.cache_read_tokens + excluded.cache_read_tokens, \
                 cache_write_tokens = owner_model_usage.cache_write_tokens + excluded.cache_write_tokens, \
                 cost_nanos = owner_model_usage.cost_nanos + excluded.cost_nanos",
            )
            .bind(&answer.owner)
            .bind(answer.day)
            .bind(i64::from(usage.input_tokens))
            .bind(i64::from(usage.output_tokens))
            .bind(i64::from(usage.cache_read_tokens))
            .bind(i64::from(usage.cache_write_tokens))
            .bind(nanos_to_i64(usage.cost_nanos.unwrap_or(0)))
            .bind(&answer.answer_id)
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }

    /// Leases the answer being begun to this instance, in the transaction
    /// that stores it (when several instances share the database). The
    /// lease is one per conversation: another instance's answer still being
    /// written refuses this one (`Busy`); so does the owner's count of
    /// answers being written anywhere reaching the cap.
    async fn take_lease(
        &self,
        conn: &mut sqlx::AnyConnection,
        owner: &str,
        conversation_id: &str,
        answer_id: &str,
    ) -> Result<()> {
        let Some(policy) = &self.leases else {
            return Ok(());
        };
        let leased = sqlx::query("SELECT 1 FROM answer_leases WHERE conversation_id = $1")
            .bind(conversation_id)
            .fetch_all(&mut *conn)
            .await?;
        if !leased.is_empty() {
            return Err(StoreError::new(
                StoreErrorKind::Busy,
                "another instance writes an answer here",
            ));
        }
        if policy.per_owner > 0 {
            // The owner's row, locked: two instances admitting answers of
            // one owner at once count one after the other.
            sqlx::query("SELECT id FROM owners WHERE id = $1 FOR UPDATE")
                .bind(owner)
                .fetch_all(&mut *conn)
                .await?;
            let leased = sqlx::query("SELECT COUNT(*) AS n FROM answer_leases WHERE owner_id = $1")
                .bind(owner)
                .fetch_all(&mut *conn)
                .await?;
            if scalar_i64(leased, "n")? >= policy.per_owner as i64 {
                return Err(StoreError::new(
                    StoreErrorKind::OwnerAtLimit,
                    format!("{} answers being written", policy.per_owner),
                ));
            }
        }
        if policy.per_owner_per_minute > 0 {
            let counted = sqlx::query(&format!(
                "INSERT INTO owner_minutes (owner_id, minute, answers) VALUES ($1, {} / 60000, 1) \
                 ON CONFLICT (owner_id, minute) DO UPDATE SET answers = owner_minutes.answers + 1 \
                 RETURNING answers",
                super::PG_NOW_MS
            ))
            .bind(owner)
            .fetch_all(&mut *conn)
            .await?;
            if scalar_i64(counted, "answers")? > i64::from(policy.per_owner_per_minute) {
                return Err(StoreError::new(
                    StoreErrorKind::RateLimited,
                    "per-owner rate over all instances",
                ));
            }
        }
        // A race with another instance ends in the unique conversation id:
        // a unique violation is `Busy`.
        sqlx::query(&format!(
            "INSERT INTO answer_leases (answer_id, conversation_id, owner_id, instance_id, expires_at) \
             VALUES ($1, $2, $3, $4, {} + $5)",
            super::PG_NOW_MS
        ))
        .bind(answer_id)
        .bind(conversation_id)
        .bind(owner)
        .bind(&policy.instance_id)
        .bind(policy.ttl_ms)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Stores an answer whose instance died (its lease expired) as
    /// `interrupted`, with `rebuilt` (its text and parts from the events the
    /// instance had written) unless the last checkpoint holds more. False
    /// when the answer was no longer `streaming`.
    pub async fn settle_abandoned(
        &self,
        answer_id: &str,
        content: &str,
        blocks: &[AnswerBlock],
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let rebuilt = sqlx::query(
            "UPDATE messages SET content = $1, blocks = $2, status = 'interrupted' \
             WHERE id = $3 AND status = 'streaming' AND LENGTH(content) <= LENGTH($1)",
        )
        .bind(content)
        .bind(blocks_json(blocks))
        .bind(answer_id)
        .execute(&mut *tx)
        .await?;
        let kept =
            sqlx::query("UPDATE messages SET status = 'interrupted' WHERE id = $1 AND status = 'streaming'")
                .bind(answer_id)
                .execute(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(rebuilt.rows_affected() + kept.rows_affected() > 0)
    }

    /// Saves the text (and parts) of `owner`'s answer still being written.
    /// A no-op once the answer is stored (its row is no longer `streaming`).
    /// Shares a transaction with other writes under group commit (in the
    /// owner's lane, so lanes never hold each other's rows): thousands of
    /// answers checkpointing on their own took every pooled connection.
    pub async fn checkpoint(
        &self,
        owner: &str,
        answer_id: &str,
        content: &str,
        blocks: &[AnswerBlock],
    ) -> Result<()> {
        crate::telemetry::time_store("checkpoint", async {
            if let Some(committer) = &self.committer {
                return committer.checkpoint(owner, answer_id, content, blocks).await;
            }
            self.checkpoint_on(&mut *self.pool.acquire().await?, answer_id, content, blocks)
                .await
        })
        .await
    }

    /// [`Store::checkpoint`]'s write, on `conn`.
    pub(super) async fn checkpoint_on(
        &self,
        conn: &mut sqlx::AnyConnection,
        answer_id: &str,
        content: &str,
        blocks: &[AnswerBlock],
    ) -> Result<()> {
        sqlx::query("UPDATE messages SET content = $1, blocks = $2 WHERE id = $3 AND status = 'streaming'")
            .bind(content)
            .bind(blocks_json(blocks))
            .bind(answer_id)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}

/// The `blocks` column: NULL for an answer of text only.
fn blocks_json(blocks: &[AnswerBlock]) -> Option<String> {
    crate::conversations::blocks::has_more_than_text(blocks)
        .then(|| serde_json::to_string(blocks).expect("answer blocks serialise"))
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
/// of `settings`, for the next message; the row is only written when that
/// changes what it `stored`.
pub(super) async fn remember_settings(
    conn: &mut sqlx::AnyConnection,
    conversation_id: &str,
    stored: &ConversationSettings,
    settings: &mut ConversationSettings,
    model: ModelChoice<'_>,
) -> Result<String> {
    let model_id = model.resolve(settings.model_id.as_deref());
    settings.model_id = Some(model_id.clone());
    if settings != stored {
        sqlx::query("UPDATE conversations SET settings = $1 WHERE id = $2")
            .bind(settings_json(settings))
            .bind(conversation_id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(model_id)
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
    // `take_lease` refuses this one).
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

/// Inserts the user's message and an empty answer (status `streaming`)
/// after the conversation's last message; returns their ids.
///
/// One statement, the place included: every statement is a round trip to
/// the database (on SQLite, to its connection's thread), and starting an
/// answer is on the way to its first token.
async fn insert_question_and_answer(
    conn: &mut sqlx::AnyConnection,
    conversation_id: &str,
    text: &str,
    model_id: &str,
    now: i64,
) -> Result<(String, String)> {
    let user_message_id = new_id();
    let answer_id = new_id();
    // The SELECT reads the table it inserts into, so both databases read
    // the last place before either row is written.
    sqlx::query(
        "WITH last AS (SELECT COALESCE(MAX(position), 0) AS n FROM messages \
                       WHERE conversation_id = $2) \
         INSERT INTO messages (id, conversation_id, position, role, content, status, model_id, created_at) \
         SELECT $1, $2, n + 1, 'user', $3, 'complete', NULL, $4 FROM last \
         UNION ALL \
         SELECT $5, $2, n + 2, 'assistant', '', 'streaming', $6, $4 FROM last",
    )
    .bind(&user_message_id)
    .bind(conversation_id)
    .bind(text)
    .bind(now)
    .bind(&answer_id)
    .bind(model_id)
    .execute(&mut *conn)
    .await?;
    Ok((user_message_id, answer_id))
}

/// A cost in a BIGINT column (no bill reaches 9.2 billion units).
fn nanos_to_i64(nanos: u64) -> i64 {
    i64::try_from(nanos).unwrap_or(i64::MAX)
}
