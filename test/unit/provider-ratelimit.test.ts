import { describe, expect, it } from 'vitest';
import { rateLimiter, tokenBucket } from '../../src/provider/ratelimit.ts';

/** A virtual clock: tests advance it instead of sleeping. */
function clock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

describe('tokenBucket', () => {
  it('admits the configured rate within 5% over a simulated minute (steady state)', () => {
    const c = clock();
    const b = tokenBucket({ capacity: 600, perMinute: 600, now: c.now });
    while (b.tryTake(1)); // drain the burst first: steady state is what pacing sees
    let admitted = 0;
    for (let ms = 0; ms < 60_000; ms += 5) {
      c.advance(5);
      while (b.tryTake(1)) admitted++;
    }
    expect(Math.abs(admitted - 600) / 600).toBeLessThan(0.05);
  });

  it('reports remaining, wait and reset', () => {
    const c = clock();
    const b = tokenBucket({ capacity: 60, perMinute: 60, now: c.now });
    expect(b.remaining()).toBe(60);
    expect(b.tryTake(60)).toBe(true);
    expect(b.tryTake(1)).toBe(false);
    expect(b.waitMs(1)).toBe(1000);
    expect(b.resetMs()).toBe(60_000);
    c.advance(1000);
    expect(b.remaining()).toBe(1);
    expect(b.waitMs(1)).toBe(0);
  });
});

describe('rateLimiter', () => {
  it('limits requests per minute per model, with 429 timing', () => {
    const c = clock();
    const rl = rateLimiter({ rpm: 120, tpm: 1_000_000, now: c.now });
    let ok = 0;
    for (let i = 0; i < 200; i++) if (rl.admit('a', 10).ok) ok++;
    expect(ok).toBe(120);
    const denied = rl.admit('a', 10);
    expect(denied).toMatchObject({ ok: false, limitedBy: 'requests', retryAfterMs: 500 });
    expect(denied.info).toMatchObject({ limitRequests: 120, remainingRequests: 0, resetRequestsMs: 60_000 });
    expect(rl.admit('b', 10).ok).toBe(true); // buckets are per model
  });

  it('admits the configured tokens per minute within 5% over a simulated minute', () => {
    const c = clock();
    const rl = rateLimiter({ rpm: 1_000_000, tpm: 60_000, now: c.now });
    while (rl.admit('m', 100).ok); // drain the burst
    let tokens = 0;
    for (let ms = 0; ms < 60_000; ms += 10) {
      c.advance(10);
      while (rl.admit('m', 100).ok) tokens += 100;
    }
    expect(Math.abs(tokens - 60_000) / 60_000).toBeLessThan(0.05);
    const denied = rl.admit('m', 100);
    expect(denied).toMatchObject({ ok: false, limitedBy: 'tokens' });
  });

  it('does not charge the request bucket when tokens deny', () => {
    const c = clock();
    const rl = rateLimiter({ rpm: 10, tpm: 100, now: c.now });
    expect(rl.admit('m', 100).ok).toBe(true);
    for (let i = 0; i < 5; i++) expect(rl.admit('m', 50).ok).toBe(false);
    expect(rl.admit('m', 0).info.remainingRequests).toBe(8);
  });

  it('treats an explicit undefined burst as the default minute', () => {
    const c = clock();
    const rl = rateLimiter({ rpm: 30, tpm: 1e9, burstSeconds: undefined, now: c.now });
    let ok = 0;
    while (rl.admit('m', 1).ok) ok++;
    expect(ok).toBe(30);
  });

  it('honours a smaller burst', () => {
    const c = clock();
    const rl = rateLimiter({ rpm: 600, tpm: 1e9, burstSeconds: 1, now: c.now });
    let ok = 0;
    while (rl.admit('m', 1).ok) ok++;
    expect(ok).toBe(10);
  });
});
