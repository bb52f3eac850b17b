//! Rows to values, and the reads the other parts share.

use super::{Result, StoreError, StoreErrorKind, MESSAGE_COLUMNS};
use crate::{
    conversations::{ConversationSettings, ConversationSummary, MessageStatus, StoredMessage},
    conversations::{Role, Usage},
    errors::ErrorCode,
    errors::ErrorInfo,
};
use sqlx::{any::AnyRow, Row};

/// The owner's conversation `id` and its settings; someone else's is as
/// missing as none.
pub(super) async fn owned_conversation(
    conn: &mut sqlx::AnyConnection,
    owner: &str,
    id: &str,
) -> Result<(ConversationSummary, ConversationSettings)> {
    let rows = sqlx::query(&format!(
        "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = $1 AND owner_id = $2"
    ))
    .bind(id)
    .bind(owner)
    .fetch_all(&mut *conn)
    .await?;
    conversation_from_rows(&rows)
}

/// What [`conversation_from_rows`] reads.
pub(super) const CONVERSATION_COLUMNS: &str = "id, title, created_at, updated_at, settings";

/// The one conversation in `rows` ([`CONVERSATION_COLUMNS`]) with its
/// settings; none is not found.
pub(super) fn conversation_from_rows(rows: &[AnyRow]) -> Result<(ConversationSummary, ConversationSettings)> {
    let row = rows.first().ok_or_else(StoreError::not_found)?;
    let settings = match row.try_get::<Option<String>, _>("settings")? {
        // Written by this store only, so unreadable JSON is corruption;
        // the defaults are the safe reading of it.
        Some(json) => serde_json::from_str(&json).unwrap_or_else(|err| {
            let id = row.try_get::<String, _>("id").unwrap_or_default();
            tracing::warn!(conversation = id, %err, "unreadable conversation settings; using defaults");
            ConversationSettings::default()
        }),
        None => ConversationSettings::default(),
    };
    Ok((summary_from_row(row)?, settings))
}

pub(super) async fn messages_of(
    conn: &mut sqlx::AnyConnection,
    conversation_id: &str,
) -> Result<Vec<StoredMessage>> {
    let rows = sqlx::query(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 AND replaced_at IS NULL \
         ORDER BY position"
    ))
    .bind(conversation_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(message_from_row).collect()
}

/// The `column` of the one row a scalar query returns (read with
/// `fetch_all`, as every query here is).
pub(super) fn scalar_i64(rows: Vec<AnyRow>, column: &str) -> Result<i64> {
    let row = rows
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::new(StoreErrorKind::Internal, "no row from a scalar query"))?;
    Ok(row.try_get::<i64, _>(column)?)
}

pub(super) fn summary_from_row(row: &AnyRow) -> Result<ConversationSummary> {
    Ok(ConversationSummary {
        id: row.try_get("id")?,
        title: row.try_get("title")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub(super) fn message_from_row(row: &AnyRow) -> Result<StoredMessage> {
    let corrupt =
        |what: &str, value: &str| StoreError::new(StoreErrorKind::Internal, format!("bad {what} {value:?}"));
    let role: String = row.try_get("role")?;
    let status: String = row.try_get("status")?;
    let count = |column: &str| -> Result<Option<u64>> {
        Ok(row.try_get::<Option<i64>, _>(column)?.map(|v| v.max(0) as u64))
    };
    let tokens = |column: &str| -> Result<Option<u32>> {
        Ok(count(column)?.map(|v| v.min(u64::from(u32::MAX)) as u32))
    };
    let usage = match (tokens("input_tokens")?, tokens("output_tokens")?) {
        (Some(input_tokens), Some(output_tokens)) => Some(Usage {
            input_tokens,
            output_tokens,
            total_tokens: tokens("total_tokens")?.unwrap_or(input_tokens + output_tokens),
            latency_ms: count("latency_ms")?.unwrap_or_default(),
            cache_read_tokens: tokens("cache_read_tokens")?.unwrap_or_default(),
            cache_write_tokens: tokens("cache_write_tokens")?.unwrap_or_default(),
            cost_nanos: count("cost_nanos")?,
        }),
        _ => None,
    };
    let error = match (
        row.try_get::<Option<String>, _>("error_code")?,
        row.try_get::<Option<String>, _>("error_message")?,
    ) {
        (Some(code), Some(message)) => Some(ErrorInfo {
            code: ErrorCode::parse(&code),
            message,
            retryable: row.try_get::<Option<i64>, _>("error_retryable")?.unwrap_or(0) != 0,
        }),
        _ => None,
    };
    Ok(StoredMessage {
        id: row.try_get("id")?,
        role: match role.as_str() {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            other => return Err(corrupt("role", other)),
        },
        content: row.try_get("content")?,
        status: MessageStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        model_id: row.try_get("model_id")?,
        usage,
        first_token_ms: count("first_token_ms")?,
        duration_ms: count("duration_ms")?,
        error,
        created_at: row.try_get("created_at")?,
        blocks: match row.try_get::<Option<String>, _>("blocks")? {
            Some(json) => serde_json::from_str(&json).map_err(|_| corrupt("blocks", "(not JSON)"))?,
            None => Vec::new(),
        },
        text_left_out: false,
    })
}
