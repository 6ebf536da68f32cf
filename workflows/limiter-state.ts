/**
 * The shared limiter's state: a schedule of send times (GCRA: each permit takes the
 * next free slot, and slots are spaced by the tighter of 1/rpm and tokens/tpm) and
 * the batches it serves, advanced by pure functions so the state is a plain record
 * that crosses continue-as-new, and every rule is tested without Temporal.
 *
 * A permit is a time: the request it allows is sent at that time, not before (the
 * `callLlm` activity waits for it with the worker's clock). Workflow timers fire up
 * to about a second late on Temporal, so the limiter hands out slots up to
 * {@link HORIZON_MS} ahead in rounds and the requests still reach the provider
 * evenly spaced, never in a burst. Each round deals its slots one at a time,
 * round-robin over the batches that want some (a batch gets at most what it
 * asked for), so batches that want the same get the same share.
 */
import type { AcquireMessage, LimiterView } from '../src/shared/limiter.ts';
import type { RateLimitInfo } from '../src/shared/types.ts';

/** Share of the limit aimed at: the headroom absorbs clock skew between us and the provider. */
export const LIMITER_TARGET = 0.97;
/** Slots are handed out this far ahead of now. */
export const HORIZON_MS = 4_000;
/** A round starts when this much of the handed-out schedule is left (timers fire late, loaded workers later still). */
const REFILL_AT_MS = 2_500;
/**
 * A schedule that fell behind restarts this far after the round's time: workflow time is when
 * the task started, and the slots must still be ahead when the items' activities run, or several
 * would go at once.
 */
export const RESTART_LEAD_MS = 500;
/** Rounds are at least this far apart. */
export const ROUND_MS = 200;
/** After a reported 429 the rate drops by this factor (at most once per {@link BACKOFF_HOLD_MS}). */
const BACKOFF_STEP = 0.85;
const BACKOFF_MIN = 0.5;
const BACKOFF_HOLD_MS = 2_000;
/** The back-off grows back by this share of the limit per second without 429s. */
const BACKOFF_RECOVERY_PER_S = 0.02;

export interface LimiterClient {
  want: number;
  tokensPerRequest: number;
  limit?: RateLimitInfo;
  learned?: RateLimitInfo;
  granted: number;
}

export interface LimiterState {
  id: string;
  /** The next free slot (epoch ms): the theoretical arrival time of the next request. */
  tat: number;
  /** When the back-off was last advanced. */
  at: number;
  /** By batch workflow id: a plain record (the default converter drops Maps). */
  clients: Record<string, LimiterClient>;
  /** The batch served last, so the next round starts after it. */
  cursor: string | null;
  /** 429 back-off multiplier and when it last dropped. */
  backoff: number;
  backoffAt: number;
  granted: number;
  returned: number;
  runs: number;
}

export function newLimiter(id: string, now: number): LimiterState {
  return { id, tat: now, at: now, clients: {}, cursor: null, backoff: 1, backoffAt: 0, granted: 0, returned: 0, runs: 1 };
}

const min = (a: number | undefined, b: number | undefined): number | undefined => (a === undefined ? b : b === undefined ? a : Math.min(a, b));

/** The key's paced limits: the tightest any batch's spec names or any provider header advertised, times the target and back-off. */
export function limitsOf(s: LimiterState): { rpm: number | null; tpm: number | null } {
  let rpm: number | undefined;
  let tpm: number | undefined;
  for (const c of Object.values(s.clients)) {
    rpm = min(rpm, min(c.limit?.requestsPerMinute, c.learned?.requestsPerMinute));
    tpm = min(tpm, min(c.limit?.tokensPerMinute, c.learned?.tokensPerMinute));
  }
  const pace = (x: number | undefined): number | null => (x === undefined ? null : x * LIMITER_TARGET * s.backoff);
  return { rpm: pace(rpm), tpm: pace(tpm) };
}

/** Milliseconds of schedule one request of `tokens` takes: the tighter of the two limits. */
function spacing(s: LimiterState, tokens: number): number {
  const { rpm, tpm } = limitsOf(s);
  return Math.max(rpm === null ? 0 : 60_000 / rpm, tpm === null ? 0 : (tokens / tpm) * 60_000);
}

/** Advances the back-off's recovery to `now`. */
function advance(s: LimiterState, now: number): LimiterState {
  const dt = Math.max(0, now - s.at);
  return { ...s, backoff: Math.min(1, s.backoff + (BACKOFF_RECOVERY_PER_S * dt) / 1_000), at: Math.max(s.at, now) };
}

