/**
 * Pacing of item dispatch to a provider's requests/min and tokens/min, so a
 * batch runs at the provider's limit instead of hammering it with 429s.
 * A token bucket as a plain record (it crosses continue-as-new); the workflow
 * advances it with its deterministic clock.
 */
import type { RateLimitInfo } from '../src/shared/types.ts';

export interface PacerState {
  /** Items per minute allowed; null = unpaced. */
  perMinute: number | null;
  /** Items that may start now. */
  tokens: number;
  /** Epoch ms of the last refill. */
  at: number;
}

/** Share of the limit we aim at: a little headroom absorbs retries and clock skew. */
export const PACE_TARGET = 0.97;
/** The bucket holds at most this many seconds of budget, so a pause does not end in a burst. */
const BURST_SECONDS = 2;

/** Items per minute from the spec's limits and the tokens an item has used so far. */
export function itemsPerMinute(limit: { requestsPerMinute?: number; tokensPerMinute?: number } | undefined, tokensPerItem: number): number | null {
  if (!limit) return null;
  const byRequests = limit.requestsPerMinute ?? Infinity;
  const byTokens = limit.tokensPerMinute && tokensPerItem > 0 ? limit.tokensPerMinute / tokensPerItem : Infinity;
  const rate = Math.min(byRequests, byTokens);
  return Number.isFinite(rate) ? rate * PACE_TARGET : null;
}

/** The tighter of the spec's limits and the ones the provider advertised, field by field. */
export function effectiveLimit(spec: RateLimitInfo | undefined, learned: RateLimitInfo | undefined): RateLimitInfo | undefined {
  if (!spec && !learned) return undefined;
  const min = (a?: number, b?: number) => (a === undefined ? b : b === undefined ? a : Math.min(a, b));
  return { requestsPerMinute: min(spec?.requestsPerMinute, learned?.requestsPerMinute), tokensPerMinute: min(spec?.tokensPerMinute, learned?.tokensPerMinute) };
}

export function newPacer(perMinute: number | null, now: number): PacerState {
  return { perMinute, tokens: perMinute === null ? 0 : Math.min(1, perMinute), at: now };
}

/** Refills by elapsed time; returns the new state. */
export function refill(p: PacerState, now: number): PacerState {
  if (p.perMinute === null) return p;
  const cap = Math.max(1, (p.perMinute / 60) * BURST_SECONDS);
  const tokens = Math.min(cap, p.tokens + ((now - p.at) / 60_000) * p.perMinute);
  return { ...p, tokens, at: now };
}

/** How many of `wanted` items may start now. */
export function available(p: PacerState, wanted: number): number {
  return p.perMinute === null ? wanted : Math.min(wanted, Math.floor(p.tokens));
}

export function take(p: PacerState, n: number): PacerState {
  return p.perMinute === null ? p : { ...p, tokens: p.tokens - n };
}

/** Milliseconds until one more item may start; 0 when one may start now. */
export function waitMs(p: PacerState): number {
  if (p.perMinute === null || p.tokens >= 1) return 0;
  return Math.ceil(((1 - p.tokens) / p.perMinute) * 60_000);
}

/** Sets a new rate (the spec's, or adapted from rate-limit headers). */
export function setRate(p: PacerState, perMinute: number | null): PacerState {
  return { ...p, perMinute };
}
