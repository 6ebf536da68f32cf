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
 *
 * With {@link AimdState.whole} (batches started since the limits2 patch) the probing counts whole calls:
 * the shed value is the number of calls the limit allowed when it was cut (`floor(ceiling)`); the
 * limit grows fast up to one call under it, crosses that last call slowly, and a probe at the shed
 * value that lasts {@link PROBE_ROUNDS} rounds without a shed means the provider takes more (fast
 * growth again). The ceiling is kept {@link CEILING_MS} after a cut, twice as long (up to
 * {@link CEILING_MAX_MS}) each time a probe sheds at the same value: a provider whose capacity did
 * not change is probed less often, one whose capacity moved is probed at the first pace again.
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
  /** Whole-call probing (see the module comment); absent in batches started before it. */
  whole?: boolean;
  /** With `whole`: how long the ceiling is kept after the last decrease (ms). */
  ceilingMs?: number;
  /** With `whole`: when the limit first allowed the shed value again without a shed since (epoch ms). */
  probeSince?: number | null;
}

/** Multiplicative decrease on a shed call or a slow provider. */
export const DECREASE = 0.8;
/** Growth per round of calls near the ceiling, against one per round below it. */
const PROBE_GROWTH = 0.05;
/** The ceiling is forgotten this long after the last decrease: the provider may have grown. */
export const CEILING_MS = 15_000;
/** With whole-call probing, a ceiling confirmed by repeated probes is kept at most this long. */
export const CEILING_MAX_MS = 30_000;
/** With whole-call probing, rounds at the shed value without a shed that show the provider takes more. */
export const PROBE_ROUNDS = 2;
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
  const cut = { ...s, ceiling: s.limit, limit: Math.max(1, s.limit * DECREASE), decreasedAt: now, decreases: s.decreases + 1 };
  if (!s.whole) return cut;
  // A probe that shed at the value the last cut came at: the capacity did not move, probe half as often.
  const same = s.ceiling !== undefined && s.ceiling !== null && Math.floor(s.limit) === Math.floor(s.ceiling);
  return { ...cut, probeSince: null, ceilingMs: same ? Math.min(CEILING_MAX_MS, 2 * (s.ceilingMs ?? CEILING_MS)) : CEILING_MS };
}

/** The ceiling while it is kept; null once it is forgotten or unknown. */
function ceilingHeld(s: AimdState, now: number): number | null {
  const keep = s.whole ? (s.ceilingMs ?? CEILING_MS) : CEILING_MS;
  return s.ceiling !== undefined && s.ceiling !== null && now - s.decreasedAt < keep ? s.ceiling : null;
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
  if (s.whole) return grow(next, max, now);
  const ceiling = next.ceiling !== undefined && next.ceiling !== null && now - next.decreasedAt < CEILING_MS ? next.ceiling : null;
  const near = ceiling !== null && next.limit >= ceiling * 0.95;
  const limit = Math.min(max, next.limit + (near ? PROBE_GROWTH : 1) / Math.max(1, next.limit));
  // Past the last ceiling by a whole call without a shed: the provider can take more.
  return { ...next, limit, ceiling: ceiling !== null && limit > ceiling + 1 ? null : ceiling };
}

/** Whole-call growth: fast up to one call under the shed value, slowly across it, fast again after a probe that held. */
function grow(s: AimdState, max: number, now: number): AimdState {
  const fast = (x: AimdState): AimdState => ({ ...x, probeSince: null, limit: Math.min(max, x.limit + 1 / Math.max(1, x.limit)) });
  const ceiling = ceilingHeld(s, now);
  // Kept past its time: the next cut at the same value says the capacity did not move.
  if (ceiling === null) return fast(s);
  const shedAt = Math.max(1, Math.floor(ceiling));
  if (Math.floor(s.limit) >= shedAt) {
    const since = s.probeSince ?? now;
    // The shed value held for whole rounds of calls: the provider takes more now.
    if (now - since >= PROBE_ROUNDS * holdMs(s)) return fast({ ...s, ceiling: null, ceilingMs: CEILING_MS });
    return { ...s, probeSince: since, limit: Math.min(max, s.limit + PROBE_GROWTH / Math.max(1, s.limit)) };
  }
  // Fast below the last call under the shed value; that call is crossed at the probing pace.
  if (s.limit < shedAt - 1) return { ...fast(s), limit: Math.min(max, s.limit + 1 / Math.max(1, s.limit), Math.max(s.limit, shedAt - 1)) };
  return { ...s, probeSince: null, limit: Math.min(max, s.limit + PROBE_GROWTH / Math.max(1, s.limit)) };
}

/** The calls that may be in flight now. */
export function allowed(s: AimdState, max: number): number {
  return Math.max(1, Math.min(max, Math.floor(s.limit)));
}
