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
//! Two commits per answer, plus one checkpoint per few seconds or KB of text;
//! under a burst the commits of many answers are one (`group_commit`).
//!
//! The parts: `error` (the one error type), `schema` (migrations),
//! `exchange` (the transactions that start an answer), `answer_end`
//! (checkpoints and the final save), `leases` (one answer's lease),
//! `group_commit` (writes that come at once share a transaction),
//! `new_conversations` and `next_messages` (many first and next messages
//! written as sets), `finishes` (many answers' ends and checkpoints as
//! sets), `set_caps` (a set's per-owner caps), `script` (statements sent
//! as one: one hop to a SQLite connection's thread), `pages` (a page of a
//! long conversation), `rows` (row mapping and shared reads); this file
//! holds the types and the plain reads and writes.

mod answer_end;
mod error;
mod exchange;
mod finishes;
mod group_commit;
mod leases;
mod new_conversations;
mod next_messages;
mod pages;
mod rows;
mod schema;
mod script;
mod set_caps;

pub use error::{StoreError, StoreErrorKind};
pub use group_commit::GroupCommitFigures;

use super::{Conversation, ConversationSettings, ConversationSummary, MessageStatus, StoredMessage};
use crate::{
    conversations::{usage::UsageTotals, ModelOption, Usage, UsageReport},
    errors::ErrorInfo,
};
use rows::{messages_of, owned_conversation, summary_from_row};
use sqlx::{
    any::{AnyPoolOptions, AnyRow},
    AnyPool, Row,
};
use std::time::Duration;

type Result<T> = std::result::Result<T, StoreError>;

/// Which database the store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgresql",
        }
    }
}

/// The repository; cheap to clone (a pool handle).
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Set when several instances may share the database (PostgreSQL):
    /// every answer begun takes a lease (see `leases`).
    leases: Option<std::sync::Arc<LeasePolicy>>,
    /// Set when the writes that start and end answers share transactions.
    committer: Option<group_commit::Committer>,
}

/// How answers are leased to the instance writing them.
#[derive(Debug, Clone)]
pub struct LeasePolicy {
    /// This instance.
    pub instance_id: String,
    /// How long a lease lasts unless renewed.
    pub ttl_ms: i64,
    /// Answers an owner may have written at once over all instances; 0 is
    /// no cap.
    pub per_owner: usize,
    /// Answers an owner may begin per minute over all instances; 0 is no
    /// cap.
    pub per_owner_per_minute: u32,
}

/// The database's clock in milliseconds, in PostgreSQL's SQL: instances on
/// different machines agree on lease times even when their clocks do not.
pub const PG_NOW_MS: &str = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT";

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

/// An edit and resend ([`Store::begin_edit`]): the user message
/// `message_id` rewritten as `text`.
#[derive(Debug, Clone, Copy)]
pub struct Edit<'a> {
    pub owner: &'a str,
    pub conversation_id: &'a str,
    pub message_id: &'a str,
    pub text: &'a str,
    pub model: ModelChoice<'a>,
}

/// A new answer to the last user message ([`Store::begin_regeneration`]).
#[derive(Debug, Clone, Copy)]
pub struct Regeneration<'a> {
    pub owner: &'a str,
    pub conversation_id: &'a str,
    pub model: ModelChoice<'a>,
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
    /// The answer's parts when it has more than text; empty otherwise.
    pub blocks: Vec<crate::conversations::AnswerBlock>,
    pub status: MessageStatus,
    pub usage: Option<Usage>,
    pub first_token_ms: Option<u64>,
    pub duration_ms: u64,
    pub error: Option<ErrorInfo>,
}

/// A stored message found by [`Store::search_messages`].
#[derive(Debug, Clone)]
pub struct SearchHit {
    pub conversation_id: String,
    pub title: String,
    pub from_user: bool,
    pub content: String,
    pub created_at: i64,
}

/// What the limits need to know of an owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnerStanding {
    /// It has stored a message before.
    pub known: bool,
    pub tokens_today: u64,
}

// Queries read all their rows (`fetch_all`, never `fetch_optional`): an
// SQLite statement left unfinished keeps its connection's read snapshot
// open, and later reads on that pooled connection would see stale data.

