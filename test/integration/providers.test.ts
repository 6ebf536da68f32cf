/**
 * Provider routing and vendor features end to end (real Temporal, a real worker, the
 * fault-injecting provider): a batch whose spec the worker's policy refuses fails at
 * once; on a worker NOT switched to the fault provider, a tier without its key fails
 * with AuthFailed naming the variable and the chain moves on; every row and the summary
 * record the endpoint; Anthropic prompt caching and cached-token pricing; OpenAI strict mode.
 */
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PipelineSpecInput } from '../../src/shared/spec.ts';
import { createHarness } from '../support/harness.ts';
import type { Harness } from '../support/harness.ts';

const base: Omit<PipelineSpecInput, 'providers'> = {
  name: 'providers-test',
  prompt: {
    system: `You are a support triage assistant. ${'Classify the ticket into exactly one category and give a confidence score. '.repeat(40)}`,
    template: `${'Read the ticket below carefully before you answer. '.repeat(30)}Ticket {{id}}: {{text}}`,
  },
  output: {
    format: 'json',
    schema: {
      type: 'object',
      properties: { category: { type: 'string', enum: ['billing', 'other'] }, score: { type: 'number' } },
      required: ['category', 'score'],
      additionalProperties: false,
    },
  },
  retry: { maxAttempts: 2, initialInterval: '10ms', maxInterval: '10ms' },
  review: { timeout: '2s', defaultDecision: 'skip' },
};
const items = ['a', 'b', 'c'].map((id) => ({ id, text: `refund for order ${id}` }));

describe('on a worker switched to the fault provider', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({ provider: { cacheMinTokens: 100 } });
  });
  afterAll(async () => h?.close());

  it('fails a batch at once when its spec names a host the worker does not allow', async () => {
    const handle = await h.startBatch({ pipeline: { ...base, providers: [{ kind: 'openai', model: 'gpt-4o-mini', baseURL: 'https://attacker.example/v1' }] }, items });
    const err = await h.run(() => handle.result()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const cause = (err as WorkflowFailedError).cause;
    expect(cause).toBeInstanceOf(ApplicationFailure);
    expect(cause).toMatchObject({ type: 'InvalidSpec', nonRetryable: true });
    expect(cause?.message).toContain('pipeline.providers[0].baseURL: host attacker.example is not allowed');
    expect(await h.store.count(handle.workflowId)).toBe(0);
    expect(h.provider.stats().requests).toBe(0);
  });

  it('records the simulated endpoint, caches the shared Anthropic prefix and prices cached tokens', async () => {
    const pricing = { inputPerMTok: 1, outputPerMTok: 5, cachedInputPerMTok: 0.1, cacheWritePerMTok: 1.25 };
    const pipeline = { ...base, batch: { concurrency: 1 }, providers: [{ name: 'claude', kind: 'anthropic' as const, model: 'claude-haiku-4-5', pricing }] };
    const summary = await h.run(async () => (await h.startBatch({ pipeline, items })).result());
    expect(summary).toMatchObject({ succeeded: 3, simulated: 3, endpoints: { [`simulated ${new URL(h.provider.url).host}`]: 3 } });
    const rows = await h.store.list(summary.batchId);
    for (const r of rows) expect(r.endpoint).toEqual({ vendor: 'simulated', host: new URL(h.provider.url).host, simulated: true });
    // The first item wrote the cache, the next two read it: they cost less for the same tokens.
    const [first, second] = rows;
    expect(first!.inputTokens).toBe(second!.inputTokens);
    expect(second!.costUsd).toBeLessThan(first!.costUsd * 0.5);
  });
});

describe('on a worker with only OPENAI_API_KEY and no switch', () => {
  let h: Harness;
  beforeAll(async () => {
    // The vendor's host is answered by the local provider through the SDKs' fetch: no internet here.
    const toLocal: typeof fetch = (input, init) => {
      const url = new URL(input instanceof Request ? input.url : String(input));
      if (url.hostname !== 'api.openai.com' && url.hostname !== 'api.anthropic.com') return fetch(input, init);
      const local = new URL(h.provider.url);
      url.protocol = local.protocol;
      url.host = local.host;
      return fetch(url, init);
    };
    h = await createHarness({ deps: { simulatedProviderUrl: undefined, env: { OPENAI_API_KEY: 'sk-real-looking-key-000' }, fetch: toLocal } });
  });
  afterAll(async () => h?.close());

  it('a tier without its key fails with AuthFailed naming it; the next tier answers and the row says which endpoint', async () => {
    const pipeline = {
      ...base,
      providers: [
        { name: 'claude', kind: 'anthropic' as const, model: 'claude-haiku-4-5' },
        { name: 'gpt', kind: 'openai' as const, model: 'gpt-4o-mini' },
      ],
    };
    const summary = await h.run(async () => (await h.startBatch({ pipeline, items })).result());
    expect(summary).toMatchObject({ succeeded: 3, tierUse: { claude: 0, gpt: 3 } });
    const rows = await h.store.list(summary.batchId);
    expect(rows.map((r) => [r.provider, r.endpoint?.vendor, r.endpoint?.host])).toEqual(items.map(() => ['gpt', 'simulated', 'api.openai.com']));

    const only = { ...base, providers: [{ name: 'claude', kind: 'anthropic' as const, model: 'claude-haiku-4-5' }] };
    const s2 = await h.run(async () => (await h.startBatch({ pipeline: only, items: items.slice(0, 1) })).result());
    expect(s2).toMatchObject({ skipped: 1, simulated: 0 });
    const [row] = await h.store.list(s2.batchId);
    expect(row!.error).toMatchObject({ type: 'AuthFailed', message: expect.stringContaining('ANTHROPIC_API_KEY is not set on this worker') });
    expect(row!.endpoint).toBeNull();
  });
});
