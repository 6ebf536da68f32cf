/**
 * `callLlm` end to end: MockActivityEnvironment, the real OpenAI and Anthropic
 * SDK clients, and the fault-injecting provider forcing each fault with the
 * `x-steadfast-fault` header. Every failure class is checked for its type,
 * `nonRetryable`, and (for 429s) a `nextRetryDelay` equal to the header sent.
 */
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';
import { FailureType } from '../../src/shared/failures.ts';
import { PipelineSpec, ProviderSpec } from '../../src/shared/spec.ts';
import type { ProviderSpecInput } from '../../src/shared/spec.ts';
import type { InvalidOutputDetails, LlmRequest, LlmResult } from '../../src/shared/types.ts';
import { labelSchema, TEST_PRICING, useActivityRig } from '../support/activity-rig.ts';

const schema = labelSchema(['ok', 'broken', 'late']);
const output = PipelineSpec.shape.output.parse({ format: 'json', schema });
const pricing = TEST_PRICING;

const rig = useActivityRig(1);

function spec(p: Partial<ProviderSpecInput> = {}): ProviderSpec {
  return ProviderSpec.parse({ kind: 'openai', model: 'gpt-4o-mini', timeout: '5s', pricing, ...p });
}
function request(p: ProviderSpec, text = `Classify item ${Math.random().toString(36).slice(2, 8)}: parcel arrived`, out = output): LlmRequest {
  return {
    batchId: 'b',
    itemId: 'i',
    tier: 0,
    provider: p,
    messages: [
      { role: 'system', content: 'You classify parcels. Answer in JSON.' },
      { role: 'user', content: text },
    ],
    output: out,
  };
}
const activityEnv = (attempt = 1): MockActivityEnvironment =>
  new MockActivityEnvironment(
    {
      attempt,
      startToCloseTimeoutMs: 60_000,
      heartbeatTimeoutMs: 30_000,
      retryPolicy: { initialInterval: 1000, backoffCoefficient: 2, maximumInterval: 60_000, maximumAttempts: 5 },
    },
    { logger: new DefaultLogger('ERROR') },
  );

async function failure(p: Promise<unknown>): Promise<ApplicationFailure> {
  try {
    await p;
  } catch (err: unknown) {
    if (err instanceof ApplicationFailure) return err;
    throw err;
  }
  throw new Error('expected callLlm to fail');
}

const kinds = [
  ['openai', 'gpt-4o-mini'],
  ['anthropic', 'claude-3-5-haiku-latest'],
] as const;

