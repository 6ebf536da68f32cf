/**
 * The response cache end to end: a re-run of the same items under a new batch id
 * makes no provider call and costs nothing; an answer that failed validation is
 * never stored nor served; two workers with their own store instances on one
 * database (SQLite file, PostgreSQL) share each other's answers.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { inject } from 'vitest';
import { NativeConnection } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../activities/index.ts';
import type { ResultStore } from '../../activities/index.ts';
import { responseCache } from '../../activities/cache.ts';
import type { BatchInputRaw, PipelineSpecInput } from '../../src/shared/spec.ts';
import { createWorker } from '../../src/worker/worker.ts';
import { createHarness } from '../support/harness.ts';
import type { Harness } from '../support/harness.ts';
import { createTempDatabase, testDatabaseUrl } from '../support/postgres.ts';

const example = JSON.parse(readFileSync('examples/batch.json', 'utf8')) as { pipeline: PipelineSpecInput };
const pipeline: PipelineSpecInput = {
  ...example.pipeline,
  providers: [{ name: 'primary', kind: 'openai', model: 'gpt-4o-mini', pricing: { inputPerMTok: 0.15, outputPerMTok: 0.6 } }],
  retry: { maxAttempts: 2, initialInterval: '10ms' },
  repair: { maxRepairs: 0 },
  review: { timeout: '1s', defaultDecision: 'skip' },
  cache: { enabled: true },
};
const items = Array.from({ length: 8 }, (_, i) => ({ id: `t${i}`, customer: 'Acme', text: `ticket number ${i}: my invoice is wrong` }));
const input = (extra: BatchInputRaw['items'] = []): BatchInputRaw => ({ pipeline, items: [...items, ...extra] });

describe('response cache', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness();
  });
  afterAll(async () => h?.close());

  it('a re-run under a new batch id makes 0 provider calls and costs 0; rows and summary record the hits', async () => {
    const first = await h.run(async () => (await h.startBatch(input(), 'cache-a1')).result());
    const calls = h.provider.stats().requests;
    expect(first).toMatchObject({ total: 8, succeeded: 8, cacheHits: 0 });
    expect(first.costUsd).toBeGreaterThan(0);
    expect(calls).toBe(8);

    const again = await h.run(async () => (await h.startBatch(input(), 'cache-a2')).result());
    expect(h.provider.stats().requests).toBe(calls);
    expect(again).toMatchObject({ total: 8, succeeded: 8, cacheHits: 8, costUsd: 0, attempts: 0, inputTokens: 0, outputTokens: 0 });
    const rows = await h.store.list('cache-a2');
    expect(rows.map((r) => [r.cacheHit, r.costUsd, r.attempts])).toEqual(items.map(() => [true, 0, 0]));
    // Same outputs as the paid run, from the same endpoint.
    const paid = await h.store.list('cache-a1');
    expect(rows.map((r) => r.output)).toEqual(paid.map((r) => r.output));
    expect(paid.every((r) => r.cacheHit === false)).toBe(true);
    expect(rows[0]!.endpoint).toEqual(paid[0]!.endpoint);
  });

  it('never stores or serves an answer whose validation failed', async () => {
    const bad = { id: 'bad', customer: 'Acme', text: 'always broken [[fault:schema_violation]]' };
    const before = h.provider.stats().requests;
    const first = await h.run(async () => (await h.startBatch(input([bad]), 'cache-b1')).result());
    expect(first).toMatchObject({ total: 9, succeeded: 8, skipped: 1, cacheHits: 8 });
    expect(h.provider.stats().requests - before).toBe(1);
    const second = await h.run(async () => (await h.startBatch(input([bad]), 'cache-b2')).result());
    // The invalid answer was not cached: the provider is asked again, and the item fails again.
    expect(h.provider.stats().requests - before).toBe(2);
    expect(second).toMatchObject({ succeeded: 8, skipped: 1, cacheHits: 8 });
    const [row] = await h.store.list('cache-b2', { itemId: 'bad' });
    expect(row).toMatchObject({ status: 'skipped', error: { type: 'InvalidOutput' } });
    expect(row!.cacheHit).toBeUndefined();
  });

  it('a stored entry that no longer validates against the schema is a miss', async () => {
    const cache = responseCache(h.store, {});
    const schema = { type: 'object', properties: { n: { type: 'integer' } }, required: ['n'] };
    const answer = {
      text: '{"n":"x"}',
      json: { n: 'x' },
      finishReason: 'stop',
      model: 'm',
      endpoint: { vendor: 'simulated', host: 'h', simulated: true },
      usage: { inputTokens: 1, outputTokens: 1 },
      costUsd: 1,
    };
    await cache.put('poisoned-key', answer, []);
    expect(await cache.get('poisoned-key', { format: 'json', schema })).toBeNull();
    expect(await cache.get('poisoned-key', { format: 'text' })).toMatchObject({ text: '{"n":"x"}' });
    expect(await cache.get('poisoned-key', { format: 'text' }, 0)).toBeNull();
  });
});

/** Two workers, each with its own store instance on one database, on one task queue in turn. */
async function sharedAcrossWorkers(h: Harness, open: () => Promise<ResultStore>, tag: string): Promise<void> {
  const connection = await NativeConnection.connect({ address: h.address });
  const stores = [await open(), await open()];
  try {
    const worker = (store: ResultStore) =>
      createWorker({
        connection,
        config: h.config,
        deps: { store, simulatedProviderUrl: h.provider.url },
        workflowBundle: { codePath: inject('workflowBundlePath') },
        overrides: { shutdownGraceTime: '1 s' },
      });
    const before = h.provider.stats().requests;
    const a = await (await worker(stores[0]!)).runUntil(async () => (await h.startBatch(input(), `${tag}-1`)).result());
    expect(a.cacheHits).toBe(0);
    expect(h.provider.stats().requests - before).toBe(8);
    const b = await (await worker(stores[1]!)).runUntil(async () => (await h.startBatch(input(), `${tag}-2`)).result());
    expect(b).toMatchObject({ succeeded: 8, cacheHits: 8, costUsd: 0 });
    expect(h.provider.stats().requests - before).toBe(8);
    expect((await stores[0]!.list(`${tag}-2`)).every((r) => r.cacheHit === true)).toBe(true);
  } finally {
    for (const s of stores) await s.close();
    await connection.close();
  }
}

describe('response cache across workers', () => {
  let h: Harness;
  const dir = mkdtempSync(join(tmpdir(), 'steadfast-cache-'));
  beforeAll(async () => {
    h = await createHarness();
  });
  afterAll(async () => {
    await h?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('shares hits through one SQLite file', async () => {
    const path = join(dir, 'shared.db');
    await sharedAcrossWorkers(h, () => openStore({ dbPath: path }), 'cache-sq');
  });

  const pgUrl = testDatabaseUrl();
  it.skipIf(!pgUrl)('shares hits through one PostgreSQL database', async () => {
    const db = await createTempDatabase(pgUrl!);
    try {
      await sharedAcrossWorkers(h, () => openStore({ databaseUrl: db.url, dbPath: '' }), 'cache-pg');
    } finally {
      await db.drop();
    }
  });
});
