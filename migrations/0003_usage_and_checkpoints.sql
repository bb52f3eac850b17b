-- Tokens each owner used per UTC day, summed from Bedrock's own usage when
-- an answer is stored. Kept apart from the messages so that deleting a
-- conversation does not give its tokens back to the daily budget.
CREATE TABLE owner_usage (
    owner_id       TEXT NOT NULL,
    -- Days since the Unix epoch, UTC.
    day            BIGINT NOT NULL,
    input_tokens   BIGINT NOT NULL,
    output_tokens  BIGINT NOT NULL,
    answers        BIGINT NOT NULL,
    PRIMARY KEY (owner_id, day)
);
