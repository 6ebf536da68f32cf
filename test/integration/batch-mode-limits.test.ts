/**
 * `mode: batch` on the shared dev server (it suggests continue-as-new at 300 events):
 * the collector splits requests into provider batches at `maxRequests` and at `maxBytes`,
 * polls often enough to continue as new while they run, and keeps every group across
 * runs; parked items do not hold the batch's concurrency slots. Both stores: the provider
 * batch tables are written through SQLite here and PostgreSQL in the second test.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PipelineSpecInput } from '../../src/shared/spec.ts';
import { providerBatchWorkflowId } from '../../src/shared/provider-batch.ts';
import { createHarness } from '../support/harness.ts';
import type { Harness } from '../support/harness.ts';
import { testDatabaseUrl } from '../support/postgres.ts';

const pgUrl = testDatabaseUrl();

const spec = (batch: Record<string, unknown>, concurrency = 2): PipelineSpecInput => ({
  name: 'batch-limits',
  prompt: { template: 'Classify ticket {{id}}: {{text}}' },
  output: { format: 'json', schema: { type: 'object', properties: { label: { type: 'string' } }, required: ['label'] } },
  providers: [{ name: 'bulk', kind: 'openai', model: 'gpt-4o-mini', mode: 'batch', pricing: { inputPerMTok: 1, outputPerMTok: 1, batchDiscount: 0.6 }, batch }],
  retry: { maxAttempts: 2, initialInterval: '20ms', maxInterval: '20ms' },
  batch: { concurrency },
});

const items = (n: number, pad = 0) => Array.from({ length: n }, (_, i) => ({ id: `i${String(i).padStart(2, '0')}`, text: `ticket ${i} ${'x'.repeat(pad)}` }));

describe('provider batch limits', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({ provider: { profile: { name: 'slow', batch: { latencyMs: 3_600_000 } } } });
  });
  afterAll(async () => h?.close());

  it('splits 7 requests into batches of 3 (maxRequests) and continues as new while polling, with concurrency 2', async () => {
    const handle = await h.startBatch({ pipeline: spec({ maxRequests: 3, window: '2s', pollInterval: '20ms' }), items: items(7) });
    const summary = await h.run(async () => {
      // All seven were submitted while the provider batches run (an hour of the provider's clock): parked items hold no slot.
      for (let i = 0; i < 100 && h.provider.stats().batches.requests < 7; i++) await new Promise((r) => setTimeout(r, 100));
      expect(h.provider.stats().batches).toMatchObject({ requests: 7, results: {} });
      // Polling every 20 ms passes 300 events: wait for the collector to continue as new, then let the batches end.
      const collector = h.client.workflow.getHandle(providerBatchWorkflowId(handle.workflowId, 0));
      const firstRun = (await collector.describe()).runId;
      for (let i = 0; i < 300 && (await collector.describe()).runId === firstRun; i++) await new Promise((r) => setTimeout(r, 100));
      h.provider.advanceClock(3_600_000);
      const s = await handle.result();
      // The collector is done once every group ended and its members were told.
      await h.client.workflow.getHandle(providerBatchWorkflowId(handle.workflowId, 0)).result();
      return s;
    });
    expect(summary).toMatchObject({ total: 7, succeeded: 7 });
    const stats = h.provider.stats().batches;
    // 3 + 3 + 1: seven items ran at once although concurrency is 2 (parked items hold no slot).
    expect(stats).toMatchObject({ created: 3, requests: 7, results: { succeeded: 7 } });
    const groups = await h.store.execute('SELECT requests FROM provider_batches WHERE group_key LIKE ? ORDER BY group_key', [`${handle.workflowId}/%`]);
    expect(groups.rows.map((r) => Number(r['requests'])).sort()).toEqual([1, 3, 3]);
    const last = await h.client.workflow.getHandle(providerBatchWorkflowId(handle.workflowId, 0)).fetchHistory();
    // The run that finished was continued from another, and kept every group.
    expect(last.events?.[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId).toBeTruthy();
    const rows = await h.store.list(handle.workflowId);
    // The spec's batchDiscount: 60% off.
    for (const r of rows) expect(r.costUsd).toBeCloseTo(((r.inputTokens + r.outputTokens) / 1e6) * 0.4, 12);
  }, 60_000);
});

describe.skipIf(!pgUrl)('provider batch limits on PostgreSQL', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({ provider: { profile: { name: 'quick', batch: { latencyMs: 500 } } }, env: { DATABASE_URL: pgUrl! } });
  });
  afterAll(async () => h?.close());

  it('closes a group at maxBytes and clears the staged bodies once submitted', async () => {
    // Each line is about 1.4 KB: 4 KB holds two of them.
    const handle = await h.startBatch({ pipeline: spec({ maxBytes: 4_096, window: '2s', pollInterval: '200ms' }, 10), items: items(5, 1_000) });
    const summary = await h.run(async () => {
      const s = await handle.result();
      await h.client.workflow.getHandle(providerBatchWorkflowId(handle.workflowId, 0)).result();
      return s;
    });
    expect(summary).toMatchObject({ total: 5, succeeded: 5 });
    expect(h.provider.stats().batches).toMatchObject({ created: 3, requests: 5 });
    const staged = await h.store.execute('SELECT body, bytes, result, answer FROM batch_requests WHERE batch_id = ?', [handle.workflowId]);
    expect(staged.rows).toHaveLength(5);
    for (const r of staged.rows) {
      expect(r['body']).toBeNull();
      expect(r['result']).toBeNull();
      expect(Number(r['bytes'])).toBeGreaterThan(1_000);
      expect(JSON.parse(String(r['answer']))).toMatchObject({ ok: true });
    }
  }, 60_000);
});
