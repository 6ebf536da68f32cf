/**
 * Every call of an item takes a slot from the batch's shared limiter, not only the one it was
 * dispatched with: schema repairs, Temporal's retries after a transient failure and the later
 * steps of a multi-step item ask the batch (`itemCallSlot`) and send at their permit's time.
 * The worker's fetch records when each request to the limited model leaves; the provider, a real
 * token bucket with one second of burst, answers 429 past the limit.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BatchInputRaw } from '../../src/shared/spec.ts';
import { createHarness } from '../support/harness.ts';
import type { Harness } from '../support/harness.ts';

const RPM = 120;
/** The limiter's spacing at 97% of the limit, in ms (about 515). */
const SPACING_MS = 60_000 / (RPM * 0.97);

/** The most requests any window of `ms` holds. */
function densest(times: number[], ms: number): number {
  const t = [...times].sort((a, b) => a - b);
  let most = 0;
  for (let i = 0, j = 0; i < t.length; i++) {
    while (t[i]! - t[j]! >= ms) j++;
    most = Math.max(most, i - j + 1);
  }
  return most;
}

describe('call slots', () => {
  let h: Harness;
  /** Send times of the requests, by model. */
  const sent: { model: string; at: number }[] = [];
  const timesOf = (model: string, from: number): number[] => sent.filter((s) => s.model === model && s.at >= from).map((s) => s.at);

  beforeAll(async () => {
    h = await createHarness({
      deps: {
        fetch: (input, init) => {
          const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
          if (/\/(chat\/completions|messages)$/.test(url) && typeof init?.body === 'string')
            sent.push({ model: (JSON.parse(init.body) as { model: string }).model, at: Date.now() });
          return fetch(input, init);
        },
      },
    });
    h.provider.setProfile(`ratelimit:rpm=${RPM},tpm=10000000,burstSeconds=1`);
  });
  afterAll(async () => h?.close());

  it('paces repairs and retries with the first calls, under the key limit', async () => {
    const example = JSON.parse(readFileSync('examples/batch.json', 'utf8')) as BatchInputRaw;
    const tier = { ...example.pipeline.providers[0]!, rateLimit: { requestsPerMinute: RPM } };
    // Every item's first answer breaks the schema (one repair each); three first calls fail with a 500 (one retry each).
    const items = Array.from({ length: 9 }, (_, i) => ({
      id: `r${i}`,
      customer: 'Initech',
      text: `Invoice ${i} was charged twice. ${i % 3 === 0 ? '[[fault:server_error,schema_violation]]' : '[[fault:schema_violation]]'}`,
    }));
    const input: BatchInputRaw = {
      pipeline: {
        ...example.pipeline,
        providers: [tier],
        batch: { concurrency: 10 },
        retry: { maxAttempts: 4, initialInterval: '100ms', maxInterval: '1s', backoffCoefficient: 2 },
      },
      items,
    };
    h.provider.reset();
    const t0 = Date.now();
    const summary = await h.run(async () => (await h.startBatch(input, `slots-repair-${t0}`)).result());
    expect(summary).toMatchObject({ total: 9, succeeded: 9, failed: 0 });
    const times = timesOf(tier.model, t0);
    // 9 first calls, 9 repairs, 3 retries.
    expect(times).toHaveLength(21);
    // Evenly spaced at the limiter's pace: no window of 3 s holds more than the pace allows (5.8) plus two
    // sent late by a loaded worker. Before every call took a slot, each repair and retry went right after
    // its call: 11 in a window of 2 s.
    expect(densest(times, 3_000)).toBeLessThanOrEqual(Math.floor(3_000 / SPACING_MS) + 2);
    // 21 requests at 1.94 a second take 10 s or more.
    expect(Math.max(...times) - Math.min(...times)).toBeGreaterThan(19 * SPACING_MS * 0.9);
    // The provider's one-second bucket saw no burst: no 429 on a quiet machine (one, healed, when a loaded worker sends late).
    expect(h.provider.stats().byStatus['429'] ?? 0).toBeLessThanOrEqual(1);
  }, 90_000);

  it("paces a multi-step item's later steps on the limited key, not a step on another key", async () => {
    const invoices = JSON.parse(readFileSync('examples/invoices-batch.json', 'utf8')) as BatchInputRaw;
    const first = { ...invoices.pipeline.providers[0]!, rateLimit: { requestsPerMinute: RPM } };
    const input: BatchInputRaw = {
      ...invoices,
      pipeline: { ...invoices.pipeline, providers: [first, ...invoices.pipeline.providers.slice(1)], batch: { concurrency: 10 } },
      items: invoices.items!.slice(0, 6),
    };
    h.provider.reset();
    const t0 = Date.now();
    const summary = await h.run(async () => (await h.startBatch(input, `slots-steps-${t0}`)).result());
    expect(summary.failed).toBe(0);
    const times = timesOf(first.model, t0);
    // Two steps (extract, classify) on the limited key per item.
    expect(times.length).toBeGreaterThanOrEqual(12);
    // Before, 9 in a window of 2 s.
    expect(densest(times, 3_000)).toBeLessThanOrEqual(Math.floor(3_000 / SPACING_MS) + 2);
    expect(h.provider.stats().byStatus['429'] ?? 0).toBeLessThanOrEqual(1);
  }, 90_000);
});
