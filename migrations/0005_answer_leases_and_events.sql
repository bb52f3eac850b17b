-- Several instances on one PostgreSQL (SQLite has one process: these tables
-- stay empty there).
--
-- An answer being written holds a lease, taken in the transaction that
-- stores its user message and renewed by its instance. One per conversation:
-- a second answer in the same conversation, from any instance, is refused.
-- Times are milliseconds on the database's clock.
CREATE TABLE answer_leases (
    answer_id        TEXT PRIMARY KEY,
    conversation_id  TEXT NOT NULL UNIQUE,
    owner_id         TEXT NOT NULL,
    instance_id      TEXT NOT NULL,
    expires_at       BIGINT NOT NULL,
    -- When a listener on another instance last followed it.
    followed_at      BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX answer_leases_instance ON answer_leases (instance_id);
CREATE INDEX answer_leases_owner ON answer_leases (owner_id);

-- The events of answers being written (and just written), as the SSE frames
-- their owner sends; seq is the event id. Deleted a while after the last.
CREATE TABLE answer_events (
    answer_id   TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    frame       TEXT NOT NULL,
    last        BOOLEAN NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (answer_id, seq)
);

-- The instances serving this database, so that one whose cookie secret
-- differs from the others' refuses to start.
CREATE TABLE instances (
    id          TEXT PRIMARY KEY,
    secret_tag  TEXT NOT NULL,
    seen_at     BIGINT NOT NULL
);

-- Answers each owner began per minute over all instances (the per-owner
-- message rate; each instance also keeps its own finer count in memory).
CREATE TABLE owner_minutes (
    owner_id  TEXT NOT NULL,
    -- Minutes since the Unix epoch.
    minute    BIGINT NOT NULL,
    answers   BIGINT NOT NULL,
    PRIMARY KEY (owner_id, minute)
);
