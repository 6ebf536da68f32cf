import { describe, expect, it } from 'vitest';
import { activeOutage, decideFault, forcedFault, parseProfile } from '../../src/provider/faults.ts';
import type { FaultProfile } from '../../src/provider/faults.ts';
import { hashHex } from '../../src/provider/hash.ts';
import { resolveProfile } from '../../src/provider/profiles.ts';

const ids = Array.from({ length: 20_000 }, (_, i) => hashHex('item', i).slice(0, 32));

function sequence(profile: FaultProfile, seed: number, attempt = 0): (string | undefined)[] {
  return ids.slice(0, 500).map((identity) => decideFault(profile, { seed, identity, attempt, model: 'gpt-4o-mini' })?.kind);
}

describe('decideFault', () => {
  const flaky = resolveProfile('flaky');

  it('injects the flaky rates on first attempts (within 15% relative)', () => {
    const counts: Record<string, number> = {};
    for (const identity of ids) {
      const k = decideFault(flaky, { seed: 1, identity, attempt: 0, model: 'gpt-4o-mini' })?.kind ?? 'none';
      counts[k] = (counts[k] ?? 0) + 1;
    }
    const expected = { hang: 0.07, rate_limit: 0.03, overloaded: 0.015, bad_json: 0.015, schema_violation: 0.015 };
    for (const [kind, rate] of Object.entries(expected)) {
      expect(Math.abs((counts[kind] ?? 0) / ids.length - rate) / rate, kind).toBeLessThan(0.15);
    }
  });

  it('is reproducible for a seed and differs across seeds', () => {
    expect(sequence(flaky, 42)).toEqual(sequence(flaky, 42));
    expect(sequence(flaky, 42)).not.toEqual(sequence(flaky, 43));
    // A later attempt draws afresh: transient faults do not simply repeat.
    expect(sequence(flaky, 42, 1)).not.toEqual(sequence(flaky, 42, 0));
  });

  it('never injects a transient fault from attempt maxFaultsPerRequest on', () => {
    const always: FaultProfile = { name: 't', faults: [{ kind: 'rate_limit', rate: 1 }] };
    const q = { seed: 0, identity: 'x', model: 'm' };
    expect(decideFault(always, { ...q, attempt: 0 })?.kind).toBe('rate_limit');
    expect(decideFault(always, { ...q, attempt: 1 })?.kind).toBe('rate_limit');
    expect(decideFault(always, { ...q, attempt: 2 })).toBeUndefined();
    expect(decideFault({ ...always, maxFaultsPerRequest: 0 }, { ...q, attempt: 0 })).toBeUndefined();
    expect(decideFault({ ...always, sticky: true }, { ...q, attempt: 50 })?.kind).toBe('rate_limit');
  });

  it('decides permanent faults per identity, on every attempt', () => {
    const p: FaultProfile = { name: 'p', faults: [{ kind: 'auth', rate: 0.2 }] };
    const doomed = ids.filter((identity) => decideFault(p, { seed: 3, identity, attempt: 0, model: 'm' }));
    expect(doomed.length / ids.length).toBeGreaterThan(0.18);
    expect(doomed.length / ids.length).toBeLessThan(0.22);
    for (const identity of doomed.slice(0, 50)) expect(decideFault(p, { seed: 3, identity, attempt: 9, model: 'm' })?.kind).toBe('auth');
  });

  it('scopes faults to models', () => {
    const p: FaultProfile = { name: 's', faults: [{ kind: 'server_error', rate: 1, models: ['gpt-4o'] }] };
    expect(decideFault(p, { seed: 0, identity: 'x', attempt: 0, model: 'gpt-4o' })?.kind).toBe('server_error');
    expect(decideFault(p, { seed: 0, identity: 'x', attempt: 0, model: 'gpt-4o-mini' })).toBeUndefined();
  });
});

