/**
 * The item's chain walker decides what follows a failed call with one pure
 * function; every row here is a failure, the counters so far and the spec.
 */
import { describe, expect, it } from 'vitest';
import { FailureType } from '../../src/shared/failures.ts';
import { MAX_REFITS, nextStep } from '../../workflows/item-run.ts';
import type { CallError, NextStep } from '../../workflows/item-run.ts';

const invalid: CallError = { type: FailureType.InvalidOutput, message: 'bad', details: { text: '{}', errors: ['/x: required'], usage: { inputTokens: 10, outputTokens: 5 } } };
const overflow: CallError = { type: FailureType.ContextWindowExceeded, message: 'too long' };
const spec = (maxRepairs: number, strategy: 'truncate' | 'fail' | 'larger-model' = 'truncate') =>
  ({ repair: { maxRepairs }, truncation: { strategy } }) as Parameters<typeof nextStep>[2];
const counters = (repairs = 0, refits = 0, reserve = 1000) => ({ repairs, refits, reserve });
const tier = (lastTier = false, contextWindow = 8000) => ({ contextWindow, lastTier });

describe('nextStep', () => {
  const rows: [string, CallError, ReturnType<typeof counters>, ReturnType<typeof spec>, ReturnType<typeof tier>, NextStep][] = [
    ['invalid output, repairs left: repair', invalid, counters(0), spec(2), tier(), { kind: 'repair' }],
    ['invalid output, last repair used: next tier', invalid, counters(2), spec(2), tier(), { kind: 'next-tier' }],
    ['invalid output, repairs off: next tier', invalid, counters(0), spec(0), tier(), { kind: 'next-tier' }],
    ['invalid output without details (nothing to repair with): next tier', { type: FailureType.InvalidOutput, message: 'x' }, counters(0), spec(2), tier(), { kind: 'next-tier' }],
    ['invalid output on the last tier, no repairs left: give up', invalid, counters(2), spec(2), tier(true), { kind: 'give-up' }],
    ['overflow, truncate: refit with a wider reserve', overflow, counters(0, 0, 1000), spec(2), tier(false, 8000), { kind: 'refit', reserve: 2300 }],
    ['overflow, second refit grows the reserve again', overflow, counters(0, 1, 2300), spec(2), tier(false, 8000), { kind: 'refit', reserve: 4250 }],
    ['overflow, refits used up: next tier', overflow, counters(0, MAX_REFITS), spec(2), tier(), { kind: 'next-tier' }],
    ['overflow, strategy fail: next tier', overflow, counters(), spec(2, 'fail'), tier(), { kind: 'next-tier' }],
    ['overflow, strategy larger-model: next tier', overflow, counters(), spec(2, 'larger-model'), tier(), { kind: 'next-tier' }],
    ['overflow on the last tier, strategy fail: give up', overflow, counters(), spec(2, 'fail'), tier(true), { kind: 'give-up' }],
    ['rate limited after retries: next tier', { type: FailureType.RateLimited, message: '429' }, counters(), spec(2), tier(), { kind: 'next-tier' }],
    ['auth failed: next tier', { type: FailureType.AuthFailed, message: '401' }, counters(), spec(2), tier(), { kind: 'next-tier' }],
    ['auth failed on the last tier: give up', { type: FailureType.AuthFailed, message: '401' }, counters(), spec(2), tier(true), { kind: 'give-up' }],
    ['content refused: next tier (no repair for a refusal)', { type: FailureType.ContentRefused, message: 'no' }, counters(), spec(2), tier(), { kind: 'next-tier' }],
    ['unknown error: next tier', { type: FailureType.Unknown, message: '?' }, counters(), spec(2), tier(), { kind: 'next-tier' }],
  ];
  it.each(rows)('%s', (_name, failure, c, s, t, expected) => {
    expect(nextStep(failure, c, s, t)).toEqual(expected);
  });
});
