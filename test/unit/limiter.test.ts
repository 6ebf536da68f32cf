/**
 * The shared limiter's state (workflows/limiter-state.ts), the adaptive
 * concurrency rule (workflows/aimd.ts) and the limiter's id, driven by a virtual clock.
 */
import { describe, expect, it } from 'vitest';
import { hostOf, limiterIdOf } from '../../src/shared/limiter.ts';
import { acquire, backOff, grant, HORIZON_MS, LIMITER_TARGET, limitsOf, newLimiter, nextRoundIn, release, RESTART_LEAD_MS, view } from '../../workflows/limiter-state.ts';
import type { LimiterState } from '../../workflows/limiter-state.ts';
import { allowed, DECREASE, newAimd, onShed, onSuccess } from '../../workflows/aimd.ts';

const T0 = 1_700_000_000_000;

/** Runs rounds for `ms` of virtual time as the limiter workflow does; batches always want `want`. Returns every slot by batch. */
function simulate(
  s: LimiterState,
  ms: number,
  want: Record<string, number>,
  limit: { requestsPerMinute?: number; tokensPerMinute?: number } = { requestsPerMinute: 300 },
  tokens = 100,
) {
  const slots: Record<string, number[]> = Object.fromEntries(Object.keys(want).map((k) => [k, []]));
  let now = T0;
  for (const [client, w] of Object.entries(want)) s = acquire(s, { client, want: w, tokensPerRequest: tokens, limit }, now);
  while (now < T0 + ms) {
    const r = grant(s, now);
    s = r.state;
    for (const [c, got] of Object.entries(r.grants)) {
      slots[c]!.push(...got);
      // The batch starts its items and asks again for its full want.
      s = acquire(s, { client: c, want: want[c]!, tokensPerRequest: tokens, limit }, now);
    }
    // Workflow timers fire late: up to a second after they were due.
    now += (nextRoundIn(s, now) ?? 1_000) + 900;
  }
  const all = Object.values(slots)
    .flat()
    .sort((a, b) => a - b);
  const inMinute = all.filter((t) => t >= T0 + 1_000 && t < T0 + 61_000).length;
  const gaps = all.slice(1).map((t, i) => t - all[i]!);
  return { s, slots, all, inMinute, minGap: Math.min(...gaps) };
}

