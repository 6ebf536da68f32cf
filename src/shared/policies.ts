/**
 * Retry policies and activity option profiles, one per activity.
 *
 * PURE: workflows import this module, so it may import only types from
 * `@temporalio/common` and the failure vocabulary. No clocks, no randomness
 * (the jitter helper takes its random number as an argument).
 *
 * Jitter: Temporal's RetryPolicy has no jitter field. Activities add it by
 * setting `nextRetryDelay` on a retryable failure to {@link jitteredBackoff}
 * of the attempt; when a provider sent Retry-After (or a rate-limit reset
 * header) that value is used exactly instead. The policy below still bounds
 * the attempts and is the fallback when a failure carries no delay.
 */
import type { RetryPolicy } from '@temporalio/common';
import { FailureType, NON_RETRYABLE_TYPES } from './failures.ts';
import type { PipelineSpec, ProviderSpec } from './spec.ts';

/** Fraction of the delay added or removed at random: 0.2 means plus or minus 20%. */
export const JITTER_RATIO = 0.2;

/** Upper bound of any delay a provider header may impose (ms). A longer wait goes to the next tier instead. */
export const MAX_RETRY_DELAY_MS = 120_000;

const permanent = (): string[] => [...NON_RETRYABLE_TYPES];

/** One LLM call attempt: transient provider errors retry 5 times, permanent ones never. */
export const LLM_RETRY = {
  initialInterval: '1 second',
  backoffCoefficient: 2,
  maximumInterval: '1 minute',
  maximumAttempts: 5,
  nonRetryableErrorTypes: permanent(),
} as const satisfies RetryPolicy;

/** Token counting is CPU only; a retry helps only after a worker crash. */
export const TRUNCATE_RETRY = {
  initialInterval: '1 second',
  backoffCoefficient: 2,
  maximumInterval: '10 seconds',
  maximumAttempts: 3,
  nonRetryableErrorTypes: permanent(),
} as const satisfies RetryPolicy;

/**
 * Persisting a result must outlast a database restart: about 100 attempts
 * capped at 1 minute apart (over an hour), so a result is never dropped for a short outage.
 */
export const PERSIST_RETRY = {
  initialInterval: '1 second',
  backoffCoefficient: 2,
  maximumInterval: '1 minute',
  maximumAttempts: 100,
  nonRetryableErrorTypes: permanent(),
} as const satisfies RetryPolicy;

/** Alerts are best effort: a few attempts, then the workflow logs and carries on. */
export const NOTIFY_RETRY = {
  initialInterval: '2 seconds',
  backoffCoefficient: 2,
  maximumInterval: '30 seconds',
  maximumAttempts: 4,
  nonRetryableErrorTypes: permanent(),
} as const satisfies RetryPolicy;

/**
 * How long the server waits for a heartbeat from a running `callLlm` before it gives the
 * attempt to another worker: the time a killed worker's calls stay lost. The activity
 * heartbeats every 3.3 s (a third of this) while it waits for the provider.
 */
export const LLM_HEARTBEAT_TIMEOUT = '10 seconds';

/** Options for `countAndTruncate`. */
export const truncateCall = { startToCloseTimeout: '30 seconds', retry: TRUNCATE_RETRY } as const;
/** Options for `persistResult` (a local activity: short and idempotent). */
export const persistCall = { startToCloseTimeout: '30 seconds', retry: PERSIST_RETRY } as const;
/** Options for `notify`; its final failure is not fatal to the batch. */
export const notifyCall = { startToCloseTimeout: '30 seconds', retry: NOTIFY_RETRY } as const;
/** Reading a page of a JSONL source: a missing or unreadable file is permanent (`InvalidInput`). */
export const sourceCall = { startToCloseTimeout: '2 minutes', retry: { maximumAttempts: 10, nonRetryableErrorTypes: [FailureType.InvalidInput as string] } };
/** Reading one stored row (the batch asks when a child's id was used before); outlasts a database restart like a write. */
export const storeRead = { startToCloseTimeout: '30 seconds', retry: PERSIST_RETRY } as const;

/** The RetryPolicy of one tier's LLM calls, built from the spec's `retry` block (durations in ms). */
export function llmRetryFor(retry: PipelineSpec['retry']): RetryPolicy {
  return {
    initialInterval: retry.initialInterval,
    backoffCoefficient: retry.backoffCoefficient,
    maximumInterval: Math.max(retry.maxInterval, retry.initialInterval),
    maximumAttempts: retry.maxAttempts,
    nonRetryableErrorTypes: permanent(),
  };
}

/** Longest start-to-close any attempt may get, whatever the growth (ms). */
const MAX_ATTEMPT_TIMEOUT_MS = 15 * 60_000;

/**
 * The per-attempt timeout of an LLM call: `provider.timeout * timeoutGrowth^(attempt-1)`,
 * so a slow provider gets more room on each retry. Capped at 15 minutes.
 */
export function attemptTimeoutMs(provider: Pick<ProviderSpec, 'timeout' | 'timeoutGrowth'>, attempt: number): number {
  const grown = provider.timeout * provider.timeoutGrowth ** Math.max(0, attempt - 1);
  return Math.min(MAX_ATTEMPT_TIMEOUT_MS, Math.round(grown));
}

/**
 * Activity options for one tier's `callLlm`: the retry policy from the spec and a
 * start-to-close that covers the last (longest) attempt's timeout plus a margin, so
 * the SDK's own timeout fires first and is classified as `Timeout`.
 */
export function llmCallFor(provider: Pick<ProviderSpec, 'timeout' | 'timeoutGrowth'>, retry: PipelineSpec['retry']) {
  return {
    startToCloseTimeout: attemptTimeoutMs(provider, retry.maxAttempts) + 5_000,
    heartbeatTimeout: LLM_HEARTBEAT_TIMEOUT,
    retry: llmRetryFor(retry),
  } as const;
}

/** Backoff inputs in milliseconds (a RetryPolicy after its durations were parsed). */
export interface BackoffPolicy {
  /** @default 1000 */
  initialIntervalMs?: number;
  /** @default 2 */
  backoffCoefficient?: number;
  /** @default 100 x initialIntervalMs (Temporal's default) */
  maximumIntervalMs?: number;
}

/**
 * The delay before the retry that follows `attempt` (1-based): Temporal's
 * exponential schedule `initial * coefficient^(attempt-1)` capped at the maximum,
 * then spread by plus or minus {@link JITTER_RATIO} so that a fleet of workers
 * that failed together does not retry together.
 *
 * @param random a number in [0, 1); pass `Math.random()` in activities
 */
export function jitteredBackoff(attempt: number, policy: BackoffPolicy, random: number): number {
  const initial = policy.initialIntervalMs ?? 1_000;
  const coefficient = policy.backoffCoefficient ?? 2;
  const maximum = policy.maximumIntervalMs ?? initial * 100;
  const base = Math.min(maximum, initial * coefficient ** Math.max(0, attempt - 1));
  const factor = 1 + (random * 2 - 1) * JITTER_RATIO;
  return Math.max(1, Math.round(base * factor));
}
