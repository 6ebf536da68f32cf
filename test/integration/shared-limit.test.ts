/**
 * Batches on one provider key share its rate limit: three batches started
 * together, each naming the key's whole limit, take permits from one
 * `rateLimiter` workflow, so the provider (a real token bucket that answers 429
 * past the limit) sees their combined rate under the limit; each batch gets a
 * share, and the limiter forgets each batch when it ends.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { History } from '@temporalio/common/lib/proto-utils.js';
import type { WorkflowHandle } from '@temporalio/client';
import type { batchPipeline } from '../../workflows/batch.ts';
import { limiterIdOf, limiterStateQuery } from '../../src/shared/limiter.ts';
import { HORIZON_MS } from '../../workflows/limiter-state.ts';
import { progressQuery } from '../../src/shared/messages.ts';
import type { BatchInputRaw } from '../../src/shared/spec.ts';
import { createHarness } from '../support/harness.ts';
import type { Harness } from '../support/harness.ts';

const example = JSON.parse(readFileSync('examples/batch.json', 'utf8')) as BatchInputRaw;
const RPM = 120;
const PER_BATCH = 8;
const tier = { ...example.pipeline.providers[0]!, rateLimit: { requestsPerMinute: RPM } };
const input = (b: number): BatchInputRaw => ({
  pipeline: { ...example.pipeline, providers: [tier], batch: { concurrency: 10 }, retry: { maxAttempts: 5, initialInterval: '200ms', maxInterval: '2s', backoffCoefficient: 2 } },
  items: Array.from({ length: PER_BATCH }, (_, i) => ({ id: `s${b}-${i}`, customer: 'Initech', text: `Invoice ${i} of batch ${b} was charged twice.` })),
});

describe('shared rate limit', () => {
  let h: Harness;

  /** The batches' summaries; past `ms`, first logs what the limiter holds and where each batch stands (a stall's evidence). */
  async function resultsOrDump(handles: WorkflowHandle<typeof batchPipeline>[], limiterId: string, ms: number) {
    const done = Promise.all(handles.map((x) => x.result()));
    const late = await Promise.race([done.then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), ms))]);
    if (late) {
      const limiter = await h.client.workflow
        .getHandle(limiterId)
        .query(limiterStateQuery)
        .catch((e: unknown) => String(e));
      const progress = await Promise.all(handles.map((x) => x.query(progressQuery).catch((e: unknown) => String(e))));
      const tails = await Promise.all(
        handles.map(async (x) =>
          ((await x.fetchHistory()).events ?? [])
            .slice(-12)
            .map((e) => `${String(e.eventType)}${e.workflowExecutionSignaledEventAttributes ? `:${e.workflowExecutionSignaledEventAttributes.signalName}` : ''}`)
            .join(' '),
        ),
      );
      console.error('batches late', JSON.stringify({ limiter, progress, tails }));
    }
    return done;
  }
  beforeAll(async () => {
    h = await createHarness();
    // One second of burst, like OpenAI's enforcement: three batches each pacing to the whole limit would see 429s.
    h.provider.setProfile(`ratelimit:rpm=${RPM},tpm=10000000,burstSeconds=1`);
  });
  afterAll(async () => h?.close());

  /** The limiter's state, once it exists (the first batch starts it). */
  const pollLimiter = async (limiterId: string) => {
    for (let i = 0; ; i++) {
      try {
        return await h.client.workflow.getHandle(limiterId).query(limiterStateQuery);
      } catch (err) {
        if (i >= 40) throw err;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  };

  it('keeps three batches on one key under the limit together, each served', async () => {
    const limiterId = limiterIdOf(tier, h.taskQueue);
    const { summaries, limiter, during, elapsedMs, firstHistory } = await h.run(async () => {
      const t0 = Date.now();
      const handles = await Promise.all([0, 1, 2].map((b) => h.startBatch(input(b), `shared-${b}-${t0}`)));
      // Mid-run, while all three still want permits, each is served within 20 s (about 5 s at this rate
      // on a quiet machine; the batches start later on a loaded one), not after the others finished.
      const served = (v: typeof during): boolean => v.clients.length === 3 && v.clients.every((c) => c.granted >= 2);
      let during = await pollLimiter(limiterId);
      for (let i = 0; i < 80 && !served(during); i++) {
        await new Promise((r) => setTimeout(r, 250));
        during = await pollLimiter(limiterId);
      }
      const summaries = await resultsOrDump(handles, limiterId, 40_000);
      const elapsedMs = Date.now() - t0;
      const limiter = await h.client.workflow.getHandle(limiterId).query(limiterStateQuery);
      const firstHistory: History = await handles[0]!.fetchHistory();
      return { summaries, limiter, during, elapsedMs, firstHistory };
    });
    for (const s of summaries) expect(s).toMatchObject({ total: PER_BATCH, succeeded: PER_BATCH, failed: 0 });
    const stats = h.provider.stats();
    // The limiter kept the three under one key's budget: no 429 on a quiet machine. A worker too
    // loaded to start an activity at its slot sends it late, next to the following one, and the
    // provider's one-second bucket (2 requests here) may answer one 429, which a retry heals.
    expect(stats.byStatus['429'] ?? 0).toBeLessThanOrEqual(2);
    expect(stats.successes).toBe(3 * PER_BATCH);
    // 24 requests at 120 per minute (97% of it) take about 12 s; three batches pacing alone would take 4 s.
    expect(elapsedMs).toBeGreaterThan(9_000);
    expect(limiter.granted).toBeGreaterThanOrEqual(3 * PER_BATCH);
    expect(limiter.clients).toEqual([]);
    expect(during.requestsPerMinute).toBeCloseTo(RPM * 0.97);
    // Mid-run, each of the three had been served.
    expect(during.clients).toHaveLength(3);
    for (const c of during.clients) expect(c.granted).toBeGreaterThanOrEqual(2);
    // The batch heard of its permits by signal, and the key's value is nowhere in its history.
    const signals = (firstHistory.events ?? []).map((e) => e.workflowExecutionSignaledEventAttributes?.signalName).filter(Boolean);
    expect(signals).toContain('limiterPermits');
    expect(JSON.stringify(firstHistory)).not.toContain('sk-');
  }, 90_000);

  it('survives its limiter being terminated: the batches start a new one and finish', async () => {
    h.provider.setProfile(`ratelimit:rpm=${RPM},tpm=10000000,burstSeconds=1`);
    h.provider.reset();
    const limiterId = limiterIdOf(tier, h.taskQueue);
    const summaries = await h.run(async () => {
      const t0 = Date.now();
      const handles = await Promise.all([3, 4].map((b) => h.startBatch(input(b), `shared-${b}-${t0}`)));
      await new Promise((r) => setTimeout(r, 4_000));
      await h.client.workflow.getHandle(limiterId).terminate('test: the limiter is lost');
      return resultsOrDump(handles, limiterId, 45_000);
    });
    for (const s of summaries) expect(s).toMatchObject({ total: PER_BATCH, succeeded: PER_BATCH, failed: 0 });
    // The new limiter knows nothing of the slots the old one handed out (up to HORIZON_MS ahead):
    // at most that many requests are sent twice as densely, and their 429s are healed by a retry.
    expect(h.provider.stats().byStatus['429'] ?? 0).toBeLessThanOrEqual(Math.ceil((HORIZON_MS / 60_000) * RPM));
    const d = await h.client.workflow.getHandle(limiterId).describe();
    expect(d.status.name).toBe('RUNNING');
  }, 90_000);
});
