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
