//! The storage layer's one error type, and how database errors map to it.

use crate::errors::{ErrorCode, ErrorInfo};

/// The storage layer's one error type.
#[derive(Debug, Clone, thiserror::Error)]
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
    /// The owner has as many answers being written (on any instance) as
    /// the limits allow.
    OwnerAtLimit,
    /// The owner began as many answers this minute (on all instances) as
    /// the limits allow.
    RateLimited,
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
    pub(super) fn new(kind: StoreErrorKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
        }
    }

    pub(super) fn not_found() -> Self {
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
                } else if code == "5"
                    || code == "6"
                    || message.contains("database is locked")
                    // PostgreSQL: a deadlock or serialization failure between
                    // concurrent transactions; the same write succeeds again.
                    || code == "40P01"
                    || code == "40001"
                {
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

/// The code and sentence a storage failure is shown with.
impl From<StoreError> for ErrorInfo {
    fn from(err: StoreError) -> Self {
        let (code, message, retryable) = match err.kind {
            StoreErrorKind::NotFound => (
                ErrorCode::ConversationNotFound,
                "This conversation does not exist or was deleted. Pick another one from the list or start a new chat.",
                false,
            ),
            StoreErrorKind::Busy => (
                ErrorCode::ConversationBusy,
                "An answer is still being written in this conversation. Wait for it to finish, or stop it, then send again.",
                true,
            ),
            StoreErrorKind::OwnerAtLimit => (
                ErrorCode::TooManyAnswers,
                "You already have as many answers being written as this server allows. Wait for one to finish, or stop one, then send again.",
                true,
            ),
            StoreErrorKind::RateLimited => (
                ErrorCode::RateLimited,
                "You are sending messages faster than this server allows. Wait a moment, then send again.",
                true,
            ),
            StoreErrorKind::NothingToRetry => (
                ErrorCode::NothingToRetry,
                "There is no answer to retry in this conversation: send a message instead.",
                false,
            ),
            StoreErrorKind::MessageNotFound => (
                ErrorCode::MessageNotFound,
                "That message is no longer in this conversation (it may have been edited in another tab). Reload the conversation and try again.",
                false,
            ),
            StoreErrorKind::Unavailable => (
                ErrorCode::StorageUnavailable,
                "Conversations cannot be saved or loaded right now because the database is not answering. Try again in a moment.",
                true,
            ),
            StoreErrorKind::ReadOnly => (
                ErrorCode::StorageReadOnly,
                "Conversations can be read but not saved right now: the database is read-only. Nothing was sent to the model.",
                false,
            ),
            StoreErrorKind::Internal => (
                ErrorCode::StorageError,
                "Something went wrong while saving or loading this conversation. Try again; if it keeps happening, tell the administrator.",
                true,
            ),
        };
        if err.kind != StoreErrorKind::NotFound {
            tracing::warn!(error = %err, "storage error");
        }
        ErrorInfo::new(code, message, retryable)
    }
}
