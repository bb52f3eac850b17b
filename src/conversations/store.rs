//! The conversation repository: one implementation over sqlx's `Any` driver,
//! so SQLite (the embedded default) and PostgreSQL run the same SQL.
//!
//! Every read and write names the owner; a conversation of someone else is
//! indistinguishable from a missing one ([`StoreErrorKind::NotFound`]).
//!
//! Durability rules (see `begin_exchange` and `finish_answer`):
//! * the user's message is committed, with an empty answer row in status
//!   `streaming`, before the model is called;
//! * while an answer streams, its text is checkpointed now and then (one
//!   `UPDATE` each, only while the row is still `streaming`, so a late
//!   checkpoint never overwrites the final text);
//! * the answer row is rewritten once more when the answer ends, however it
//!   ends, together with the owner's daily usage;
//! * on start, answer rows still `streaming` (the server died while writing
//!   them) become `interrupted`, keeping their last checkpoint, so no
//!   half-written row survives a crash; while the server runs, the sweeper
//!   does the same for rows nobody is writing ([`Store::sweep_orphans`]);
//! * "an answer is being written in this conversation" is the caller's
//!   knowledge (a live generation), not a row's status: opening a
//!   conversation for a new answer settles rows left `streaming` as
//!   `interrupted`.
//! * an edit never deletes: the messages it replaces are kept, marked
//!   `replaced_at`, and left out of every transcript and history.
//!
//! Two commits per answer, plus one checkpoint per few seconds or KB of text.

use super::{Conversation, ConversationSettings, ConversationSummary, MessageStatus, StoredMessage};
use crate::chat::{ErrorInfo, ModelOption, Role, Usage};
use sqlx::{
    any::{AnyPoolOptions, AnyRow},
    migrate::{Migration, MigrationType, Migrator},
    AnyPool, Row,
};
use std::{borrow::Cow, time::Duration};

/// The storage layer's one error type.
#[derive(Debug, thiserror::Error)]
#[error("{kind:?}: {detail}")]
pub struct StoreError {
    pub kind: StoreErrorKind,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// No such conversation for this owner (missing, deleted, or not theirs).
    NotFound,
    /// An answer is still being written in this conversation.
    Busy,
    /// The database cannot be reached (down, pool exhausted, locked).
    Unavailable,
    /// The database refuses writes.
    ReadOnly,
    /// Retry asked of a conversation whose last message is not an answer.
    NothingToRetry,
    /// An edit named a message that is not one of the conversation's
    /// current user messages.
    MessageNotFound,
    /// Anything else: a bug or a corrupt database.
    Internal,
}

impl StoreError {
    fn new(kind: StoreErrorKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
        }
    }

    fn not_found() -> Self {
        Self::new(StoreErrorKind::NotFound, "no such conversation for this owner")
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        use sqlx::Error as E;
        let kind = match &err {
            E::PoolTimedOut | E::PoolClosed | E::Io(_) | E::Tls(_) | E::WorkerCrashed => {
                StoreErrorKind::Unavailable
            }
            E::Database(db) => {
                let code = db.code().unwrap_or_default();
                let message = db.message().to_ascii_lowercase();
                if code == "25006"
                    || code == "8"
                    || message.contains("readonly")
                    || message.contains("read-only")
                {
                    StoreErrorKind::ReadOnly
                } else if db.is_unique_violation() {
                    // Two sends raced for the same place in one conversation.
                    StoreErrorKind::Busy
                } else if code == "5" || code == "6" || message.contains("database is locked") {
                    StoreErrorKind::Unavailable
                } else if code.starts_with("08")
                    || code.starts_with("57P")
                    || matches!(code.as_ref(), "53300" | "55000" | "3D000")
                {
                    // PostgreSQL: connection failures, shutdown, too many
                    // connections, a database closed to connections or gone.
                    StoreErrorKind::Unavailable
                } else {
                    StoreErrorKind::Internal
                }
            }
            _ => StoreErrorKind::Internal,
        };
        Self::new(kind, err.to_string())
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        match err {
            sqlx::migrate::MigrateError::Execute(e) => e.into(),
            other => Self::new(StoreErrorKind::Internal, other.to_string()),
        }
    }
}