describe('outages', () => {
  it('cover their window from activation or from startAt', () => {
    const p = resolveProfile('outage:model=gpt-4o,fromMs=1000,toMs=5000');
    expect(activeOutage(p, 'gpt-4o', 10_500, 10_000)).toBeUndefined();
    expect(activeOutage(p, 'gpt-4o', 11_000, 10_000)?.model).toBe('gpt-4o');
    expect(activeOutage(p, 'gpt-4o-mini', 11_000, 10_000)).toBeUndefined();
    expect(activeOutage(p, 'gpt-4o', 15_000, 10_000)).toBeUndefined();
    const abs = parseProfile({ outages: [{ model: 'm', toMs: 1000, startAt: '2030-01-01T00:00:00Z' }] });
    const t = Date.parse('2030-01-01T00:00:00Z');
    expect(activeOutage(abs, 'm', t + 500, 0)).toBeDefined();
    expect(activeOutage(abs, 'm', t + 1500, 0)).toBeUndefined();
  });
});

describe('forcedFault', () => {
  it('applies one kind per attempt, then repeats the last', () => {
    expect(forcedFault('rate_limit', 5)).toBe('rate_limit');
    expect(forcedFault('rate_limit,reset,none', 0)).toBe('rate_limit');
    expect(forcedFault('rate_limit,reset,none', 1)).toBe('reset');
    expect(forcedFault('rate_limit,reset,none', 7)).toBe('none');
    expect(forcedFault('rate_limt', 0)).toEqual({ error: expect.stringContaining("unknown fault kind 'rate_limt'") });
  });
});

describe('resolveProfile', () => {
  it('reads names with parameters, JSON text and objects', () => {
    expect(resolveProfile('none')).toEqual({ name: 'none' });
    expect(resolveProfile('ratelimit:rpm=60,tpm=1000').rateLimit).toMatchObject({ rpm: 60, tpm: 1000 });
    expect(resolveProfile('flaky:scale=2,sticky=true,hangMs=500')).toMatchObject({ sticky: true, hangMs: 500 });
    expect(resolveProfile('outage').outages).toEqual([{ model: 'gpt-4o-mini', fromMs: 0, toMs: 60_000 }]);
    const json = '{"name":"custom","faults":[{"kind":"rate_limit","rate":0.1,"retryAfterMs":500}],"rateLimit":{"rpm":600,"tpm":100000}}';
    expect(resolveProfile(json).faults).toEqual([{ kind: 'rate_limit', rate: 0.1, retryAfterMs: 500 }]);
    expect(resolveProfile({ name: 'obj', sticky: true }).sticky).toBe(true);
  });

  it('names the bad field', () => {
    expect(() => resolveProfile('nope')).toThrow(/unknown profile 'nope'/);
    expect(() => resolveProfile('outage:rpm=3')).toThrow(/has no parameter 'rpm'/);
    expect(() => resolveProfile('{"faults":[{"kind":"boom","rate":0.1}]}')).toThrow(/faults\.0\.kind/);
    expect(() => resolveProfile('{"faults":[{"kind":"reset","rate":0.7},{"kind":"hang","rate":0.7}]}')).toThrow(/add up to more than 1/);
    expect(() => resolveProfile('{"name":')).toThrow(/does not parse/);
  });

  it('reads the batch knobs from parameters and JSON, and names a bad one', () => {
    expect(resolveProfile('flaky:batchLatencyMs=5000,batchExpireRate=0.2,batchExpireAnswered=0.3,fileUploadErrors=2').batch).toEqual({
      latencyMs: 5000,
      expireRate: 0.2,
      expireAnswered: 0.3,
      fileUploadErrors: 2,
    });
    expect(resolveProfile('{"name":"b","batch":{"maxRequests":10,"maxBytes":1000}}').batch).toEqual({ maxRequests: 10, maxBytes: 1000 });
    expect(() => resolveProfile('none:batchExpireRate=2')).toThrow(/batch\.expireRate/);
    expect(() => resolveProfile('{"batch":{"latency":5}}')).toThrow(/batch: Unrecognized key/);
    expect(() => resolveProfile('{"batch":{"fileUploadErrors":1.5}}')).toThrow(/batch\.fileUploadErrors/);
  });
});
