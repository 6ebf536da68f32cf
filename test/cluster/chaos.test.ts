/**
 * Chaos on the multi-service cluster: SIGKILL the history service mid-batch and
 * start it again, then the same for the matching service. The batch must finish
 * with every item's row written once: 0 lost, 0 duplicate rows in the results
 * store (judged by scripts/chaos/analyze.ts, as `npm run chaos` does).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { WorkflowHandle } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { benchPipeline, makeItems } from '../../bench/workload.ts';
import { analyze } from '../../scripts/chaos/analyze.ts';
import { startCountingProxy } from '../../scripts/chaos/proxy.ts';
import type { CountingProxy } from '../../scripts/chaos/proxy.ts';
import type { BatchSummary } from '../../src/shared/types.ts';
import type { batchPipeline } from '../../workflows/batch.ts';
import { progressQuery } from '../../src/shared/messages.ts';
import { createHarness } from '../support/harness.ts';
import type { Harness } from '../support/harness.ts';
import { clusterStatus, killService, startService, writeFigures } from './cluster.ts';

const N = Number(process.env.STEADFAST_CLUSTER_CHAOS_ITEMS ?? 400);
/** Seconds a killed service stays down before it is started again. */
const DOWN_S = 5;

/** A server call failed because a service is down or restarting: retry it. */
const transient = (err: unknown): boolean => /unavailable|connect|transport|closed|deadline|shard|not found|14 |4 /i.test(String(err));

describe('SIGKILL of the history and matching services mid-batch', () => {
  let h: Harness;
  let proxy: CountingProxy;
  beforeAll(async () => {
    // ~200 ms per LLM call so that calls are in flight at every kill.
    h = await createHarness({ provider: { latencyScale: 8 } });
    proxy = await startCountingProxy(h.provider.url);
  });
  afterAll(async () => {
    await proxy?.close();
    await h?.close();
  });

  it('loses no item and writes no row twice', async () => {
    const batchId = `cluster-chaos-${Date.now().toString(36)}`;
    const items = makeItems(N, 'c');
    const events: { service: string; at: number; doneAtKill: number; upAfterMs: number }[] = [];
    const t0 = Date.now();
    const summary = await h.run(async () => {
      const handle: WorkflowHandle<typeof batchPipeline> = await h.startBatch({ pipeline: benchPipeline({ providerUrl: proxy.urlFor('A'), concurrency: 30 }), items }, batchId);
      let done = 0;
      const progress = async () => {
        const p = await handle.query(progressQuery).catch(() => null);
        if (p) done = p.succeeded + p.failed + p.skipped + p.approved;
        return done;
      };
      const chaos = async (service: string, atShare: number) => {
        while ((await progress()) < N * atShare) await sleep(250);
        const doneAtKill = done;
        await killService(service);
        const at = Date.now();
        expect((await clusterStatus())[service]).toBeNull();
        await sleep(DOWN_S * 1000);
        await startService(service);
        events.push({ service, at: at - t0, doneAtKill, upAfterMs: Date.now() - at });
      };
      const result = (async (): Promise<BatchSummary> => {
        for (;;) {
          try {
            return await handle.result();
          } catch (err) {
            if (!transient(err)) throw err;
            await sleep(1_000);
          }
        }
      })();
      await chaos('history', 0.25);
      await chaos('matching', 0.6);
      return result;
    });
    const seconds = (Date.now() - t0) / 1000;

    const verdict = analyze({ dbPath: h.config.dbPath, batchId, itemIds: items.map((i) => i.id), calls: proxy.calls, kills: [], restart: null });
    const report = {
      items: N,
      seconds: Number(seconds.toFixed(1)),
      events,
      lost: verdict.lost.length,
      duplicateRows: verdict.duplicateRows,
      rewrittenRows: verdict.rewrittenRows,
      calls: verdict.calls,
      extraCalls: verdict.extraCalls,
      byStatus: verdict.byStatus,
    };
    writeFigures('cluster-chaos', report);
    expect(events.map((e) => e.service)).toEqual(['history', 'matching']);
    expect(summary).toMatchObject({ batchId, total: N, succeeded: N, failed: 0 });
    expect(verdict.rows).toBe(N);
    expect(verdict.lost).toEqual([]);
    expect(verdict.duplicateRows).toBe(0);
    expect(verdict.byStatus).toEqual({ succeeded: N });
    expect(await clusterStatus()).toEqual(expect.objectContaining({ history: expect.any(Number), matching: expect.any(Number) }));
  });
});
