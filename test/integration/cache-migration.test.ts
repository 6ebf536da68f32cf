/**
 * A results database created before the response cache (migrations 001-005)
 * upgrades on open: its rows stay as they were, new rows record cache hits,
 * and the cache table works. On a real SQLite file and a real PostgreSQL.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore } from '../../activities/index.ts';
import type { ResultStore } from '../../activities/index.ts';
import { loadMigrations } from '../../activities/store.ts';
import type { ResultRecord } from '../../src/shared/types.ts';
import { createTempDatabase, testDatabaseUrl } from '../support/postgres.ts';

const OLD = loadMigrations().filter((m) => m.version < '006');
const NOW = '2026-01-01T00:00:00.000Z';
/** A row as the old schema stored it (no cache_hit column). */
const OLD_ROW = `INSERT INTO results (batch_id, item_id, status, status_rank, output, provider, model, tier, attempts, input_tokens, output_tokens, cost_usd,
  started_at, finished_at, record_hash, write_count, created_at, updated_at, endpoint_vendor, endpoint_host, simulated)
  VALUES ('old', 'i1', 'succeeded', 1, '{"a":1}', 'primary', 'gpt-4o-mini', 0, 1, 10, 5, 0.25, '${NOW}', '${NOW}', 'h', 1, '${NOW}', '${NOW}', 'openai', 'api.openai.com', 0)`;

const fresh: ResultRecord = {
  batchId: 'new',
  itemId: 'i1',
  status: 'succeeded',
  output: { a: 2 },
  provider: 'primary',
  model: 'gpt-4o-mini',
  tier: 0,
  attempts: 0,
  inputTokens: 0,
  outputTokens: 0,
  costUsd: 0,
  truncation: null,
  error: null,
  startedAt: NOW,
  finishedAt: NOW,
  endpoint: { vendor: 'openai', host: 'api.openai.com', simulated: false },
  cacheHit: true,
};

async function checkUpgraded(store: ResultStore): Promise<void> {
  const [old] = await store.list('old');
  expect(old).toMatchObject({ itemId: 'i1', status: 'succeeded', output: { a: 1 }, costUsd: 0.25, inputTokens: 10 });
  expect(old!.cacheHit).toBeUndefined();
  expect(await store.upsert(fresh)).toBe('inserted');
  expect((await store.list('new'))[0]).toMatchObject({ cacheHit: true, costUsd: 0 });
  await store.cachePut({ key: 'k', model: 'm', answer: '{"text":"x"}', createdAt: NOW });
  await store.cachePut({ key: 'k', model: 'm', answer: '{"text":"second"}', createdAt: NOW });
  expect(await store.cacheGet('k')).toEqual({ key: 'k', model: 'm', answer: '{"text":"x"}', createdAt: NOW });
  expect(await store.cacheGet('missing')).toBeNull();
}

describe('response cache migration', () => {
  const dir = mkdtempSync(join(tmpdir(), 'steadfast-mig-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('upgrades an existing SQLite file without losing rows', async () => {
    const path = join(dir, 'old.db');
    const db = new DatabaseSync(path);
    db.exec('CREATE TABLE schema_migrations (version TEXT PRIMARY KEY, applied_at TEXT NOT NULL)');
    for (const m of OLD) {
      db.exec(m.sql);
      db.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)').run(m.version, NOW);
    }
    db.exec(OLD_ROW);
    db.close();
    const store = await openStore({ dbPath: path });
    try {
      await checkUpgraded(store);
    } finally {
      await store.close();
    }
  });

  const url = testDatabaseUrl();
  it.skipIf(!url)('upgrades an existing PostgreSQL database without losing rows', async () => {
    const tmp = await createTempDatabase(url!);
    const c = new pg.Client({ connectionString: tmp.url });
    await c.connect();
    try {
      await c.query('CREATE TABLE schema_migrations (version TEXT PRIMARY KEY, applied_at TEXT NOT NULL)');
      for (const m of OLD) {
        await c.query(m.sql);
        await c.query('INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)', [m.version, NOW]);
      }
      await c.query(OLD_ROW);
    } finally {
      await c.end();
    }
    const store = await openStore({ databaseUrl: tmp.url, dbPath: '' });
    try {
      await checkUpgraded(store);
    } finally {
      await store.close();
      await tmp.drop();
    }
  });
});
