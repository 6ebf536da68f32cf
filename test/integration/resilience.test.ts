/**
 * Orchestration end to end on a real Temporal dev server with the
 * fault-injecting provider: transient faults heal without a human, an outage
 * of the primary moves items to the secondary behind an open circuit, invalid
 * output is repaired, and every item has exactly one row.
 */
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import type { BatchInputRaw, PipelineSpecInput } from '../../src/shared/spec.ts';
import { progressQuery } from '../../src/shared/messages.ts';
import { createHarness } from '../support/harness.ts';
import type { Harness } from '../support/harness.ts';

const example = JSON.parse(readFileSync('examples/batch.json', 'utf8')) as { pipeline: PipelineSpecInput };

/** The example pipeline with fast retries, for tests. */
function pipeline(overrides: Partial<PipelineSpecInput> = {}): PipelineSpecInput {
  return {
    ...example.pipeline,
    providers: example.pipeline.providers.map((p) => ({ ...p, timeout: '1s', timeoutGrowth: 1 })),
    retry: { maxAttempts: 4, initialInterval: '50ms', maxInterval: '500ms' },
    ...overrides,
  };
}

function items(n: number, text = (i: number) => `Ticket number ${i}: the invoice total looks wrong.`) {
  return Array.from({ length: n }, (_, i) => ({ id: `i${String(i).padStart(4, '0')}`, customer: 'Acme', text: text(i) }));
}

describe('resilience', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('heals every transient fault of the flaky profile without a human, one row per item', async () => {
    h = await createHarness({ provider: { profile: 'flaky', seed: 11, latencyScale: 0 } });
    const n = 1_000;
    const input: BatchInputRaw = { pipeline: pipeline({ batch: { concurrency: 100 } }), items: items(n) };
    const summary = await h.run(async () => (await h!.startBatch(input, 'flaky-1')).result());
    const faults = h.provider.stats().byFault as Record<string, number>;
    const injected = Object.values(faults).reduce((a, b) => a + b, 0);
    expect(injected).toBeGreaterThan(10);
    expect(summary).toMatchObject({ total: n, succeeded: n, failed: 0, skipped: 0, approved: 0 });
    expect(summary.attempts).toBeGreaterThan(n);
    expect(await h.store.count('flaky-1')).toBe(n);
    const rows = await h.store.list('flaky-1');
    expect(rows.every((r) => r.status === 'succeeded')).toBe(true);
    expect(rows.filter((r) => r.attempts > 1).length).toBeGreaterThan(5);
  }, 300_000);

  it('moves items to the secondary while the primary is down, behind an open circuit', async () => {
    h = await createHarness();
    h.provider.setModelDown('gpt-4o-mini', true);
    const n = 40;
    const spec = pipeline({ batch: { concurrency: 4 }, circuitBreaker: { failureThreshold: 3, cooldown: '10m' } });
    const summary = await h.run(async () => {
      const handle = await h!.startBatch({ pipeline: spec, items: items(n) }, 'outage-1');
      const result = await handle.result();
      const progress = await handle.query(progressQuery);
      expect(progress.circuits['primary']?.state).toBe('open');
      expect(progress.circuits['secondary']?.state).toBe('closed');
      return result;
    });
    expect(summary).toMatchObject({ total: n, succeeded: n });
    expect(summary.tierUse).toEqual({ primary: 0, secondary: n, local: 0 });
    // Once open, the circuit keeps new items off the primary: far fewer calls than n items x 4 attempts.
    const primaryCalls = (h.provider.stats().byModel as Record<string, number>)['gpt-4o-mini'] ?? 0;
    expect(primaryCalls).toBeGreaterThanOrEqual(3);
    expect(primaryCalls).toBeLessThan((3 + 4) * 4);
    const rows = await h.store.list('outage-1');
    expect(rows).toHaveLength(n);
    expect(new Set(rows.map((r) => r.provider))).toEqual(new Set(['secondary']));
  }, 120_000);

  it('repairs output that breaks the schema by asking again with the errors', async () => {
    h = await createHarness();
    const input: BatchInputRaw = {
      pipeline: pipeline(),
      items: [
        { id: 'bad', customer: 'Acme', text: 'Refund please [[fault:schema_violation]]' },
        { id: 'good', customer: 'Acme', text: 'Refund please' },
      ],
    };
    const summary = await h.run(async () => (await h!.startBatch(input, 'repair-1')).result());
    expect(summary).toMatchObject({ total: 2, succeeded: 2 });
    const bad = (await h.store.list('repair-1')).find((r) => r.itemId === 'bad')!;
    expect(bad.status).toBe('succeeded');
    expect(bad.provider).toBe('primary');
    expect(bad.attempts).toBeGreaterThanOrEqual(2);
    expect(bad.output).toMatchObject({ category: expect.any(String), urgency: expect.any(Number) });
    // The rejected answer was billed and counts in the item's cost: the batch's cost is the provider's bill.
    expect(h.provider.stats().successes).toBe(3);
    expect(summary.costUsd).toBeGreaterThan(0);
    expect(summary.costUsd).toBeCloseTo(h.provider.stats().costUsd, 9);
  }, 60_000);

  it('truncates a prompt over the window, keeps the system prompt and records it', async () => {
    h = await createHarness();
    const long = 'The printer on floor three keeps jamming. '.repeat(800); // ~34 KB, over 4096 tokens
    const spec = pipeline({ providers: [{ name: 'local', kind: 'openai-compatible', model: 'small-4k', contextWindow: 4096, maxOutputTokens: 256, timeout: '2s' }] });
    const summary = await h.run(async () => (await h!.startBatch({ pipeline: spec, items: [{ id: 'long', customer: 'Acme', text: long }] }, 'trunc-1')).result());
    expect(summary).toMatchObject({ total: 1, succeeded: 1, truncated: 1 });
    const [row] = await h.store.list('trunc-1');
    expect(row!.truncation).toMatchObject({ originalTokens: expect.any(Number), finalTokens: expect.any(Number) });
    expect(row!.truncation!.finalTokens + 256).toBeLessThanOrEqual(4096);
    expect(row!.truncation!.originalTokens).toBeGreaterThan(4096);
    expect(row!.inputTokens).toBeLessThanOrEqual(4096);
  }, 60_000);
});
