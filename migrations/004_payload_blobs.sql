-- Claim-checked Temporal payloads: a payload larger than the claim threshold is kept here,
-- keyed by the SHA-256 of its bytes, and history holds only the key (src/common/claim-check.ts).
-- Base64 text, so one schema serves SQLite and PostgreSQL. Rows are immutable.
CREATE TABLE IF NOT EXISTS payload_blobs (
  blob_key TEXT PRIMARY KEY,
  payload TEXT NOT NULL,
  bytes INTEGER NOT NULL,
  created_at TEXT NOT NULL
);