describe('limiter state', () => {
  it('schedules three batches on one key at the limit together, evenly spaced, in equal shares', () => {
    const r = simulate(newLimiter('l', T0), 70_000, { a: 50, b: 50, c: 50 });
    const paced = 300 * LIMITER_TARGET;
    expect(r.inMinute).toBeGreaterThanOrEqual(Math.floor(paced) - 1);
    expect(r.inMinute).toBeLessThanOrEqual(Math.ceil(paced) + 1);
    // Never two requests closer than the paced spacing, however late the rounds ran.
    expect(r.minGap).toBeGreaterThanOrEqual(Math.floor(60_000 / paced));
    for (const k of ['a', 'b', 'c']) expect(r.slots[k]!.length).toBeGreaterThanOrEqual(Math.floor(r.all.length / 3) - 1);
  });

  it('gives a batch no more than it asked for, and the rest to the others', () => {
    const r = simulate(newLimiter('l', T0), 30_000, { small: 1, big: 50 });
    expect(r.slots['small']!.length).toBeGreaterThan(0);
    expect(r.slots['big']!.length).toBeGreaterThan(r.slots['small']!.length);
    expect(r.minGap).toBeGreaterThanOrEqual(Math.floor(60_000 / (300 * LIMITER_TARGET)));
  });

  it('does not catch up in a burst after a quiet spell', () => {
    const s = acquire(newLimiter('l', T0), { client: 'a', want: 100, tokensPerRequest: 10, limit: { requestsPerMinute: 600 } }, T0);
    const { grants } = grant(s, T0 + 10 * 60_000);
    const slots = grants['a']!;
    expect(slots[0]).toBe(T0 + 10 * 60_000 + RESTART_LEAD_MS);
    expect(slots.length).toBeLessThanOrEqual(Math.ceil((HORIZON_MS / 60_000) * 600) + 1);
    expect(slots[1]! - slots[0]!).toBeGreaterThanOrEqual(Math.floor(60_000 / (600 * LIMITER_TARGET)));
  });

  it('paces by tokens per minute when that limit binds', () => {
    const r = simulate(newLimiter('l', T0), 70_000, { a: 50, b: 50, c: 50 }, { requestsPerMinute: 10_000, tokensPerMinute: 60_000 }, 1_000);
    expect(limitsOf(r.s).tpm).toBeCloseTo(60_000 * LIMITER_TARGET);
    // 60,000 tokens a minute at 1,000 a request: about 58 requests in a minute.
    expect(r.inMinute).toBeGreaterThanOrEqual(56);
    expect(r.inMinute).toBeLessThanOrEqual(59);
    for (const k of ['a', 'b', 'c']) expect(r.slots[k]!.length).toBeGreaterThanOrEqual(18);
  });

  it('takes the tighter of the spec and the limits the provider advertised', () => {
    const s = acquire(newLimiter('l', T0), { client: 'a', want: 1, tokensPerRequest: 1, limit: { requestsPerMinute: 600 }, learned: { requestsPerMinute: 120 } }, T0);
    expect(limitsOf(s).rpm).toBeCloseTo(120 * LIMITER_TARGET);
  });

  it('forgets a batch that ends', () => {
    let s = acquire(newLimiter('l', T0), { client: 'a', want: 5, tokensPerRequest: 1, limit: { requestsPerMinute: 600 } }, T0);
    s = grant(s, T0 + 1_000).state;
    s = release(s, 'a', 3, T0 + 1_000);
    expect(s.clients['a']).toBeUndefined();
    expect(s.returned).toBe(3);
    expect(nextRoundIn(s, T0 + 1_000)).toBeNull();
    expect(view(s, T0 + 1_000).clients).toEqual([]);
  });

  it('backs off after reported 429s, once per hold, and grows back', () => {
    let s = acquire(newLimiter('l', T0), { client: 'a', want: 5, tokensPerRequest: 1, limit: { requestsPerMinute: 600 }, shed: 3 }, T0);
    expect(s.backoff).toBeLessThan(1);
    const once = s.backoff;
    s = backOff(s, T0 + 500);
    expect(s.backoff).toBe(once);
    expect(limitsOf(s).rpm!).toBeLessThan(600 * LIMITER_TARGET);
    s = grant(s, T0 + 60_000).state;
    expect(s.backoff).toBe(1);
  });

  it('after a restart, schedules after the latest slot each batch says it was granted', () => {
    // The old limiter handed out slots up to the horizon; its state is lost.
    let s = newLimiter('k', T0);
    const limit = { requestsPerMinute: 300 };
    s = acquire(s, { client: 'a', want: 10, tokensPerRequest: 100, limit, lastSlot: T0 + 3_000 }, T0);
    const first = grant(s, T0).grants['a']!;
    expect(first[0]).toBeGreaterThanOrEqual(T0 + 3_000 + (60_000 / (300 * LIMITER_TARGET)) * 0.99);
    // A slot from the past (or one the running limiter already scheduled past) changes nothing.
    let t = newLimiter('k', T0);
    t = acquire(t, { client: 'a', want: 10, tokensPerRequest: 100, limit, lastSlot: T0 - 60_000 }, T0);
    expect(grant(t, T0).grants['a']![0]).toBe(T0 + RESTART_LEAD_MS);
    // A send time beyond the horizon is a clock problem, not a slot the old limiter handed out.
    let u = newLimiter('k', T0);
    u = acquire(u, { client: 'a', want: 10, tokensPerRequest: 100, limit, lastSlot: T0 + 600_000 }, T0);
    expect(u.tat).toBeLessThanOrEqual(T0 + HORIZON_MS + 1_000);
  });

  it('runs a round when the schedule handed out runs short, at most every 200 ms', () => {
    let s = acquire(newLimiter('l', T0), { client: 'a', want: 500, tokensPerRequest: 1, limit: { requestsPerMinute: 60 } }, T0);
    s = grant(s, T0).state;
    // Slots to 4 s ahead at one a second: the next round when about 2.5 s of them are left.
    expect(nextRoundIn(s, T0)).toBeGreaterThanOrEqual(1_500);
    const m = { client: 'a', want: 1, tokensPerRequest: 1, limit: { requestsPerMinute: 60_000 } };
    s = grant(acquire(newLimiter('l', T0), m, T0), T0).state;
    expect(nextRoundIn(acquire(s, m, T0), T0)).toBe(200);
  });
});

