/**
 * Concurrency bounds LLM calls: a successful `callLlm` frees its item's slot by
 * signalling the batch (`itemCallDone`), so the next item starts while this one
 * persists and reports, yet the provider never sees more calls at once than
 * `batch.concurrency`.
 */
import { readFileSync } from 'node:fs';
import type { WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import type { History } from '@temporalio/common/lib/proto-utils.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BatchInputRaw } from '../../src/shared/spec.ts';
import { createHarness } from '../support/harness.ts';
import type { Harness } from '../support/harness.ts';

const example = JSON.parse(readFileSync('examples/batch.json', 'utf8')) as BatchInputRaw;
const N = 40;
const CONCURRENCY = 4;
const input: BatchInputRaw = {
  // Every item in its own workflow: the slot is released by the item's signal (the fast path is fast-path.test.ts).
  pipeline: { ...example.pipeline, batch: { concurrency: CONCURRENCY, fastPath: false } },
  items: Array.from({ length: N }, (_, i) => ({ id: `d${i}`, customer: 'Initech', text: `Invoice ${i} was charged twice.` })),
};

describe('dispatch', () => {
  let h: Harness;
  beforeAll(async () => {
    // 100-150 ms per call, so calls overlap and the bound is tested.
    h = await createHarness({ provider: { latencyScale: 5 } });
  });
  afterAll(async () => h?.close());

  it('keeps at most `concurrency` calls at the provider while slots pass on early', async () => {
    const { summary, history } = await h.run(async () => {
      const handle = await h.startBatch(input, 'dispatch-1');
      const summary = await handle.result();
      // Every run of the batch (it continues as new): the signals it received.
      const names: string[] = [];
      for (let runId: string | undefined = (handle as WorkflowHandleWithFirstExecutionRunId).firstExecutionRunId; runId;) {
        const history: History = await h.client.workflow.getHandle('dispatch-1', runId).fetchHistory();
        const events = history.events ?? [];
        names.push(...events.map((e) => e.workflowExecutionSignaledEventAttributes?.signalName ?? ''));
        runId = events.at(-1)?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId ?? undefined;
      }
      return { summary, history: names };
    });
    expect(summary).toMatchObject({ total: N, succeeded: N, failed: 0 });
    expect(await h.store.count('dispatch-1')).toBe(N);

    const stats = h.provider.stats();
    expect(stats.requests).toBe(N);
    expect(stats.maxInFlight).toBeLessThanOrEqual(CONCURRENCY);
    expect(stats.maxInFlight).toBeGreaterThanOrEqual(2);
    expect(stats.inFlight).toBe(0);

    // Successful calls released their slots from the activity, at most once per item. The release
    // is fire-and-forget: those of the last items can arrive after the batch completed.
    const released = history.filter((name) => name === 'itemCallDone');
    expect(released.length).toBeLessThanOrEqual(N);
    expect(released.length).toBeGreaterThanOrEqual(N - CONCURRENCY);
  });
});
