/**
 * Micro-benchmark of the results store's upsert (what persistResult does per item):
 * `node bench/store-throughput.ts [n] [concurrency]` writes n distinct rows to a fresh
 * SQLite file, then re-delivers them (the no-op path), and prints rows per second.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../activities/store.ts';
import type { ResultRecord } from '../src/shared/types.ts';

const n = Number(process.argv[2] ?? 5_000);
const concurrency = Number(process.argv[3] ?? 50);

function rec(i: number): ResultRecord {
  return {
    batchId: 'bench',
    itemId: `item-${String(i).padStart(6, '0')}`,
    status: 'succeeded',
    output: { category: 'billing', urgency: 3, summary: `summary of ticket ${i}: the invoice total is wrong` },
    provider: 'primary',
    model: 'gpt-4o-mini',
    tier: 0,
    attempts: 1,
    inputTokens: 120,
    outputTokens: 30,
    costUsd: 0.000036,
    truncation: null,
    error: null,
    startedAt: '2025-06-01T10:00:00.000Z',
    finishedAt: '2025-06-01T10:00:05.000Z',
  };
}

async function pass(store: Awaited<ReturnType<typeof openStore>>): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < n; i += concurrency) {
    await Promise.all(Array.from({ length: Math.min(concurrency, n - i) }, (_, j) => store.upsert(rec(i + j))));
  }
  return n / ((performance.now() - started) / 1000);
}

const dir = mkdtempSync(join(tmpdir(), 'steadfast-store-bench-'));
try {
  const store = await openStore({ dbPath: join(dir, 'results.db') });
  const inserts = await pass(store);
  const noops = await pass(store);
  if ((await store.count('bench')) !== n) throw new Error('row count mismatch');
  await store.close();
  console.log(JSON.stringify({ n, concurrency, insertsPerSec: Math.round(inserts), noopsPerSec: Math.round(noops) }));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