describe('limiter id', () => {
  it('is the same for the same key and differs by host, key variable and model', () => {
    const base = { kind: 'openai', model: 'gpt-4o-mini', baseURL: 'https://api.example.com/v1', apiKeyEnv: 'TEAM_A_KEY' };
    const id = limiterIdOf(base, 'q');
    expect(id).toMatch(/^steadfast-limiter-[0-9a-f]{16}$/);
    expect(limiterIdOf({ ...base, baseURL: 'https://API.example.com/v2' }, 'q')).toBe(id);
    expect(limiterIdOf({ ...base, apiKeyEnv: 'TEAM_B_KEY' }, 'q')).not.toBe(id);
    expect(limiterIdOf({ ...base, baseURL: 'https://other.example.com/v1' }, 'q')).not.toBe(id);
    expect(limiterIdOf({ ...base, model: 'gpt-4o' }, 'q')).not.toBe(id);
    expect(limiterIdOf(base, 'other-queue')).not.toBe(id);
    expect(id).not.toContain('TEAM_A_KEY');
    expect(hostOf('http://user:pw@127.0.0.1:8080/v1')).toBe('127.0.0.1:8080');
  });
});

describe('adaptive concurrency (AIMD)', () => {
  it('cuts the limit on a shed call, once per hold, and grows it back by about one per round', () => {
    let s = newAimd(40);
    s = onShed(s, T0);
    expect(s.limit).toBeCloseTo(40 * DECREASE);
    s = onShed(s, T0 + 100);
    expect(s.limit).toBeCloseTo(40 * DECREASE);
    s = onShed(s, T0 + 1_500);
    expect(s.limit).toBeCloseTo(40 * DECREASE * DECREASE);
    // Back to near the ceiling fast (about one per round of calls), then slowly past it.
    const low = allowed(s, 40);
    for (let i = 0; i < low * 3; i++) s = onSuccess(s, 100, 40, T0 + 3_000 + i);
    expect(allowed(s, 40)).toBeGreaterThanOrEqual(low + 2);
    expect(s.ceiling).toBeCloseTo(40 * DECREASE);
    for (let i = 0; i < 200; i++) s = onSuccess(s, 100, 40, T0 + 5_000 + i);
    expect(s.limit).toBeLessThan(40 * DECREASE + 1.1);
    for (let i = 0; i < 20_000; i++) s = onSuccess(s, 100, 40, T0 + 10_000 + i);
    expect(s.ceiling).toBeNull();
    expect(allowed(s, 40)).toBe(40);
  });

  it('never goes under one call', () => {
    let s = newAimd(4);
    for (let i = 0; i < 20; i++) s = onShed(s, T0 + i * 10_000);
    expect(allowed(s, 4)).toBe(1);
  });

  it('cuts the limit when latency doubles, not for noise on fast calls', () => {
    let s = newAimd(20);
    for (let i = 0; i < 50; i++) s = onSuccess(s, 3 + (i % 3) * 40, 20, T0 + i);
    expect(s.decreases).toBe(0);
    let slow = newAimd(20);
    for (let i = 0; i < 50; i++) slow = onSuccess(slow, 1_000 + (i % 5) * 100, 20, T0 + i * 50);
    expect(slow.decreases).toBe(0);
    for (let i = 0; i < 30; i++) slow = onSuccess(slow, 3_000, 20, T0 + 20_000 + i * 100);
    s = slow;
    expect(s.decreases).toBeGreaterThan(0);
    expect(allowed(s, 20)).toBeLessThan(20);
  });
});

/**
 * A batch with adaptive concurrency against a provider that serves `capacity(t)` calls at once
 * (`latencyMs` each) and sheds the rest with a 429 that the item retries `retryMs` later (it keeps
 * its slot meanwhile). Each item spends `overheadMs` between taking a slot and reaching the
 * provider (child start, workflow task, activity task), as on a real worker. Ticks of 10 ms.
 */
