/**
 * Cancelling a batch: `steadfast cancel` stops dispatch, cancels running items
 * with their in-flight calls (a hanging call at the provider is released) and
 * items waiting for review; their rows say `cancelled`, the summary says how
 * many never started. `temporal workflow cancel` (here `handle.cancel()`) does
 * the same, and `rollbackOnCancel: delete` removes the batch's rows.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { progressQuery } from '../../src/shared/messages.ts';
import type { Progress } from '../../src/shared/messages.ts';
import type { PipelineSpecInput } from '../../src/shared/spec.ts';
import type { BatchSummary } from '../../src/shared/types.ts';
import { harnessEnv, runCli } from '../support/cli.ts';
import { createHarness } from '../support/harness.ts';
import type { Harness } from '../support/harness.ts';

const spec = (rollbackOnCancel: 'none' | 'mark' | 'delete'): PipelineSpecInput => ({
  name: 'cancel',
  prompt: { template: 'Ticket {{id}}: {{text}}' },
  providers: [{ name: 'primary', kind: 'openai', model: 'gpt-4o-mini', timeout: '60s' }],
  retry: { maxAttempts: 1, initialInterval: '10ms' },
  review: { timeout: '1h' },
  batch: { concurrency: 2, rollbackOnCancel },
});

/** A fine item, one that fails for good, two whose calls hang and fill both slots, then 5 that never start. */
const items = [
  { id: 'a0', text: 'fine' },
  { id: 'a1', text: 'fine' },
  { id: 'r0', text: 'revoked [[fault:auth]]' },
  { id: 'h0', text: 'slow [[fault:hang]]' },
  { id: 'h1', text: 'slow [[fault:hang]]' },
  ...Array.from({ length: 5 }, (_, i) => ({ id: `q${i}`, text: 'queued' })),
];

describe('cancel', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness();
  });
  afterAll(async () => h?.close());

  const cli = (...args: string[]) => runCli(args, harnessEnv(h));

  async function untilStuck(batchId: string): Promise<Progress> {
    const handle = h.client.workflow.getHandle(batchId);
    let p = await handle.query(progressQuery);
    for (let i = 0; i < 300 && !(p.succeeded === 1 && p.awaitingReviewCount === 1 && h.provider.stats().openHangs === 2); i++) {
      await new Promise((r) => setTimeout(r, 100));
      p = await handle.query(progressQuery);
    }
    return p;
  }

  it('steadfast cancel stops everything; rows of unfinished items say cancelled', async () => {
    await h.run(async () => {
      const handle = await h.startBatch({ pipeline: spec('none'), items: items.filter((i) => i.id !== 'a1') }, 'cancel-cli');
      const p = await untilStuck('cancel-cli');
      expect(p).toMatchObject({ succeeded: 1, awaitingReviewCount: 1, running: 2, queued: 5 });
      expect(h.provider.stats().openHangs).toBe(2);

      const bad = await cli('cancel', 'cancel-cli', '--rollback', 'undo');
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain('--rollback undo: one of none, mark, delete');

      const r = await cli('cancel', 'cancel-cli', '--reason', 'wrong prompt', '--wait');
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('batch cancel-cli cancelled: 3 running items stopping, 5 never started; rows: kept when it ends');
      expect(r.stdout).toMatch(/status\s+cancelled/);
      expect(r.stdout).toMatch(/not started\s+5/);
      const summary = (await handle.result()) as BatchSummary;
      expect(summary).toMatchObject({ status: 'cancelled', succeeded: 1, cancelled: 3, notStarted: 5, cancel: { reason: 'wrong prompt', rollback: 'none', rowsRolledBack: 0 } });
      // The hanging calls were cancelled with their items: the provider holds none open.
      // An activity learns of its cancellation on its next heartbeat to the server (throttled to 80% of its 10 s timeout).
      for (let i = 0; i < 200 && h.provider.stats().openHangs > 0; i++) await new Promise((r2) => setTimeout(r2, 100));
      expect(h.provider.stats().openHangs).toBe(0);
    });
    const rows = await h.store.list('cancel-cli', {});
    expect(Object.fromEntries(rows.map((x) => [x.itemId, x.status]))).toEqual({ a0: 'succeeded', r0: 'cancelled', h0: 'cancelled', h1: 'cancelled' });
  });

  it('temporal workflow cancel does the same, and rollbackOnCancel: delete removes the rows', async () => {
    await h.run(async () => {
      const handle = await h.startBatch({ pipeline: spec('delete'), items: items.filter((i) => i.id !== 'a1') }, 'cancel-wf');
      await untilStuck('cancel-wf');
      await handle.cancel();
      const summary = (await handle.result()) as BatchSummary;
      expect(summary).toMatchObject({ status: 'cancelled', cancelled: 3, notStarted: 5, cancel: { rollback: 'delete', rowsRolledBack: 4 } });
    });
    expect(await h.store.list('cancel-wf', {})).toEqual([]);
  });

  it('a second run of the batch id after rollbackOnCancel: delete runs every item again, those that had a workflow too', async () => {
    // The first run above ended with its rows deleted; r0's workflow completed (cancelled at review).
    // Every item in its own workflow (fastPath: false), so r0's start meets its completed workflow:
    // before, the batch took the refused start for a running item and waited for it forever.
    const fixed = items.filter((i) => i.id !== 'a1').map((i) => ({ id: i.id, text: 'fine now' }));
    const summary = await h.run(async () => {
      const handle = await h.startBatch({ pipeline: { ...spec('none'), batch: { concurrency: 2, fastPath: false } }, items: fixed }, 'cancel-wf');
      return await Promise.race([handle.result(), new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the re-run did not finish in 60 s')), 60_000))]);
    });
    expect(summary).toMatchObject({ status: 'completed', total: fixed.length, succeeded: fixed.length });
    const rows = await h.store.list('cancel-wf', {});
    expect(rows.map((r) => [r.itemId, r.status]).sort()).toEqual(fixed.map((i) => [i.id, 'succeeded']).sort());
  }, 90_000);
});
