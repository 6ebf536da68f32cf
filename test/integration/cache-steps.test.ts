/**
 * The response cache and multi-step items: a row's `cacheHit` says that every call of the
 * item was answered by the cache (no step called a provider), and the summary counts hits
 * per call (a two-step item served entirely from the cache counts two).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PipelineSpecInput } from '../../src/shared/spec.ts';
import { createHarness } from '../support/harness.ts';
import type { Harness } from '../support/harness.ts';

const schema = {
  type: 'object',
  properties: { label: { type: 'string', enum: ['ok', 'broken'] }, summary: { type: 'string' } },
  required: ['label', 'summary'],
  additionalProperties: false,
};

/** Two steps; the second's prompt does not read the first's output, so it is cached on its own. */
function pipeline(firstTemplate: string): PipelineSpecInput {
  return {
    name: 'cache-steps',
    providers: [{ name: 'primary', kind: 'openai', model: 'gpt-4o-mini', pricing: { inputPerMTok: 0.15, outputPerMTok: 0.6 } }],
    retry: { maxAttempts: 2, initialInterval: '10ms' },
    review: { timeout: '1s', defaultDecision: 'skip' },
    cache: { enabled: true },
    steps: [
      { name: 'classify', prompt: { template: firstTemplate }, output: { format: 'json', schema } },
      { name: 'summarise', prompt: { template: 'Summarise in one line: {{text}}' } },
    ],
  } as unknown as PipelineSpecInput;
}

const items = Array.from({ length: 3 }, (_, i) => ({ id: `s${i}`, text: `ticket ${i}: the parcel is late` }));

describe('response cache with multi-step items', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness();
  });
  afterAll(async () => h?.close());

  it('flags a row as a cache hit only when every step was one, and counts hits per call', async () => {
    const warm = await h.run(async () => (await h.startBatch({ pipeline: pipeline('Classify {{id}}: {{text}}'), items }, 'cstep-1')).result());
    expect(warm).toMatchObject({ total: 3, succeeded: 3, cacheHits: 0 });
    const paid = h.provider.stats().requests;
    expect(paid).toBe(6);

    // The first step's prompt changed (a miss, a provider call), the second step's did not (a hit).
    const half = await h.run(async () => (await h.startBatch({ pipeline: pipeline('Classify ticket {{id}}: {{text}}'), items }, 'cstep-2')).result());
    expect(h.provider.stats().requests - paid).toBe(3);
    expect(half).toMatchObject({ total: 3, succeeded: 3, cacheHits: 3 });
    for (const r of await h.store.list('cstep-2')) {
      expect(r.attempts).toBe(1);
      expect(r.cacheHit).toBe(false);
    }

    // The first pipeline again: both steps of every item from the cache.
    const full = await h.run(async () => (await h.startBatch({ pipeline: pipeline('Classify {{id}}: {{text}}'), items }, 'cstep-3')).result());
    expect(h.provider.stats().requests - paid).toBe(3);
    expect(full).toMatchObject({ total: 3, succeeded: 3, cacheHits: 6, attempts: 0, costUsd: 0 });
    for (const r of await h.store.list('cstep-3')) expect(r).toMatchObject({ cacheHit: true, attempts: 0, costUsd: 0 });
  });
});