function simulateAimd(o: {
  whole: boolean;
  /** A retry waits until the calls of the batch's other items are under the limit (the batch's call-slot admission). */
  admit: boolean;
  seconds: number;
  capacity: (t: number) => number;
  latencyMs?: number;
  overheadMs?: number;
  retryMs?: number;
}) {
  const latencyMs = o.latencyMs ?? 2_000;
  const overheadMs = o.overheadMs ?? 300;
  const retryMs = o.retryMs ?? 1_000;
  const max = 20;
  let s = { ...newAimd(max), ...(o.whole ? { whole: true } : {}) };
  // Each item holding a slot: when it reaches the provider next, and when its call there ends (null: not at the provider).
  let items: { arrive: number; ends: number | null; retry?: boolean }[] = [];
  const sheds: number[] = [];
  const limits: number[] = [];
  for (let t = 0; t < o.seconds * 1_000; t += 10) {
    const now = T0 + t;
    const done = items.filter((x) => x.ends !== null && x.ends <= t).length;
    for (let i = 0; i < done; i++) s = onSuccess(s, latencyMs, max, now);
    items = items.filter((x) => x.ends === null || x.ends > t);
    while (items.length < allowed(s, max)) items.push({ arrive: t + overheadMs, ends: null });
    for (const it of items.filter((x) => x.ends === null && x.arrive <= t)) {
      const waiting = items.filter((x) => x.ends === null && x.retry && x.arrive <= t).length;
      if (o.admit && it.retry && items.length - waiting >= allowed(s, max)) continue;
      if (items.filter((x) => x.ends !== null).length >= o.capacity(t / 1_000)) {
        sheds.push(t / 1_000);
        s = onShed(s, now);
        it.arrive = t + retryMs;
        it.retry = true;
      } else it.ends = t + latencyMs;
    }
    if (t % 1_000 === 0) limits.push(allowed(s, max));
  }
  return { sheds, limits };
}

describe('adaptive concurrency against a provider of fixed capacity', () => {
  const halved = (t: number): number => (t < 30 ? 12 : t < 150 ? 6 : 12);

  it('probes a capacity that did not move at most twice a minute, counting whole calls', () => {
    const { sheds, limits } = simulateAimd({ whole: true, admit: true, seconds: 210, capacity: halved });
    // Settled at the halved capacity (6 at the provider, 7 items with their overhead): sheds in the two steady minutes.
    const steady = sheds.filter((t) => t >= 45 && t < 150);
    expect(steady.length).toBeLessThanOrEqual(4);
    expect(steady.length).toBeGreaterThanOrEqual(2);
    // About 3 answers a second, so fewer than 2% of calls are shed.
    expect(steady.length / (105 * 3)).toBeLessThan(0.02);
    // It still finds the capacity again when it comes back: 11 or more calls within 45 s.
    expect(Math.max(...limits.slice(150, 195))).toBeGreaterThanOrEqual(11);
    // And the limit stays near the capacity while halved (never above 7 items in the steady minutes).
    expect(Math.max(...limits.slice(45, 150))).toBeLessThanOrEqual(8);
    expect(Math.min(...limits.slice(45, 150))).toBeGreaterThanOrEqual(5);
  });

  it('before whole-call probing: a ceiling of 7.3 calls let the limit reach 7 again within seconds', () => {
    const { sheds } = simulateAimd({ whole: false, admit: false, seconds: 210, capacity: halved });
    // A probe every 4 to 16 s, and the shed call's retry went out while the batch was over its cut limit: shed too.
    const steady = sheds.filter((t) => t >= 45 && t < 150);
    expect(steady.length).toBeGreaterThan(12);
  });

  it('without the call-slot admission, each probe costs two sheds: the shed call retries while the batch is over its cut limit', () => {
    const { sheds } = simulateAimd({ whole: true, admit: false, seconds: 210, capacity: halved });
    const steady = sheds.filter((t) => t >= 45 && t < 150);
    expect(steady.length).toBeGreaterThanOrEqual(6);
  });
});
