/**
 * The durable policies as pure functions: the circuit breaker's state machine
 * and the dispatch pacer's token bucket, driven by a virtual clock.
 */
import { describe, expect, it } from 'vitest';
import { allows, closedCircuit, onFailure, onSuccess, tick, withProbe } from '../../workflows/circuit.ts';
import { available, itemsPerMinute, newPacer, PACE_TARGET, refill, take, waitMs } from '../../workflows/pacer.ts';

describe('circuit breaker', () => {
  const o = { failureThreshold: 3, cooldownMs: 60_000 };

  it('opens after N consecutive failures, not before, and a success resets the count', () => {
    let c = onFailure(onFailure(closedCircuit(), 0, o), 0, o);
    expect(c).toMatchObject({ state: 'closed', failures: 2 });
    c = onSuccess(c);
    expect(c.failures).toBe(0);
    c = [1, 2, 3].reduce((s) => onFailure(s, 1_000, o), c);
    expect(c).toMatchObject({ state: 'open', openUntil: 61_000, opened: 1 });
    expect(allows(c, 'x')).toBe(false);
  });

  it('half-opens after the cool-down with exactly one probe', () => {
    let c = [1, 2, 3].reduce((s) => onFailure(s, 0, o), closedCircuit());
    expect(tick(c, 59_999).state).toBe('open');
    c = tick(c, 60_000);
    expect(c).toMatchObject({ state: 'half_open', probe: null });
    c = withProbe(c, 'item-1');
    expect(withProbe(c, 'item-2').probe).toBe('item-1');
    expect(allows(c, 'item-1')).toBe(true);
    expect(allows(c, 'item-2')).toBe(false);
  });

  it("closes on the probe's success and re-opens on its failure", () => {
    const half = withProbe(
      tick(
        [1, 2, 3].reduce((s) => onFailure(s, 0, o), closedCircuit()),
        60_000,
      ),
      'p',
    );
    expect(onSuccess(half)).toMatchObject({ state: 'closed', failures: 0, probe: null });
    expect(onFailure(half, 70_000, o)).toMatchObject({ state: 'open', openUntil: 130_000, opened: 2 });
  });

  it('is a plain record that survives JSON (continue-as-new)', () => {
    const c = [1, 2, 3].reduce((s) => onFailure(s, 5, o), closedCircuit());
    expect(JSON.parse(JSON.stringify(c))).toEqual(c);
  });
});

describe('pacer', () => {
  it('derives items per minute from requests and tokens per minute', () => {
    expect(itemsPerMinute(undefined, 100)).toBeNull();
    expect(itemsPerMinute({ requestsPerMinute: 600 }, 100)).toBeCloseTo(600 * PACE_TARGET);
    expect(itemsPerMinute({ requestsPerMinute: 600, tokensPerMinute: 30_000 }, 100)).toBeCloseTo(300 * PACE_TARGET);
  });

  it('admits the configured rate over a simulated minute, without bursts', () => {
    let p = newPacer(600, 0);
    let started = 0;
    for (let t = 0; t <= 60_000; t += 100) {
      p = refill(p, t);
      const n = available(p, 1_000);
      expect(n).toBeLessThanOrEqual(20); // never more than 2 s of budget at once
      p = take(p, n);
      started += n;
    }
    expect(started).toBeGreaterThanOrEqual(595);
    expect(started).toBeLessThanOrEqual(601);
  });

  it('says how long to wait for the next slot', () => {
    const p = take(refill(newPacer(60, 0), 0), 1);
    expect(waitMs(p)).toBe(1_000);
    expect(waitMs(newPacer(null, 0))).toBe(0);
    expect(available(newPacer(null, 0), 7)).toBe(7);
  });
});

describe('pacing limits', () => {
  it('takes the tighter of the spec and the provider headers, field by field', async () => {
    const { effectiveLimit } = await import('../../workflows/pacer.ts');
    expect(effectiveLimit(undefined, undefined)).toBeUndefined();
    expect(effectiveLimit({ requestsPerMinute: 600 }, undefined)).toEqual({ requestsPerMinute: 600, tokensPerMinute: undefined });
    expect(effectiveLimit({ requestsPerMinute: 600 }, { requestsPerMinute: 500, tokensPerMinute: 90_000 })).toEqual({ requestsPerMinute: 500, tokensPerMinute: 90_000 });
    expect(effectiveLimit(undefined, { requestsPerMinute: 3_000 })).toEqual({ requestsPerMinute: 3_000, tokensPerMinute: undefined });
  });
});
