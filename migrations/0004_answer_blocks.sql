-- An answer with more than text (reasoning, tool calls and their results)
-- keeps its parts in order as one JSON array; NULL for a text-only answer,
-- whose content says it all. `content` stays the answer's text, so titles,
-- search and the compatibility API read it as before.
ALTER TABLE messages ADD COLUMN blocks TEXT;
