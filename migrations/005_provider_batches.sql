-- Requests of `mode: batch` tiers while they travel through a vendor's Batch API.
-- One row per request (custom_id: a hash of the item id and its call number). body holds the
-- vendor request until the provider batch that carries it is recorded, then it is cleared;
-- result holds the vendor's answer line until the item has read it, then the checked answer
-- (secret values redacted) is kept in answer and result is cleared.
CREATE TABLE IF NOT EXISTS batch_requests (
  batch_id TEXT NOT NULL,
  tier INTEGER NOT NULL,
  custom_id TEXT NOT NULL,
  item_id TEXT NOT NULL,
  item_workflow_id TEXT NOT NULL,
  body TEXT,
  bytes INTEGER NOT NULL,
  group_key TEXT,
  result_status TEXT,
  result TEXT,
  answer TEXT,
  created_at TEXT NOT NULL,
  PRIMARY KEY (batch_id, tier, custom_id)
);
CREATE INDEX IF NOT EXISTS batch_requests_group ON batch_requests (group_key, custom_id);

-- The provider batch submitted for a group, recorded before anything polls it: a retried
-- or replayed submission finds it here and never submits the same requests twice.
CREATE TABLE IF NOT EXISTS provider_batches (
  group_key TEXT PRIMARY KEY,
  provider_batch_id TEXT NOT NULL,
  input_file_id TEXT,
  requests INTEGER NOT NULL,
  created_at TEXT NOT NULL
);