/** A batch's message: its want replaces the last one. */
export function acquire(s: LimiterState, m: AcquireMessage, now: number): LimiterState {
  let next = advance(s, now);
  const prev = next.clients[m.client];
  const client: LimiterClient = {
    want: Math.max(0, Math.floor(m.want)),
    tokensPerRequest: Math.max(0, m.tokensPerRequest),
    granted: prev?.granted ?? 0,
    ...(m.limit ? { limit: m.limit } : {}),
    ...(m.learned ? { learned: m.learned } : prev?.learned ? { learned: prev.learned } : {}),
  };
  next = { ...next, clients: { ...next.clients, [m.client]: client }, returned: next.returned + (m.returned ?? 0) };
  if (m.shed) next = backOff(next, now);
  // A limiter that restarted knows nothing of the slots its predecessor handed out (up to the
  // horizon ahead): each batch says the latest it got, and the schedule goes on after it.
  if (typeof m.lastSlot === 'number' && Number.isFinite(m.lastSlot) && m.lastSlot >= next.tat) {
    next = { ...next, tat: Math.min(m.lastSlot, now + HORIZON_MS) + spacing(next, client.tokensPerRequest) };
  }
  return next;
}

/** A batch ended (or cannot be reached any more): it is forgotten. */
export function release(s: LimiterState, client: string, returned: number, now: number): LimiterState {
  const next = advance(s, now);
  const clients = { ...next.clients };
  delete clients[client];
  return { ...next, clients, cursor: next.cursor === client ? null : next.cursor, returned: next.returned + returned };
}

/** The provider answered 429s although the batches kept to the schedule: pace lower for a while. */
export function backOff(s: LimiterState, now: number): LimiterState {
  if (now - s.backoffAt < BACKOFF_HOLD_MS) return s;
  return { ...s, backoff: Math.max(BACKOFF_MIN, s.backoff * BACKOFF_STEP), backoffAt: now };
}

/**
 * One round: deals the slots from the next free one up to `now + HORIZON_MS`, one at a
 * time round-robin to the batches that want some. A schedule that fell behind restarts
 * at `now` (no catch-up burst after a quiet spell).
 */
export function grant(s: LimiterState, now: number): { state: LimiterState; grants: Record<string, number[]> } {
  const next = advance(s, now);
  const ids = Object.keys(next.clients)
    .filter((id) => next.clients[id]!.want > 0)
    .sort();
  const grants: Record<string, number[]> = {};
  if (ids.length === 0) return { state: next, grants };
  const after = next.cursor === null ? -1 : ids.findIndex((id) => id > next.cursor!);
  const start = after < 0 ? 0 : after;
  const order = [...ids.slice(start), ...ids.slice(0, start)];
  const wants = Object.fromEntries(order.map((id) => [id, next.clients[id]!.want]));
  let tat = Math.max(next.tat, now + RESTART_LEAD_MS);
  let cursor = next.cursor;
  for (let progress = true; progress && tat <= now + HORIZON_MS;) {
    progress = false;
    for (const id of order) {
      if (wants[id]! <= 0 || tat > now + HORIZON_MS) continue;
      (grants[id] ??= []).push(Math.round(tat));
      tat += spacing(next, next.clients[id]!.tokensPerRequest);
      wants[id]! -= 1;
      cursor = id;
      progress = true;
    }
  }
  const clients = { ...next.clients };
  let total = 0;
  for (const [id, slots] of Object.entries(grants)) {
    clients[id] = { ...clients[id]!, want: clients[id]!.want - slots.length, granted: clients[id]!.granted + slots.length };
    total += slots.length;
  }
  return { state: { ...next, tat, clients, cursor, granted: next.granted + total }, grants };
}

/** Milliseconds until the next round is worth running; null while no batch wants a permit. */
export function nextRoundIn(s: LimiterState, now: number): number | null {
  if (!wanting(s)) return null;
  return Math.max(ROUND_MS, Math.ceil(s.tat - now - REFILL_AT_MS));
}

export function wanting(s: LimiterState): boolean {
  return Object.values(s.clients).some((c) => c.want > 0);
}

export function view(s: LimiterState, now: number): LimiterView {
  const r = advance(s, now);
  const { rpm, tpm } = limitsOf(r);
  return {
    id: s.id,
    requestsPerMinute: rpm,
    tokensPerMinute: tpm,
    backoff: r.backoff,
    clients: Object.entries(s.clients).map(([id, c]) => ({ id, want: c.want, granted: c.granted, tokensPerRequest: c.tokensPerRequest })),
    granted: s.granted,
    returned: s.returned,
    runs: s.runs,
  };
}
