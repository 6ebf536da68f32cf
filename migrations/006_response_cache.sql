-- The response cache: validated LLM answers by a hash of everything that shapes the
-- answer (provider kind, endpoint, model, messages, output schema, sampling settings;
-- never a key). Only answers that passed validation are written, already scrubbed.
-- `answer` is JSON text (text, parsed json, finish reason, model, endpoint, usage and
-- cost of the call that produced it). Shared by every worker on the database.
CREATE TABLE IF NOT EXISTS response_cache (
  cache_key   TEXT PRIMARY KEY,
  model       TEXT NOT NULL,
  answer      TEXT NOT NULL,
  created_at  TEXT NOT NULL
);
-- Whether an item's answer came from the response cache (1) or a provider (0);
-- NULL for rows written before the cache existed or without an answer.
ALTER TABLE results ADD COLUMN cache_hit INTEGER;
