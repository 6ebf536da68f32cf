/**
 * Figures that add up: a batch's attempts are the LLM calls the provider
 * received, a failed tier's retries included.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BatchInputRaw } from '../../src/shared/spec.ts';
import { createHarness } from '../support/harness.ts';
import type { Harness } from '../support/harness.ts';

describe('attempts count every LLM call', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness();
  });
  afterAll(async () => h?.close());

  it('a tier that fails after its retries counts each of them; the summary, the rows and the provider agree', async () => {
    const input: BatchInputRaw = {
      pipeline: {
        prompt: { template: 'Classify: {{text}}' },
        providers: [
          { name: 'primary', kind: 'openai', model: 'gpt-4o-mini' },
          { name: 'secondary', kind: 'anthropic', model: 'claude-haiku-4-5' },
        ],
        retry: { maxAttempts: 3, initialInterval: '20ms', maxInterval: '50ms' },
        review: { timeout: '1s', defaultDecision: 'skip' },
      },
      items: [
        { id: 'ok', text: 'fine' },
        // One retry, then an answer.
        { id: 'retried', text: 'flaky [[fault:unavailable,none]]' },
        // Every attempt on every tier fails: 3 + 3 calls, then review (skipped on timeout).
        { id: 'down', text: 'down [[fault:unavailable]]' },
        // A permanent fault: one call per tier.
        { id: 'auth', text: 'no key [[fault:auth]]' },
      ],
    };
    const summary = await h.run(async () => (await h.startBatch(input, 'attempts-1')).result());
    const calls = h.provider.stats().requests;
    expect(summary).toMatchObject({ total: 4, succeeded: 2, skipped: 2 });
    const rows = await h.store.list('attempts-1');
    expect(Object.fromEntries(rows.map((r) => [r.itemId, r.attempts]))).toEqual({ ok: 1, retried: 2, down: 6, auth: 2 });
    expect(summary.attempts).toBe(calls);
    expect(rows.reduce((n, r) => n + r.attempts, 0)).toBe(calls);
  });
});
