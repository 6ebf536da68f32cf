/**
 * A SQLite file locked by another process for 30 s in the middle of a batch: the
 * worker's event loop stays responsive (its SQLite connection waits on its own
 * thread), no workflow task times out, the writes are retried, and once the lock is
 * released every row is there exactly once.
 */
import { DatabaseSync } from 'node:sqlite';
import { setTimeout as sleep } from 'node:timers/promises';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PipelineSpecInput } from '../../src/shared/spec.ts';
import { createHarness } from '../support/harness.ts';
import type { Harness } from '../support/harness.ts';

const LOCK_MS = 30_000;
const N = 20;

const pipeline: PipelineSpecInput = {
  name: 'store-lock',
  prompt: { template: 'Ticket {{id}}: {{text}}' },
  output: { format: 'text' },
  providers: [{ name: 'primary', kind: 'openai', model: 'gpt-4o-mini', timeout: '5s' }],
  batch: { concurrency: 5 },
};

describe('a results store locked by another process', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness();
  });
  afterAll(async () => h?.close());

  it(`holds writes for ${LOCK_MS / 1000} s without blocking the worker; nothing is lost or written twice`, async () => {
    const items = Array.from({ length: N }, (_, i) => ({ id: `k${i}`, text: `locked store ${i}` }));
    // The row table exists (the harness opened the store); another connection takes the write lock.
    const locker = new DatabaseSync(h.config.dbPath);
    const delay = monitorEventLoopDelay({ resolution: 10 });
    const { summary, batchId, maxDelayMs, rowsDuringLock } = await h.run(async () => {
      locker.exec('BEGIN EXCLUSIVE');
      delay.enable();
      const handle = await h.startBatch({ pipeline, items });
      await sleep(LOCK_MS);
      delay.disable();
      const rowsDuringLock = locker.prepare('SELECT COUNT(*) AS n FROM results WHERE batch_id = ?').get(handle.workflowId)?.['n'];
      locker.exec('COMMIT');
      locker.close();
      return { summary: await handle.result(), batchId: handle.workflowId, maxDelayMs: delay.max / 1e6, rowsDuringLock };
    });
    // No row could be written while the lock was held, yet the event loop never stalled for long.
    expect(rowsDuringLock).toBe(0);
    expect(maxDelayMs, `event-loop delay max ${maxDelayMs.toFixed(0)} ms`).toBeLessThan(500);
    expect(summary).toMatchObject({ total: N, succeeded: N, status: 'completed' });

    const rows = await h.store.list(batchId);
    expect(rows.map((r) => r.itemId).sort()).toEqual(items.map((i) => i.id).sort());
    for (const r of rows) expect(await h.store.writeCount(batchId, r.itemId), r.itemId).toBe(1);

    // No workflow task timed out, in the batch or in any item.
    for (const id of [batchId, ...items.map((i) => `${batchId}/${i.id}`)]) {
      const history = await h.client.workflow.getHandle(id).fetchHistory();
      const timedOut = (history.events ?? []).filter((e) => e.workflowTaskTimedOutEventAttributes);
      expect(timedOut, id).toHaveLength(0);
    }
  }, 150_000);
});