describe.each(kinds)('callLlm against the fault provider (%s)', (kind, model) => {
  const p = (over: Partial<ProviderSpecInput> = {}) => spec({ kind, model, ...over });

  it('succeeds with validated JSON, usage, cost, model and latency', async () => {
    const env = activityEnv();
    const beats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => beats.push(d));
    const r: LlmResult = await env.run(rig.acts.callLlm, request(p()));
    expect(r.json).toEqual({ label: expect.any(String), score: expect.any(Number) });
    expect(JSON.parse(r.text)).toEqual(r.json);
    expect(r.finishReason).toBe('stop');
    expect(r.model).toBe(model);
    expect(r.attempt).toBe(1);
    expect(r.usage.inputTokens).toBeGreaterThan(5);
    expect(r.usage.outputTokens).toBeGreaterThan(0);
    expect(r.costUsd).toBeCloseTo((r.usage.inputTokens * 0.15 + r.usage.outputTokens * 0.6) / 1e6, 12);
    expect(r.latencyMs).toBeGreaterThanOrEqual(0);
    expect(beats.length).toBeGreaterThan(0);
  });

  it('returns plain text when the output format is text', async () => {
    const r: LlmResult = await activityEnv().run(rig.acts.callLlm, request(p(), 'Hello there item 5', { format: 'text' }));
    expect(r.text).toMatch(/^Answer for: Hello there item 5/);
    expect(r.json).toBeUndefined();
  });

  const cases: [string, FailureType, boolean][] = [
    ['auth', FailureType.AuthFailed, true],
    ['insufficient_quota', FailureType.QuotaExhausted, true],
    ['context_length', FailureType.ContextWindowExceeded, true],
    ['server_error', FailureType.ProviderUnavailable, false],
    ['unavailable', FailureType.ProviderUnavailable, false],
    ['overloaded', kind === 'anthropic' ? FailureType.ProviderOverloaded : FailureType.ProviderUnavailable, false],
    ['reset', FailureType.ConnectionFailed, false],
    ['refusal', FailureType.ContentRefused, true],
    ['truncated', FailureType.OutputTruncated, true],
    ['bad_json', FailureType.InvalidOutput, true],
    ['schema_violation', FailureType.InvalidOutput, true],
  ];

  it.each(cases)('fault %s -> %s (nonRetryable %s)', async (f, type, nonRetryable) => {
    rig.fault = f;
    const e = await failure(activityEnv(2).run(rig.acts.callLlm, request(p())));
    expect(e.type).toBe(type);
    expect(Boolean(e.nonRetryable)).toBe(nonRetryable);
    if (nonRetryable) expect(e.nextRetryDelay).toBeUndefined();
    // No header gave a delay: a jittered backoff of attempt 2 (2 s +- 20%) under the mock policy.
    else {
      expect(Number(e.nextRetryDelay)).toBeGreaterThanOrEqual(1600);
      expect(Number(e.nextRetryDelay)).toBeLessThanOrEqual(2400);
    }
  });

  it('rate_limit -> RateLimited with nextRetryDelay equal to the header', async () => {
    rig.provider.setProfile({ name: 'slow-429', retryAfterMs: 2500 });
    rig.fault = 'rate_limit';
    const e = await failure(activityEnv(3).run(rig.acts.callLlm, request(p())));
    expect(e.type).toBe(FailureType.RateLimited);
    expect(e.nonRetryable).toBe(false);
    const expected = kind === 'openai' ? Number(rig.lastHeaders?.get('retry-after-ms')) : Number(rig.lastHeaders?.get('retry-after')) * 1000;
    expect(expected).toBe(kind === 'openai' ? 2500 : 3000);
    expect(e.nextRetryDelay).toBe(expected);
    expect(e.details?.[0]).toMatchObject({ status: 429, retryAfterMs: expected, remainingRequests: 0 });
  });

  it('a real token bucket 429 carries the provider-computed wait', async () => {
    rig.provider.setProfile('ratelimit:rpm=1,tpm=100000,burstSeconds=1');
    await activityEnv().run(rig.acts.callLlm, request(p()));
    const e = await failure(activityEnv().run(rig.acts.callLlm, request(p())));
    expect(e.type).toBe(FailureType.RateLimited);
    const header = kind === 'openai' ? Number(rig.lastHeaders?.get('retry-after-ms')) : Number(rig.lastHeaders?.get('retry-after')) * 1000;
    expect(header).toBeGreaterThan(0);
    expect(e.nextRetryDelay).toBe(header);
  });

  it('InvalidOutput carries the text, the errors with paths and the usage', async () => {
    rig.fault = 'schema_violation';
    const e = await failure(activityEnv().run(rig.acts.callLlm, request(p())));
    const d = e.details?.[0] as InvalidOutputDetails;
    expect(typeof d.text).toBe('string');
    expect(d.errors.length).toBeGreaterThan(0);
    expect(d.errors.every((x) => x.startsWith('$'))).toBe(true);
    expect(d.usage.inputTokens).toBeGreaterThan(0);
  });

  it('OutputTruncated and ContentRefused carry the partial text and usage', async () => {
    rig.fault = 'truncated';
    const t = await failure(activityEnv().run(rig.acts.callLlm, request(p())));
    expect((t.details?.[0] as InvalidOutputDetails).usage.outputTokens).toBeGreaterThan(0);
    expect((t.details?.[0] as InvalidOutputDetails).text.length).toBeGreaterThan(0);
    rig.fault = 'refusal';
    const r = await failure(activityEnv().run(rig.acts.callLlm, request(p())));
    expect((r.details?.[0] as InvalidOutputDetails).text).toMatch(/can't help/);
  });

  it('a hang -> Timeout after the per-attempt timeout', async () => {
    rig.fault = 'hang';
    const t0 = Date.now();
    const e = await failure(activityEnv().run(rig.acts.callLlm, request(p({ timeout: '400ms' }))));
    expect(e.type).toBe(FailureType.Timeout);
    expect(e.nonRetryable).toBe(false);
    expect(Date.now() - t0).toBeLessThan(5_000);
  });

  it('the per-attempt timeout grows with the attempt', async () => {
    rig.fault = 'hang';
    const t0 = Date.now();
    await failure(activityEnv(3).run(rig.acts.callLlm, request(p({ timeout: '200ms', timeoutGrowth: 2 }))));
    expect(Date.now() - t0).toBeGreaterThanOrEqual(750);
  });

  it('an unknown model -> ModelNotFound', async () => {
    const e = await failure(activityEnv().run(rig.acts.callLlm, request(p({ model: 'no-such-model' }))));
    expect(e.type).toBe(FailureType.ModelNotFound);
    expect(e.nonRetryable).toBe(true);
  });

  it('a prompt over the window -> ContextWindowExceeded (no forced fault)', async () => {
    const big = `Classify item 9: ${'lorem ipsum '.repeat(2000)}`;
    const e = await failure(activityEnv().run(rig.acts.callLlm, request(p({ model: 'small-4k' }), big)));
    expect(e.type).toBe(FailureType.ContextWindowExceeded);
  });

  it('cancellation during a hang -> CancelledFailure, promptly', async () => {
    rig.fault = 'hang';
    const env = activityEnv();
    const run = env.run(rig.acts.callLlm, request(p({ timeout: '30s' })));
    setTimeout(() => env.cancel(), 200);
    await expect(run).rejects.toBeInstanceOf(CancelledFailure);
  });
});

describe('endpoint resolution', () => {
  it('uses the spec baseURL (openai-compatible) and a connection error is ConnectionFailed', async () => {
    const ok: LlmResult = await activityEnv().run(
      rig.acts.callLlm,
      request(spec({ kind: 'openai-compatible', model: 'small-4k', baseURL: `${rig.provider.url}/v1` }), 'item 3 here', { format: 'text' }),
    );
    expect(ok.model).toBe('small-4k');
    const e = await failure(activityEnv().run(rig.acts.callLlm, request(spec({ kind: 'openai-compatible', model: 'small-4k', baseURL: 'http://127.0.0.1:1/v1' }))));
    expect(e.type).toBe(FailureType.ConnectionFailed);
  });

  it('an invalid schema fails at once as InvalidSpec', async () => {
    const e = await failure(activityEnv().run(rig.acts.callLlm, request(spec(), 'item 1', { format: 'json', schema: { type: 'nonsense' } })));
    expect(e.type).toBe(FailureType.InvalidSpec);
    expect(e.nonRetryable).toBe(true);
  });
});
