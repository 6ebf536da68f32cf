/**
 * The batch's fast path: an item whose first call succeeds never gets a workflow of
 * its own (the batch calls and writes the row itself); one whose first call fails is
 * handed to its own workflow, which goes on from that call: the provider sees no call
 * more than the child path would make.
 */
import { readFileSync } from 'node:fs';
import type { WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BatchInputRaw } from '../../src/shared/spec.ts';
import { createHarness } from '../support/harness.ts';
import type { Harness } from '../support/harness.ts';

const example = JSON.parse(readFileSync('examples/batch.json', 'utf8')) as BatchInputRaw;

/** Every event of every run of a workflow (it may continue as new). */
async function allEvents(h: Harness, workflowId: string, firstRunId: string): Promise<temporal.api.history.v1.IHistoryEvent[]> {
  const out: temporal.api.history.v1.IHistoryEvent[] = [];
  for (let runId: string | undefined = firstRunId; runId;) {
    const events: temporal.api.history.v1.IHistoryEvent[] = (await h.client.workflow.getHandle(workflowId, runId).fetchHistory()).events ?? [];
    out.push(...events);
    runId = events.at(-1)?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId ?? undefined;
  }
  return out;
}

describe('fast path', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({ provider: { latencyScale: 5 } });
  });
  afterAll(async () => h?.close());

  it('items answered at once get no workflow of their own; the batch writes their rows', async () => {
    const N = 40;
    const input: BatchInputRaw = {
      pipeline: { ...example.pipeline, batch: { concurrency: 4, fastPath: true } },
      items: Array.from({ length: N }, (_, i) => ({ id: `f${i}`, customer: 'Initech', text: `Invoice ${i} was charged twice.` })),
    };
    const before = h.provider.stats().requests;
    const { summary, events } = await h.run(async () => {
      const handle = await h.startBatch(input, 'fast-1');
      const summary = await handle.result();
      return { summary, events: await allEvents(h, 'fast-1', (handle as WorkflowHandleWithFirstExecutionRunId).firstExecutionRunId) };
    });
    expect(summary).toMatchObject({ total: N, succeeded: N, failed: 0, attempts: N });
    expect(h.provider.stats().requests - before).toBe(N);
    expect(h.provider.stats().maxInFlight).toBeLessThanOrEqual(4);
    const rows = await h.store.list('fast-1');
    expect(rows).toHaveLength(N);
    expect(rows.every((r) => r.status === 'succeeded' && r.attempts === 1 && r.output !== null)).toBe(true);
    expect(events.filter((e) => e.startChildWorkflowExecutionInitiatedEventAttributes)).toHaveLength(0);
    expect(events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'callLlm')).toHaveLength(N);
    // An item costs the batch its activity's three events, a marker and its share of workflow tasks.
    expect(events.length / N).toBeLessThan(10);
  });

  it('a failed first call is handed to the item workflow, which goes on from that call', async () => {
    const input: BatchInputRaw = {
      pipeline: {
        ...example.pipeline,
        batch: { ...example.pipeline.batch, fastPath: true },
        retry: { maxAttempts: 3, initialInterval: '20ms', maxInterval: '50ms' },
        review: { timeout: '1s', defaultDecision: 'skip' },
      },
      items: [
        { id: 'ok', customer: 'Initech', text: 'fine' },
        // A transient failure: retried on the first tier by the item workflow.
        { id: 'retry', customer: 'Initech', text: 'flaky [[fault:unavailable,none]]' },
        // Output that breaks the schema: the item workflow's first call is the repair.
        { id: 'repair', customer: 'Initech', text: 'odd [[fault:schema_violation,none]]' },
        // A permanent fault (on every tier): the item workflow starts on the second tier; review skips it.
        { id: 'auth', customer: 'Initech', text: 'no key [[fault:auth]]' },
      ],
    };
    const before = h.provider.stats().requests;
    const { summary, events } = await h.run(async () => {
      const handle = await h.startBatch(input, 'fast-2');
      const summary = await handle.result();
      return { summary, events: await allEvents(h, 'fast-2', (handle as WorkflowHandleWithFirstExecutionRunId).firstExecutionRunId) };
    });
    expect(summary).toMatchObject({ total: 4, succeeded: 3, skipped: 1 });
    const calls = h.provider.stats().requests - before;
    const rows = await h.store.list('fast-2');
    expect(Object.fromEntries(rows.map((r) => [r.itemId, [r.status, r.attempts, r.tier]]))).toEqual({
      ok: ['succeeded', 1, 0],
      retry: ['succeeded', 2, 0],
      repair: ['succeeded', 2, 0],
      auth: ['skipped', 3, null],
    });
    expect(summary.attempts).toBe(calls);
    const children = events.flatMap((e) => e.startChildWorkflowExecutionInitiatedEventAttributes?.workflowId ?? []);
    expect(children.sort()).toEqual(['fast-2/auth', 'fast-2/repair', 'fast-2/retry']);

    /** The first callLlm request of an item workflow. */
    const firstCall = async (itemId: string): Promise<{ tier: number; messages: { role: string; content: string }[] }> => {
      const history = await h.client.workflow.getHandle(`fast-2/${itemId}`).fetchHistory();
      const scheduled = history.events!.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'callLlm')!;
      const payload = scheduled.activityTaskScheduledEventAttributes!.input!.payloads![0]!;
      return JSON.parse(Buffer.from(payload.data!).toString('utf8')) as { tier: number; messages: { role: string; content: string }[] };
    };
    const repair = await firstCall('repair');
    expect(repair.tier).toBe(0);
    // The original prompt, the model's invalid answer, and the request to fix it.
    expect(repair.messages.map((m) => m.role).slice(-2)).toEqual(['assistant', 'user']);
    expect((await firstCall('auth')).tier).toBe(1);
    const retry = await firstCall('retry');
    expect(retry.tier).toBe(0);
    expect(retry.messages.at(-1)?.role).toBe('user');
  });
});