type Result<T> = std::result::Result<T, StoreError>;

/// Which database the store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The repository; cheap to clone (a pool handle).
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

/// What starting an exchange needs.
pub struct NewExchange<'a> {
    pub owner: &'a str,
    /// `None` starts a new conversation.
    pub conversation_id: Option<&'a str>,
    /// Title of a new conversation.
    pub title: &'a str,
    pub text: &'a str,
    pub model: ModelChoice<'a>,
    /// Settings to store with the conversation first, if any (the model is
    /// recorded as `model_id` whatever they say).
    pub settings: Option<&'a ConversationSettings>,
}

/// Which model answers: the one the request asked for (already checked),
/// else the one the conversation last used while it is still offered, else
/// the default.
#[derive(Debug, Clone, Copy)]
pub struct ModelChoice<'a> {
    pub requested: Option<&'a str>,
    pub offered: &'a [ModelOption],
    pub default: &'a str,
}

impl ModelChoice<'_> {
    fn resolve(&self, stored: Option<&str>) -> String {
        let still_offered = stored.filter(|id| self.offered.iter().any(|m| m.id == *id));
        self.requested
            .or(still_offered)
            .unwrap_or(self.default)
            .to_owned()
    }
}

/// A stored user message with its empty answer, and what came before.
#[derive(Debug)]
pub struct Exchange {
    pub conversation: ConversationSummary,
    /// The conversation's settings, as stored after this exchange began.
    pub settings: ConversationSettings,
    /// The model that answers.
    pub model_id: String,
    /// True when this exchange created the conversation.
    pub created: bool,
    pub user_message_id: String,
    /// The user message being answered.
    pub user_text: String,
    pub answer_id: String,
    /// The conversation's messages before this exchange, oldest first.
    pub earlier: Vec<StoredMessage>,
}

/// An answer as it ended.
#[derive(Debug, Clone)]
pub struct FinishedAnswer {
    pub owner: String,
    /// The UTC day (since the epoch) the answer's tokens count against.
    pub day: i64,
    pub answer_id: String,
    pub conversation_id: String,
    pub content: String,
    pub status: MessageStatus,
    pub usage: Option<Usage>,
    pub first_token_ms: Option<u64>,
    pub duration_ms: u64,
    pub error: Option<ErrorInfo>,
}

/// What the limits need to know of an owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnerStanding {
    /// It has stored a message before.
    pub known: bool,
    pub tokens_today: u64,
}

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "conversations",
        include_str!("../../migrations/0001_conversations.sql"),
    ),
    (
        2,
        "settings and edits",
        include_str!("../../migrations/0002_settings_and_edits.sql"),
    ),
    (
        3,
        "usage and checkpoints",
        include_str!("../../migrations/0003_usage_and_checkpoints.sql"),
    ),
];

// Queries read all their rows (`fetch_all`, never `fetch_optional`): an
// SQLite statement left unfinished keeps its connection's read snapshot
// open, and later reads on that pooled connection would see stale data.

const MESSAGE_COLUMNS: &str = "id, role, content, status, model_id, input_tokens, output_tokens, \
     total_tokens, latency_ms, first_token_ms, duration_ms, error_code, error_message, \
     error_retryable, created_at";