const MESSAGE_COLUMNS: &str = "id, role, content, status, model_id, input_tokens, output_tokens, \
     total_tokens, latency_ms, first_token_ms, duration_ms, error_code, error_message, \
     error_retryable, created_at, blocks, cache_read_tokens, cache_write_tokens, cost_nanos";

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
                Backend::Postgres => 20,
            });
        let options = match backend {
            // An embedded database's connection cannot have gone away: no
            // ping (a round trip to its thread) before every transaction.
            Backend::Sqlite => options.test_before_acquire(false).after_connect(|conn, _| {
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
        let store = Self {
            pool,
            backend,
            leases: None,
            committer: None,
        };
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

    /// The writes that start and end answers, when they come at once,
    /// share one transaction (see `group_commit`). Call after
    /// [`Store::with_leases`]: the committing tasks keep this store as it
    /// is now.
    pub fn with_group_commit(mut self) -> Self {
        let lanes = match self.backend {
            // One writer at a time anyway.
            Backend::Sqlite => 1,
            // Connections commit in parallel; each batch still shares one.
            Backend::Postgres => 8,
        };
        self.committer = Some(group_commit::Committer::start(self.clone(), lanes));
        self
    }

    /// Under group commit: the transactions committed so far and the writes
    /// they carried (for figures).
    pub fn group_commit_figures(&self) -> Option<GroupCommitFigures> {
        self.committer.as_ref().map(|c| c.figures())
    }

    /// This store leases every answer it begins (several instances share
    /// the database).
    pub fn with_leases(mut self, policy: LeasePolicy) -> Self {
        self.leases = Some(std::sync::Arc::new(policy));
        self
    }

    /// Marks answers left `streaming` by a previous run as `interrupted`.
    /// Run once at start, before serving. Answers under a lease belong to
    /// a running instance (or to a dead one, whose leases other instances
    /// take over when they expire): they are not touched.
    pub async fn recover_interrupted(&self) -> Result<u64> {
        let result = sqlx::query(
            "UPDATE messages SET status = 'interrupted' WHERE status = 'streaming' \
             AND id NOT IN (SELECT answer_id FROM answer_leases)",
        )
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected())
    }

    /// The owner's conversations, most recently active first.
    pub async fn list(&self, owner: &str, limit: i64) -> Result<Vec<ConversationSummary>> {
        crate::telemetry::time_store("list", async {
            let rows = sqlx::query(
                "SELECT id, title, created_at, updated_at FROM conversations \
                 WHERE owner_id = $1 ORDER BY updated_at DESC, id DESC LIMIT $2",
            )
            .bind(owner)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(summary_from_row).collect()
        })
        .await
    }

    /// One conversation with all its messages.
    pub async fn get(&self, owner: &str, id: &str) -> Result<Conversation> {
        crate::telemetry::time_store("get", async {
            let mut conn = self.pool.acquire().await?;
            let (summary, settings) = owned_conversation(&mut conn, owner, id).await?;
            let messages = messages_of(&mut conn, id).await?;
            Ok(Conversation {
                summary,
                settings,
                messages,
                earlier: Default::default(),
            })
        })
        .await
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
        // Writes only, each checking the owner: a SQLite transaction that
        // reads first cannot take the write lock once another commit has
        // landed since its read, and fails at once instead of waiting (a
        // delete beside answers being written was refused as "not
        // answering"). Messages explicitly rather than by ON DELETE CASCADE,
        // which SQLite only honours when foreign keys are switched on.
        sqlx::query(
            "DELETE FROM messages WHERE conversation_id = $1 \
             AND EXISTS (SELECT 1 FROM conversations WHERE id = $1 AND owner_id = $2)",
        )
        .bind(id)
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        let deleted = sqlx::query("DELETE FROM conversations WHERE id = $1 AND owner_id = $2")
            .bind(id)
            .bind(owner)
            .execute(&mut *tx)
            .await?;
        if deleted.rows_affected() == 0 {
            // Nothing was deleted; the transaction is rolled back as it drops.
            return Err(StoreError::not_found());
        }
        tx.commit().await?;
        Ok(())
    }

    /// The owner's messages (never another owner's) whose text contains
    /// `query` (case-insensitive for ASCII), newest first, outside the
    /// conversation `except`. Replaced turns are left out, as they are
    /// everywhere else.
    pub async fn search_messages(
        &self,
        owner: &str,
        except: &str,
        query: &str,
        limit: i64,
    ) -> Result<Vec<SearchHit>> {
        let escaped: String = query
            .to_lowercase()
            .chars()
            .flat_map(|c| match c {
                '%' | '_' | '\\' => vec!['\\', c],
                c => vec![c],
            })
            .collect();
        let rows = sqlx::query(
            "SELECT m.conversation_id, c.title, m.role, m.content, m.created_at \
             FROM messages m JOIN conversations c ON c.id = m.conversation_id \
             WHERE c.owner_id = $1 AND c.id <> $4 AND m.replaced_at IS NULL \
             AND LOWER(m.content) LIKE $2 ESCAPE '\\' \
             ORDER BY m.created_at DESC, m.id DESC LIMIT $3",
        )
        .bind(owner)
        .bind(format!("%{escaped}%"))
        .bind(limit)
        .bind(except)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(SearchHit {
                    conversation_id: row.try_get("conversation_id")?,
                    title: row.try_get("title")?,
                    from_user: row.try_get::<String, _>("role")? == "user",
                    content: row.try_get("content")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
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
        let status: String = row.try_get("status")?;
        MessageStatus::parse(&status)
            .ok_or_else(|| StoreError::new(StoreErrorKind::Internal, format!("bad status {status:?}")))
    }

    /// What the owner used from `first_day` to `today` (UTC days since the
    /// epoch): the totals of `today`, of the whole range, and the range by
    /// model (most expensive first).
    pub async fn usage_report(&self, owner: &str, first_day: i64, today: i64) -> Result<UsageReport> {
        // Sums as BIGINT: PostgreSQL's SUM of a BIGINT is NUMERIC.
        let sums = [
            "answers",
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "cost_nanos",
        ]
        .map(|column| format!("CAST(COALESCE(SUM({column}), 0) AS BIGINT) AS {column}"))
        .join(", ");
        let by_model = sqlx::query(&format!(
            "SELECT model_id, {sums} FROM owner_model_usage WHERE owner_id = $1 AND day >= $2 AND day <= $3 \
             GROUP BY model_id ORDER BY cost_nanos DESC, model_id"
        ))
        .bind(owner)
        .bind(first_day)
        .bind(today)
        .fetch_all(&self.pool)
        .await?;
        let today_rows = sqlx::query(&format!(
            "SELECT {sums} FROM owner_model_usage WHERE owner_id = $1 AND day = $2"
        ))
        .bind(owner)
        .bind(today)
        .fetch_all(&self.pool)
        .await?;
        let mut report = UsageReport::default();
        for row in &by_model {
            let totals = usage_totals_from_row(row)?;
            add_totals(&mut report.month, &totals);
            report.by_model.push(crate::conversations::usage::ModelUsage {
                model_id: row.try_get("model_id")?,
                totals,
            });
        }
        if let Some(row) = today_rows.first() {
            report.today = usage_totals_from_row(row)?;
        }
        Ok(report)
    }

    /// Whether the owner has stored anything yet, and the tokens (input +
    /// output) it used on `day` (UTC days since the epoch), as stored with
    /// its answers. One read.
    pub async fn owner_standing(&self, owner: &str, day: i64) -> Result<OwnerStanding> {
        crate::telemetry::time_store("owner_standing", async {
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
        })
        .await
    }

    /// Marks answers left `streaming` that nobody writes (`is_live` says
    /// which are being written) and that began before `started_before` (ms)
    /// as `interrupted`, keeping their last checkpoint. Returns how many.
    pub async fn sweep_orphans(&self, is_live: impl Fn(&str) -> bool, started_before: i64) -> Result<u64> {
        let rows = sqlx::query(
            "SELECT id FROM messages WHERE status = 'streaming' AND created_at < $1 \
             AND id NOT IN (SELECT answer_id FROM answer_leases)",
        )
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

fn settings_json(settings: &ConversationSettings) -> String {
    serde_json::to_string(settings).expect("settings serialise")
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

fn usage_totals_from_row(row: &AnyRow) -> Result<UsageTotals> {
    let get = |column: &str| -> Result<u64> { Ok(row.try_get::<i64, _>(column)?.max(0) as u64) };
    Ok(UsageTotals {
        answers: get("answers")?,
        input_tokens: get("input_tokens")?,
        output_tokens: get("output_tokens")?,
        cache_read_tokens: get("cache_read_tokens")?,
        cache_write_tokens: get("cache_write_tokens")?,
        cost_nanos: get("cost_nanos")?,
    })
}

fn add_totals(sum: &mut UsageTotals, part: &UsageTotals) {
    sum.answers += part.answers;
    sum.input_tokens += part.input_tokens;
    sum.output_tokens += part.output_tokens;
    sum.cache_read_tokens += part.cache_read_tokens;
    sum.cache_write_tokens += part.cache_write_tokens;
    sum.cost_nanos += part.cost_nanos;
}
