/**
 * Adaptive concurrency: the batch's limit on LLM calls in flight, additive
 * increase and multiplicative decrease (AIMD) from the calls' outcomes. A call
 * the provider shed (429, 529, overloaded) or a latency well above the batch's
 * best cuts the limit by {@link DECREASE}, at most once per {@link holdMs} (one
 * overload is seen by many calls at once), and remembers the limit it was cut
 * at (the ceiling). Every call that succeeds adds 1/limit, so the limit grows by
 * about one per round of calls, up to the spec's `concurrency`; near the ceiling
 * it grows a twentieth as fast (each probe past the provider's capacity costs a shed
 * call), and once it passes the ceiling by one without a shed the capacity grew
 * (or it was seen 15 s ago) and fast growth resumes. A plain record advanced by pure functions: it crosses
 * continue-as-new and is tested without Temporal.
 */

export interface AimdState {
  /** Calls allowed in flight (fractional; the batch uses its floor, at least 1). */
  limit: number;
  /** Epoch ms of the last decrease. */
  decreasedAt: number;
  /** Smoothed latency of successful calls (ms); null before the first. */
  latencyMs: number | null;
  /** Lowest smoothed latency seen: the provider's unloaded latency. */
  baseMs: number | null;
  decreases: number;
  sheds: number;
  /** The limit at the last decrease: the provider's capacity as last seen; null when unknown. */
  ceiling?: number | null;
}

/** Multiplicative decrease on a shed call or a slow provider. */
export const DECREASE = 0.8;
/** Growth per round of calls near the ceiling, against one per round below it. */
const PROBE_GROWTH = 0.05;
/** The ceiling is forgotten this long after the last decrease: the provider may have grown. */
const CEILING_MS = 15_000;
/** Latency counts as slow above this multiple of the best latency... */
const SLOW_FACTOR = 2;
/** ...and at least this much above it (a 2 ms call doubling to 4 ms is noise). */
const SLOW_MIN_EXTRA_MS = 250;
/** Weight of the newest sample in the smoothed latency. */
const ALPHA = 0.2;

export function newAimd(max: number): AimdState {
  return { limit: max, decreasedAt: 0, latencyMs: null, baseMs: null, decreases: 0, sheds: 0 };
}

/** Decreases are at least this far apart, and the limit does not grow in between: one round of calls, never under a second. */
function holdMs(s: AimdState): number {
  return Math.max(1_000, s.latencyMs ?? 0);
}

function decrease(s: AimdState, now: number): AimdState {
  if (now - s.decreasedAt < holdMs(s)) return s;
  return { ...s, ceiling: s.limit, limit: Math.max(1, s.limit * DECREASE), decreasedAt: now, decreases: s.decreases + 1 };
}

/** The provider shed a call (rate limit, overload). */
export function onShed(s: AimdState, now: number): AimdState {
  return decrease({ ...s, sheds: s.sheds + 1 }, now);
}

/** A call succeeded after `latencyMs`. */
export function onSuccess(s: AimdState, latencyMs: number, max: number, now: number): AimdState {
  const latency = s.latencyMs === null ? latencyMs : s.latencyMs + ALPHA * (latencyMs - s.latencyMs);
  // The best latency drifts up slowly, so a provider that got slower for good becomes the new normal.
  const base = s.baseMs === null ? latency : Math.min(latency, s.baseMs * 1.002);
  const next = { ...s, latencyMs: latency, baseMs: base };
  if (latency > base * SLOW_FACTOR && latency - base > SLOW_MIN_EXTRA_MS) return decrease(next, now);
  // Calls that started before the last cut say nothing about the new limit.
  if (now - s.decreasedAt < holdMs(next)) return next;
  const ceiling = next.ceiling !== undefined && next.ceiling !== null && now - next.decreasedAt < CEILING_MS ? next.ceiling : null;
  const near = ceiling !== null && next.limit >= ceiling * 0.95;
  const limit = Math.min(max, next.limit + (near ? PROBE_GROWTH : 1) / Math.max(1, next.limit));
  // Past the last ceiling by a whole call without a shed: the provider can take more.
  return { ...next, limit, ceiling: ceiling !== null && limit > ceiling + 1 ? null : ceiling };
}

/** The calls that may be in flight now. */
export function allowed(s: AimdState, max: number): number {
  return Math.max(1, Math.min(max, Math.floor(s.limit)));
}
