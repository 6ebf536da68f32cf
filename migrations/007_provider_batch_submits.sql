-- A submission about to be sent to a provider whose batches carry no metadata (Anthropic
-- Message Batches), recorded before the create call: a retry that finds it and no recorded
-- batch looks, among the provider's batches created since, for the one a lost attempt made.
CREATE TABLE IF NOT EXISTS provider_batch_submits (
  group_key TEXT PRIMARY KEY,
  requests INTEGER NOT NULL,
  started_at TEXT NOT NULL
);
-- Provider batches a retry adopted whose results were not the group's requests: never
-- adopted again, and why.
CREATE TABLE IF NOT EXISTS provider_batch_rejects (
  provider_batch_id TEXT PRIMARY KEY,
  group_key TEXT NOT NULL,
  reason TEXT NOT NULL,
  rejected_at TEXT NOT NULL
);
-- 1 when the batch was found by that search (its results are checked before they are used),
-- 2 once they were; NULL for a batch whose create call answered.
ALTER TABLE provider_batches ADD COLUMN adopted INTEGER;
-- When a cancelled Steadfast batch asked the provider to cancel this batch, and how that went.
ALTER TABLE provider_batches ADD COLUMN cancel_requested_at TEXT;
ALTER TABLE provider_batches ADD COLUMN cancel_status TEXT;
