-- Per-conversation settings (model, system prompt, temperature, max tokens)
-- as one JSON text: NULL means the server's defaults. JSON keeps the column
-- portable between SQLite and PostgreSQL and lets settings grow without a
-- migration each.
ALTER TABLE conversations ADD COLUMN settings TEXT;

-- Editing an earlier message replaces the turns from it on. They are kept,
-- marked with the time they were replaced, rather than deleted: nothing a
-- user typed or was billed for is lost. Every read of a transcript skips them.
ALTER TABLE messages ADD COLUMN replaced_at BIGINT;
