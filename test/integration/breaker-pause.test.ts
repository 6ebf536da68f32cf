/**
 * Durable batch policies on the time-skipping server: a circuit that opened
 * half-opens after its 60 s cool-down (no real minute passes), one probe closes
 * it, and the batch goes on; too many consecutive failures pause the batch
 * until a `resume` signal.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PipelineSpecInput } from '../../src/shared/spec.ts';
import type { batchPipeline } from '../../workflows/batch.ts';
import { progressQuery, resumeSignal, reviewUpdate } from '../../src/shared/messages.ts';
import { createTimeSkipping } from '../support/timeskip.ts';
import type { TimeSkipping } from '../support/timeskip.ts';
import { until } from '../support/wait.ts';

const base: PipelineSpecInput = {
  name: 'policies',
  prompt: { template: 'Ticket {{id}}: {{text}}' },
  providers: [{ name: 'primary', kind: 'openai', model: 'gpt-4o-mini', timeout: '2s' }],
  retry: { maxAttempts: 1, initialInterval: '10ms' },
  batch: { concurrency: 1 },
  review: { timeout: '7d' },
};

describe('batch policies with timers', () => {
  let ts: TimeSkipping;
  beforeAll(async () => {
    ts = await createTimeSkipping();
  });
  afterAll(async () => ts?.close());

  it('half-opens the circuit after its cool-down, probes once and closes', async () => {
    const spec: PipelineSpecInput = { ...base, circuitBreaker: { failureThreshold: 2, cooldown: '60s' } };
    const items = Array.from({ length: 6 }, (_, i) => ({ id: `c${i}`, text: `ticket ${i}` }));
    ts.provider.setModelDown('gpt-4o-mini', true);
    const started = Date.now();
    const worker = await ts.worker('breaker');
    const summary = await worker.runUntil(async () => {
      const handle = await ts.env.client.workflow.start<typeof batchPipeline>('batchPipeline', {
        taskQueue: 'breaker',
        workflowId: 'cb',
        args: [{ batchId: 'cb', pipeline: spec, items }],
      });
      const read = () => handle.query(progressQuery);
      // Two failures open the only tier's circuit: the batch stops dispatching.
      const open = await until(read, (p) => p.circuits['primary']?.state === 'open' && p.awaitingReview.length === 2);
      expect(open.started).toBe(2);
      ts.provider.setModelDown('gpt-4o-mini', false);
      for (const itemId of ['c0', 'c1']) await handle.executeUpdate(reviewUpdate, { args: [{ itemId, decision: 'skip' }] });
      expect((await read()).circuits['primary']?.state).toBe('open');
      // Waiting for the result lets the server skip the 60 s cool-down; the probe succeeds and closes the circuit.
      const result = await handle.result();
      expect((await read()).circuits['primary']).toMatchObject({ state: 'closed', failures: 0 });
      return result;
    });
    expect(summary).toMatchObject({ total: 6, succeeded: 4, skipped: 2 });
    expect(Date.now() - started).toBeLessThan(50_000);
    const rows = await ts.store.list('cb');
    expect(
      rows
        .filter((r) => r.status === 'succeeded')
        .map((r) => r.itemId)
        .sort(),
    ).toEqual(['c2', 'c3', 'c4', 'c5']);
  }, 90_000);

  it('pauses after too many consecutive failures and resumes on the signal', async () => {
    const spec: PipelineSpecInput = { ...base, batch: { concurrency: 1, maxConsecutiveFailures: 2, onTooManyFailures: 'pause' } };
    const items = [
      { id: 'p0', text: 'bad [[fault:auth]]' },
      { id: 'p1', text: 'bad [[fault:auth]]' },
      { id: 'p2', text: 'fine' },
      { id: 'p3', text: 'fine too' },
    ];
    const worker = await ts.worker('pause');
    const summary = await worker.runUntil(async () => {
      const handle = await ts.env.client.workflow.start<typeof batchPipeline>('batchPipeline', {
        taskQueue: 'pause',
        workflowId: 'pz',
        args: [{ batchId: 'pz', pipeline: spec, items }],
      });
      const read = () => handle.query(progressQuery);
      const paused = await until(read, (p) => p.paused);
      expect(paused).toMatchObject({ started: 2, paused: true, pausedReason: expect.stringContaining('2 consecutive items failed') });
      for (const itemId of ['p0', 'p1']) await handle.executeUpdate(reviewUpdate, { args: [{ itemId, decision: 'skip' }] });
      // Still paused: the decisions do not restart dispatch, a person does.
      expect((await read()).started).toBe(2);
      await handle.signal(resumeSignal);
      return handle.result();
    });
    expect(summary).toMatchObject({ total: 4, succeeded: 2, skipped: 2, status: 'completed' });
  }, 90_000);
});
