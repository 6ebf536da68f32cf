-- Results of batch items, one row per (batch_id, item_id).
-- Dialect-neutral on purpose: the same file runs on SQLite and PostgreSQL.
-- JSON columns are TEXT (cast to jsonb in PostgreSQL queries when needed);
-- timestamps are ISO 8601 UTC text, which sorts chronologically.
CREATE TABLE IF NOT EXISTS results (
  batch_id      TEXT NOT NULL,
  item_id       TEXT NOT NULL,
  status        TEXT NOT NULL,
  -- 0 = awaiting_review, 1 = final: the upsert never lets a stale
  -- awaiting_review re-delivery overwrite a final status.
  status_rank   INTEGER NOT NULL,
  output        TEXT,
  provider      TEXT,
  model         TEXT,
  tier          INTEGER,
  attempts      INTEGER NOT NULL DEFAULT 0,
  input_tokens  BIGINT NOT NULL DEFAULT 0,
  output_tokens BIGINT NOT NULL DEFAULT 0,
  cost_usd      DOUBLE PRECISION NOT NULL DEFAULT 0,
  truncation    TEXT,
  error         TEXT,
  started_at    TEXT NOT NULL,
  finished_at   TEXT NOT NULL,
  -- Hash of the stored record: an identical re-delivery is a no-op, not a write.
  record_hash   TEXT NOT NULL,
  -- How many times the row was written (1 = inserted once, never updated).
  write_count   INTEGER NOT NULL DEFAULT 1,
  created_at    TEXT NOT NULL,
  updated_at    TEXT NOT NULL,
  PRIMARY KEY (batch_id, item_id)
);

CREATE INDEX IF NOT EXISTS results_batch_status ON results (batch_id, status);
