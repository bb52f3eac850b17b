-- Portable between SQLite and PostgreSQL: TEXT ids (UUIDv7), BIGINT times in
-- milliseconds since the Unix epoch, status as text.

CREATE TABLE owners (
    id          TEXT PRIMARY KEY,
    created_at  BIGINT NOT NULL
);

CREATE TABLE conversations (
    id          TEXT PRIMARY KEY,
    owner_id    TEXT NOT NULL REFERENCES owners (id) ON DELETE CASCADE,
    title       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE INDEX conversations_by_owner ON conversations (owner_id, updated_at);

CREATE TABLE messages (
    id               TEXT PRIMARY KEY,
    conversation_id  TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    -- 1, 2, 3, ... within the conversation; unique, so two concurrent sends
    -- to one conversation cannot both take the same place.
    position         BIGINT NOT NULL,
    role             TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content          TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('streaming', 'complete', 'stopped', 'error', 'interrupted')),
    model_id         TEXT,
    input_tokens     BIGINT,
    output_tokens    BIGINT,
    total_tokens     BIGINT,
    latency_ms       BIGINT,
    first_token_ms   BIGINT,
    duration_ms      BIGINT,
    error_code       TEXT,
    error_message    TEXT,
    error_retryable  BIGINT,
    created_at       BIGINT NOT NULL,
    UNIQUE (conversation_id, position)
);

-- Recovery after a crash looks for answers left half-written.
CREATE INDEX messages_by_status ON messages (status);