impl Store {
    /// Connects to `url` (`sqlite://…` or `postgres://…`) and brings the
    /// schema up to date.
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(StoreError::new(
                StoreErrorKind::Internal,
                format!("unsupported database URL {url:?}: use sqlite://… or postgres://…"),
            ));
        };
        let options = AnyPoolOptions::new()
            .acquire_timeout(Duration::from_secs(5))
            .max_connections(match backend {
                // One writer at a time anyway; a few readers beside it.
                Backend::Sqlite => 4,
                Backend::Postgres => 10,
            });
        let options = match backend {
            Backend::Sqlite => options.after_connect(|conn, _| {
                Box::pin(async move {
                    // WAL lets pages be read while an answer is written;
                    // synchronous=FULL makes every commit durable (fsync).
                    sqlx::query("PRAGMA journal_mode = WAL")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA synchronous = FULL")
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            }),
            Backend::Postgres => options,
        };
        let pool = options.connect(url).await?;
        let store = Self { pool, backend };
        match store.migrate().await {
            // A read-only database can still be read if its schema is current:
            // the app then serves what it has and refuses new messages.
            Err(err) if err.kind == StoreErrorKind::ReadOnly => {
                tracing::warn!(error = %err, "the database is read-only: conversations can be read, not saved");
            }
            other => other?,
        }
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    async fn migrate(&self) -> Result<()> {
        let migrations: Vec<Migration> = MIGRATIONS
            .iter()
            .map(|(version, name, sql)| {
                Migration::new(
                    *version,
                    Cow::Borrowed(*name),
                    MigrationType::Simple,
                    Cow::Borrowed(*sql),
                    false,
                )
            })
            .collect();
        let migrator = Migrator {
            migrations: Cow::Owned(migrations),
            ..Migrator::DEFAULT
        };
        migrator.run(&self.pool).await?;
        Ok(())
    }

    /// Marks answers left `streaming` by a previous run as `interrupted`.
    /// Run once at start, before serving (the store has one server process).
    pub async fn recover_interrupted(&self) -> Result<u64> {
        let result = sqlx::query("UPDATE messages SET status = 'interrupted' WHERE status = 'streaming'")
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected())
    }

    /// The owner's conversations, most recently active first.
    pub async fn list(&self, owner: &str, limit: i64) -> Result<Vec<ConversationSummary>> {
        let rows = sqlx::query(
            "SELECT id, title, created_at, updated_at FROM conversations \
             WHERE owner_id = $1 ORDER BY updated_at DESC, id DESC LIMIT $2",
        )
        .bind(owner)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(summary_from_row).collect()
    }

    /// One conversation with all its messages.
    pub async fn get(&self, owner: &str, id: &str) -> Result<Conversation> {
        let mut conn = self.pool.acquire().await?;
        let (summary, settings) = owned_conversation(&mut conn, owner, id).await?;
        let messages = messages_of(&mut conn, id).await?;
        Ok(Conversation {
            summary,
            settings,
            messages,
        })
    }

    pub async fn rename(&self, owner: &str, id: &str, title: &str) -> Result<ConversationSummary> {
        let updated = sqlx::query("UPDATE conversations SET title = $1 WHERE id = $2 AND owner_id = $3")
            .bind(title)
            .bind(id)
            .bind(owner)
            .execute(&self.pool)
            .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::not_found());
        }
        Ok(owned_conversation(&mut *self.pool.acquire().await?, owner, id)
            .await?
            .0)
    }

    /// Replaces the conversation's settings.
    pub async fn save_settings(&self, owner: &str, id: &str, settings: &ConversationSettings) -> Result<()> {
        let updated = sqlx::query("UPDATE conversations SET settings = $1 WHERE id = $2 AND owner_id = $3")
            .bind(settings_json(settings))
            .bind(id)
            .bind(owner)
            .execute(&self.pool)
            .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::not_found());
        }
        Ok(())
    }

    /// Deletes a conversation and its messages.
    pub async fn delete(&self, owner: &str, id: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        owned_conversation(&mut tx, owner, id).await?;
        // Explicit rather than relying on ON DELETE CASCADE, which SQLite
        // only honours when foreign keys are switched on.
        sqlx::query("DELETE FROM messages WHERE conversation_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM conversations WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Commits the user's message and an empty answer (status `streaming`)
    /// in one transaction, creating the conversation when asked to.
    pub async fn begin_exchange(&self, new: NewExchange<'_>) -> Result<Exchange> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        // A write first, so SQLite takes its write lock now rather than
        // failing to upgrade a read lock later in the transaction.
        sqlx::query("INSERT INTO owners (id, created_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING")
            .bind(new.owner)
            .bind(now)
            .execute(&mut *tx)
            .await?;

        let (conversation, created, earlier, settings, model_id) = match new.conversation_id {
            Some(id) => {
                let (summary, stored, earlier) = open_for_answer(&mut tx, new.owner, id, now).await?;
                let mut settings = new.settings.cloned().unwrap_or_else(|| stored.clone());
                let model_id = remember_settings(&mut tx, id, &stored, &mut settings, new.model).await?;
                (summary, false, earlier, settings, model_id)
            }
            None => {
                let summary = ConversationSummary {
                    id: new_id(),
                    title: new.title.to_owned(),
                    created_at: now,
                    updated_at: now,
                };
                let mut settings = new.settings.cloned().unwrap_or_default();
                let model_id = new.model.resolve(settings.model_id.as_deref());
                settings.model_id = Some(model_id.clone());
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
            insert_question_and_answer(&mut tx, &conversation.id, new.text, &model_id, now).await?;
        tx.commit().await?;
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
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let (conversation, stored, mut messages) =
            open_for_answer(&mut tx, owner, conversation_id, now).await?;
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
        let model_id = remember_settings(&mut tx, conversation_id, &stored, &mut settings, model).await?;
        let (user_message_id, answer_id) =
            insert_question_and_answer(&mut tx, conversation_id, text, &model_id, now).await?;
        tx.commit().await?;
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
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let (conversation, stored, mut messages) =
            open_for_answer(&mut tx, owner, conversation_id, now).await?;
        match messages.last() {
            Some(last) if last.role == Role::Assistant => {}
            _ => {
                return Err(StoreError::new(
                    StoreErrorKind::NothingToRetry,
                    "the conversation does not end with an answer",
                ))
            }
        }
        let position = next_position(&mut tx, conversation_id).await?;
        let answer_id = new_id();
        let mut settings = stored.clone();
        let model_id = remember_settings(&mut tx, conversation_id, &stored, &mut settings, model).await?;
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
        tx.commit().await?;
        // The user message being answered, and what came before it.
        let user_at = messages
            .iter()
            .rposition(|m| m.role == Role::User)
            .ok_or_else(|| StoreError::new(StoreErrorKind::NothingToRetry, "no user message to answer"))?;
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

    /// The status of one of the owner's stored messages.
    pub async fn message_status(&self, owner: &str, message_id: &str) -> Result<MessageStatus> {
        let row = sqlx::query(
            "SELECT m.status FROM messages m JOIN conversations c ON c.id = m.conversation_id \
             WHERE m.id = $1 AND c.owner_id = $2",
        )
        .bind(message_id)
        .bind(owner)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .next()
        .ok_or_else(StoreError::not_found)?;
        let status: String = row.try_get(0)?;
        MessageStatus::parse(&status)
            .ok_or_else(|| StoreError::new(StoreErrorKind::Internal, format!("bad status {status:?}")))
    }

    /// Writes the answer as it ended. One transaction.
    pub async fn finish_answer(&self, answer: &FinishedAnswer) -> Result<()> {
        let now = now_ms();
        let usage = answer.usage;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE messages SET content = $1, status = $2, input_tokens = $3, output_tokens = $4, \
             total_tokens = $5, latency_ms = $6, first_token_ms = $7, duration_ms = $8, \
             error_code = $9, error_message = $10, error_retryable = $11 WHERE id = $12",
        )
        .bind(&answer.content)
        .bind(answer.status.as_str())
        .bind(usage.map(|u| i64::from(u.input_tokens)))
        .bind(usage.map(|u| i64::from(u.output_tokens)))
        .bind(usage.map(|u| i64::from(u.total_tokens)))
        .bind(usage.map(|u| u.latency_ms as i64))
        .bind(answer.first_token_ms.map(|ms| ms as i64))
        .bind(answer.duration_ms as i64)
        .bind(answer.error.as_ref().map(|e| e.code.clone()))
        .bind(answer.error.as_ref().map(|e| e.message.clone()))
        .bind(answer.error.as_ref().map(|e| i64::from(e.retryable)))
        .bind(&answer.answer_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE conversations SET updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(&answer.conversation_id)
            .execute(&mut *tx)
            .await?;
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
        }
        tx.commit().await?;
        Ok(())
    }

    /// Saves the text of an answer still being written. A no-op once the
    /// answer is stored (its row is no longer `streaming`).
    pub async fn checkpoint(&self, answer_id: &str, content: &str) -> Result<()> {
        sqlx::query("UPDATE messages SET content = $1 WHERE id = $2 AND status = 'streaming'")
            .bind(content)
            .bind(answer_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Whether the owner has stored anything yet, and the tokens (input +
    /// output) it used on `day` (UTC days since the epoch), as stored with
    /// its answers. One read.
    pub async fn owner_standing(&self, owner: &str, day: i64) -> Result<OwnerStanding> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM owners WHERE id = $1) AS known, \
             (SELECT CAST(COALESCE(SUM(input_tokens + output_tokens), 0) AS BIGINT) FROM owner_usage \
              WHERE owner_id = $1 AND day = $2) AS tokens",
        )
        .bind(owner)
        .bind(day)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::new(StoreErrorKind::Internal, "no row from a scalar query"))?;
        Ok(OwnerStanding {
            known: row.try_get::<i64, _>("known")? > 0,
            tokens_today: row.try_get::<i64, _>("tokens")?.max(0) as u64,
        })
    }

    /// Marks answers left `streaming` that nobody writes (`is_live` says
    /// which are being written) and that began before `started_before` (ms)
    /// as `interrupted`, keeping their last checkpoint. Returns how many.
    pub async fn sweep_orphans(&self, is_live: impl Fn(&str) -> bool, started_before: i64) -> Result<u64> {
        let rows = sqlx::query("SELECT id FROM messages WHERE status = 'streaming' AND created_at < $1")
            .bind(started_before)
            .fetch_all(&self.pool)
            .await?;
        let mut swept = 0;
        for row in rows {
            let id: String = row.try_get("id")?;
            if is_live(&id) {
                continue;
            }
            let done = sqlx::query(
                "UPDATE messages SET status = 'interrupted' WHERE id = $1 AND status = 'streaming'",
            )
            .bind(&id)
            .execute(&self.pool)
            .await?;
            swept += done.rows_affected();
        }
        Ok(swept)
    }
}

/// The owner's conversation `id` and its settings; someone else's is as
/// missing as none.
async fn owned_conversation(
    conn: &mut sqlx::AnyConnection,
    owner: &str,
    id: &str,
) -> Result<(ConversationSummary, ConversationSettings)> {
    let row = sqlx::query(
        "SELECT id, title, created_at, updated_at, settings FROM conversations WHERE id = $1 AND owner_id = $2",
    )
    .bind(id)
    .bind(owner)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .next()
    .ok_or_else(StoreError::not_found)?;
    let settings = match row.try_get::<Option<String>, _>(4)? {
        // Written by this store only, so unreadable JSON is corruption;
        // the defaults are the safe reading of it.
        Some(json) => serde_json::from_str(&json).unwrap_or_else(|err| {
            tracing::warn!(conversation = id, %err, "unreadable conversation settings; using defaults");
            ConversationSettings::default()
        }),
        None => ConversationSettings::default(),
    };
    Ok((summary_from_row(&row)?, settings))
}

/// Marks the owner's conversation as active now: the write that starts a
/// transaction (see `begin_exchange`), and the ownership check.
async fn touch_owned(conn: &mut sqlx::AnyConnection, owner: &str, id: &str, now: i64) -> Result<()> {
    let touched = sqlx::query("UPDATE conversations SET updated_at = $1 WHERE id = $2 AND owner_id = $3")
        .bind(now)
        .bind(id)
        .bind(owner)
        .execute(&mut *conn)
        .await?;
    if touched.rows_affected() == 0 {
        return Err(StoreError::not_found());
    }
    Ok(())
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
    touch_owned(&mut *conn, owner, id, now).await?;
    let (summary, settings) = owned_conversation(&mut *conn, owner, id).await?;
    let mut messages = messages_of(&mut *conn, id).await?;
    settle_orphans(&mut *conn, id, &mut messages).await?;
    Ok((summary, settings, messages))
}

/// The model that answers now. The conversation remembers it, with the rest
/// of `settings`, for the next message; the row is only written when that
/// changes what it `stored`.
async fn remember_settings(
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
    sqlx::query(
        "UPDATE messages SET status = 'interrupted' WHERE conversation_id = $1 AND status = 'streaming'",
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
    let row = sqlx::query("SELECT COALESCE(MAX(position), 0) FROM messages WHERE conversation_id = $1")
        .bind(conversation_id)
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::new(StoreErrorKind::Internal, "MAX returned no row"))?;
    Ok(row.try_get::<i64, _>(0)? + 1)
}

/// Inserts the user's message and an empty answer (status `streaming`)
/// after the conversation's last message; returns their ids.
async fn insert_question_and_answer(
    conn: &mut sqlx::AnyConnection,
    conversation_id: &str,
    text: &str,
    model_id: &str,
    now: i64,
) -> Result<(String, String)> {
    let position = next_position(&mut *conn, conversation_id).await?;
    let user_message_id = new_id();
    let answer_id = new_id();
    for (id, position, role, content, status, model) in [
        (&user_message_id, position, "user", text, "complete", None),
        (
            &answer_id,
            position + 1,
            "assistant",
            "",
            "streaming",
            Some(model_id),
        ),
    ] {
        sqlx::query(
            "INSERT INTO messages (id, conversation_id, position, role, content, status, model_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(id)
        .bind(conversation_id)
        .bind(position)
        .bind(role)
        .bind(content)
        .bind(status)
        .bind(model)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok((user_message_id, answer_id))
}

fn settings_json(settings: &ConversationSettings) -> String {
    serde_json::to_string(settings).expect("settings serialise")
}

async fn messages_of(conn: &mut sqlx::AnyConnection, conversation_id: &str) -> Result<Vec<StoredMessage>> {
    let rows = sqlx::query(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 AND replaced_at IS NULL \
         ORDER BY position"
    ))
    .bind(conversation_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(message_from_row).collect()
}

fn summary_from_row(row: &AnyRow) -> Result<ConversationSummary> {
    Ok(ConversationSummary {
        id: row.try_get(0)?,
        title: row.try_get(1)?,
        created_at: row.try_get(2)?,
        updated_at: row.try_get(3)?,
    })
}

fn message_from_row(row: &AnyRow) -> Result<StoredMessage> {
    let corrupt =
        |what: &str, value: &str| StoreError::new(StoreErrorKind::Internal, format!("bad {what} {value:?}"));
    let role: String = row.try_get(1)?;
    let status: String = row.try_get(3)?;
    let count =
        |i: usize| -> Result<Option<u64>> { Ok(row.try_get::<Option<i64>, _>(i)?.map(|v| v.max(0) as u64)) };
    let tokens =
        |i: usize| -> Result<Option<u32>> { Ok(count(i)?.map(|v| v.min(u64::from(u32::MAX)) as u32)) };
    let usage = match (tokens(5)?, tokens(6)?) {
        (Some(input_tokens), Some(output_tokens)) => Some(Usage {
            input_tokens,
            output_tokens,
            total_tokens: tokens(7)?.unwrap_or(input_tokens + output_tokens),
            latency_ms: count(8)?.unwrap_or_default(),
        }),
        _ => None,
    };
    let error = match (
        row.try_get::<Option<String>, _>(11)?,
        row.try_get::<Option<String>, _>(12)?,
    ) {
        (Some(code), Some(message)) => Some(ErrorInfo {
            code,
            message,
            retryable: row.try_get::<Option<i64>, _>(13)?.unwrap_or(0) != 0,
        }),
        _ => None,
    };
    Ok(StoredMessage {
        id: row.try_get(0)?,
        role: match role.as_str() {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            other => return Err(corrupt("role", other)),
        },
        content: row.try_get(2)?,
        status: MessageStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        model_id: row.try_get(4)?,
        usage,
        first_token_ms: count(9)?,
        duration_ms: count(10)?,
        error,
        created_at: row.try_get(14)?,
    })
}

/// A new unguessable, time-ordered id (UUIDv7: 74 random bits).
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}
