-- Prompt caching and cost: an answer's input tokens read from and written
-- to Bedrock's prompt cache, and what it cost in billionths of the
-- configured currency (NULL: its model had no price).
ALTER TABLE messages ADD COLUMN cache_read_tokens BIGINT;
ALTER TABLE messages ADD COLUMN cache_write_tokens BIGINT;
ALTER TABLE messages ADD COLUMN cost_nanos BIGINT;

-- What each owner used per UTC day and model: the usage page's figures.
-- Written in the same transaction as owner_usage (the daily budget's), so
-- the two agree; kept apart from the messages for the same reason.
CREATE TABLE owner_model_usage (
    owner_id            TEXT NOT NULL,
    -- Days since the Unix epoch, UTC.
    day                 BIGINT NOT NULL,
    model_id            TEXT NOT NULL,
    answers             BIGINT NOT NULL,
    input_tokens        BIGINT NOT NULL,
    output_tokens       BIGINT NOT NULL,
    cache_read_tokens   BIGINT NOT NULL,
    cache_write_tokens  BIGINT NOT NULL,
    cost_nanos          BIGINT NOT NULL,
    PRIMARY KEY (owner_id, day, model_id)
);
