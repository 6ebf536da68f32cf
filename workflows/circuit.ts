/**
 * A durable circuit breaker per provider tier: CLOSED -> OPEN after
 * `failureThreshold` consecutive failures -> HALF_OPEN after `cooldownMs` with
 * one probe -> CLOSED on the probe's success, OPEN again on its failure.
 *
 * State is a plain serialisable record advanced by pure functions, so it lives
 * in the batch workflow's state and crosses continue-as-new and worker restarts.
 */

export interface CircuitOptions {
  /** Consecutive failures that open the circuit. @default 5 */
  failureThreshold: number;
  /** Milliseconds the circuit stays open before one probe is let through. @default 60000 */
  cooldownMs: number;
}

export interface CircuitState {
  state: 'closed' | 'open' | 'half_open';
  /** Consecutive failures while closed. */
  failures: number;
  /** Epoch ms when an open circuit half-opens; null unless open. */
  openUntil: number | null;
  /** The item that probes a half-open circuit; null until one is chosen. */
  probe: string | null;
  /** Times this circuit opened (for alerts and metrics). */
  opened: number;
}

export const CIRCUIT_DEFAULTS: CircuitOptions = { failureThreshold: 5, cooldownMs: 60_000 };

export function closedCircuit(): CircuitState {
  return { state: 'closed', failures: 0, openUntil: null, probe: null, opened: 0 };
}

function open(s: CircuitState, now: number, o: CircuitOptions): CircuitState {
  return { ...s, state: 'open', openUntil: now + o.cooldownMs, probe: null, opened: s.opened + 1 };
}

/** A call on the tier succeeded. */
export function onSuccess(s: CircuitState): CircuitState {
  return { ...s, state: 'closed', failures: 0, openUntil: null, probe: null };
}

/** A call on the tier failed for a provider reason (not the item's fault). */
export function onFailure(s: CircuitState, now: number, options: Partial<CircuitOptions> = {}): CircuitState {
  const o = { ...CIRCUIT_DEFAULTS, ...options };
  if (s.state === 'half_open') return open(s, now, o);
  if (s.state === 'open') return s;
  const failures = s.failures + 1;
  return failures >= o.failureThreshold ? open({ ...s, failures }, now, o) : { ...s, failures };
}

/** Advances time: an open circuit whose cool-down has passed half-opens. */
export function tick(s: CircuitState, now: number): CircuitState {
  return s.state === 'open' && s.openUntil !== null && now >= s.openUntil ? { ...s, state: 'half_open', openUntil: null, probe: null } : s;
}

/** Whether `itemId` may call the tier: closed, or it is the half-open circuit's probe. */
export function allows(s: CircuitState, itemId: string): boolean {
  return s.state === 'closed' || (s.state === 'half_open' && s.probe === itemId);
}

/** Chooses `itemId` as the probe of a half-open circuit that has none. */
export function withProbe(s: CircuitState, itemId: string): CircuitState {
  return s.state === 'half_open' && s.probe === null ? { ...s, probe: itemId } : s;
}
