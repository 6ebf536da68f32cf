/**
 * Steadfast's own Prometheus metrics. They are recorded through the Temporal
 * Runtime's metric meter (the activity context's `metricMeter`), so they come out
 * on the same `/metrics` endpoint as the SDK's own `temporal_*` metrics, with the
 * activity's `namespace`, `taskQueue` and `activityType` labels added by the SDK.
 *
 * Counters are recorded where the event happens: `callLlm` (one attempt = one
 * HTTP request to a provider), `countAndTruncate`, and `persistResult` (only when
 * the upsert changed the row, so a retried or replayed activity counts once).
 * State that lives in workflows (circuit breakers, the review queue) is read by
 * the worker's batch observer (src/worker/batch-observer.ts) through the batch's `progress` query.
 *
 * Prometheus naming notes: the Core exporter appends no `_total` suffix, so
 * counter names carry it; counters are integers, so money is a float histogram
 * whose `_sum` is the total (`steadfast_llm_cost_usd_sum`).
 */
import type { MetricMeter, MetricTags } from '@temporalio/common';

/** Every metric Steadfast emits: name, Prometheus type, labels and meaning (docs/observability.md lists them). */
export const METRICS = {
  llmCalls: {
    name: 'steadfast_llm_calls_total',
    type: 'counter',
    labels: ['provider', 'model', 'tier', 'outcome'],
    help: 'LLM call attempts (one HTTP request each) by tier name, model, tier index and outcome: ok or the failure type',
  },
  llmRetries: { name: 'steadfast_llm_retries_total', type: 'counter', labels: ['provider', 'model', 'tier'], help: 'LLM call attempts that were retries (Temporal attempt > 1)' },
  fallbacks: { name: 'steadfast_fallbacks_total', type: 'counter', labels: ['provider', 'model', 'tier'], help: 'Successful LLM calls on a fallback tier (tier index > 0)' },
  tokens: {
    name: 'steadfast_tokens_total',
    type: 'counter',
    labels: ['direction', 'provider', 'model'],
    help: 'Tokens of answered LLM calls, direction in (prompt) or out (completion)',
  },
  llmCost: {
    name: 'steadfast_llm_cost_usd',
    type: 'histogram',
    labels: ['provider', 'model'],
    help: 'Cost in USD of each answered LLM call under the tier pricing; _sum is the total spend',
  },
  llmLatency: { name: 'steadfast_llm_call_seconds', type: 'histogram', labels: ['provider', 'model'], help: 'Duration of LLM call attempts in seconds' },
  truncations: {
    name: 'steadfast_truncations_total',
    type: 'counter',
    labels: ['model'],
    help: "Prompts truncated to fit a model's context window (one per countAndTruncate that cut something)",
  },
  items: {
    name: 'steadfast_items_total',
    type: 'counter',
    labels: ['status', 'provider', 'tier'],
    help: 'Item rows written with a new status (awaiting_review, succeeded, approved, skipped, failed); provider and tier that produced the output, or none',
  },
  itemCost: {
    name: 'steadfast_item_cost_usd',
    type: 'histogram',
    labels: ['status'],
    help: 'Cost in USD of each finished item as recorded on its row; _sum/_count is the cost per item',
  },
  itemRecovery: {
    name: 'steadfast_item_recovery_seconds',
    type: 'histogram',
    labels: ['status'],
    help: "Time from an item's first failure to its success (succeeded or approved), in seconds",
  },
  reviewQueue: {
    name: 'steadfast_review_queue',
    type: 'gauge',
    labels: [],
    help: 'Items awaiting human review in the running batches of this task queue (read from the progress query)',
  },
  itemsRunning: {
    name: 'steadfast_items_running',
    type: 'gauge',
    labels: [],
    help: 'Items working now in the running batches of this task queue; items awaiting review are not counted (they are steadfast_review_queue)',
  },
  circuitState: {
    name: 'steadfast_circuit_state',
    type: 'gauge',
    labels: ['provider'],
    help: 'Worst circuit state of a provider tier over the running batches: 0 closed, 1 half-open, 2 open',
  },
  stepCalls: {
    name: 'steadfast_step_calls_total',
    type: 'counter',
    labels: ['step', 'provider', 'outcome'],
    help: 'LLM call attempts of multi-step pipelines by step, tier name and outcome: ok or the failure type',
  },
  stepFallbacks: { name: 'steadfast_step_fallbacks_total', type: 'counter', labels: ['step', 'provider'], help: 'Successful calls of a step on a fallback tier (tier index > 0)' },
  stepTokens: {
    name: 'steadfast_step_tokens_total',
    type: 'counter',
    labels: ['step', 'direction'],
    help: 'Tokens of answered calls per step of multi-step pipelines, direction in or out',
  },
  stepCost: { name: 'steadfast_step_cost_usd', type: 'histogram', labels: ['step'], help: 'Cost in USD of each answered call of a step; _sum is the spend per step' },
  cacheHits: {
    name: 'steadfast_cache_hits_total',
    type: 'counter',
    labels: ['provider', 'model'],
    help: 'LLM calls answered by the response cache (no provider request, cost 0)',
  },
  cacheMisses: {
    name: 'steadfast_cache_misses_total',
    type: 'counter',
    labels: ['provider', 'model'],
    help: 'Response cache lookups that found no valid answer (the provider was called)',
  },
  cacheSaved: {
    name: 'steadfast_cache_saved_usd',
    type: 'histogram',
    labels: ['provider', 'model'],
    help: 'What each cache hit saved: the cost of the call that produced the answer; _sum is the total saved',
  },
  batchesRunning: { name: 'steadfast_batches_running', type: 'gauge', labels: [], help: 'Running batch workflows on this task queue' },
} as const;

/** The metric names, for dashboards and tests. */
export const METRIC_NAMES: readonly string[] = Object.values(METRICS).map((m) => m.name);

/**
 * Histogram buckets (Runtime option `histogramBucketOverrides`): the Core default
 * (50 ... 10000) suits milliseconds, not dollars or recovery times.
 */
export const HISTOGRAM_BUCKETS: Record<string, number[]> = {
  [METRICS.llmCost.name]: [0.00001, 0.0001, 0.001, 0.01, 0.1, 1],
  [METRICS.cacheSaved.name]: [0.00001, 0.0001, 0.001, 0.01, 0.1, 1],
  [METRICS.itemCost.name]: [0.00001, 0.0001, 0.001, 0.01, 0.1, 1, 10],
  [METRICS.stepCost.name]: [0.00001, 0.0001, 0.001, 0.01, 0.1, 1],
  [METRICS.llmLatency.name]: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
  [METRICS.itemRecovery.name]: [1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 21600, 86400, 604800],
};

/** Outcome label of a call that was cancelled (the batch opened the tier's circuit, or the worker shut down). */
export const CANCELLED_OUTCOME = 'Cancelled';

/** One LLM call attempt, as `callLlm` saw it. */
export interface LlmCallRecord {
  /** The tier's name (`tierName`). */
  provider: string;
  /** The model requested (the provider's own label, so it matches the provider's counters). */
  model: string;
  tier: number;
  /** `ok`, a failure type, or {@link CANCELLED_OUTCOME}. */
  outcome: string;
  attempt: number;
  latencyMs: number;
  /** Present when the provider answered (also for refused, cut or invalid output). */
  usage?: { inputTokens: number; outputTokens: number };
  costUsd?: number;
  /** The step of a multi-step pipeline; its calls are counted per step as well. */
  step?: string;
}

/** One item row that the store actually changed. */
export interface ItemRecord {
  status: string;
  provider: string | null;
  tier: number | null;
  costUsd: number;
  /** Seconds from the first failure to this success; only for recovered items. */
  recoverySeconds?: number;
}

/** Records Steadfast's metrics on a `MetricMeter` (the activity context's, or a test double). */
export interface SteadfastMetrics {
  llmCall(r: LlmCallRecord): void;
  truncation(r: { model: string }): void;
  item(r: ItemRecord): void;
  /** One response cache lookup; a hit carries what it saved. */
  cacheLookup(r: { provider: string; model: string; hit: boolean; savedUsd?: number }): void;
}

/** Statuses that end an item (its cost is final). */
const FINAL_STATUSES: readonly string[] = ['succeeded', 'approved', 'skipped', 'failed'];

/**
 * The recorder for a meter. Instruments are created lazily: the activity meter is
 * per execution, and one attempt touches only a few of them.
 */
export function steadfastMetrics(meter: MetricMeter): SteadfastMetrics {
  const cache = new Map<string, unknown>();
  const once = <T>(name: string, make: () => T): T => {
    if (!cache.has(name)) cache.set(name, make());
    return cache.get(name) as T;
  };
  const counter = (m: { name: string; help: string }) => once(m.name, () => meter.createCounter(m.name, '', m.help));
  const histogram = (m: { name: string; help: string }, unit: string) => once(m.name, () => meter.createHistogram(m.name, 'float', unit, m.help));
  return {
    llmCall(r) {
      const who: MetricTags = { provider: r.provider, model: r.model };
      const tier = String(r.tier);
      counter(METRICS.llmCalls).add(1, { ...who, tier, outcome: r.outcome });
      if (r.attempt > 1) counter(METRICS.llmRetries).add(1, { ...who, tier });
      if (r.outcome === 'ok' && r.tier > 0) counter(METRICS.fallbacks).add(1, { ...who, tier });
      histogram(METRICS.llmLatency, 's').record(Math.max(r.latencyMs, 0) / 1000, who);
      if (r.usage) {
        if (r.usage.inputTokens > 0) counter(METRICS.tokens).add(r.usage.inputTokens, { direction: 'in', ...who });
        if (r.usage.outputTokens > 0) counter(METRICS.tokens).add(r.usage.outputTokens, { direction: 'out', ...who });
        histogram(METRICS.llmCost, 'USD').record(Math.max(r.costUsd ?? 0, 0), who);
      }
      if (r.step !== undefined) {
        const step = r.step;
        counter(METRICS.stepCalls).add(1, { step, provider: r.provider, outcome: r.outcome });
        if (r.outcome === 'ok' && r.tier > 0) counter(METRICS.stepFallbacks).add(1, { step, provider: r.provider });
        if (r.usage) {
          if (r.usage.inputTokens > 0) counter(METRICS.stepTokens).add(r.usage.inputTokens, { step, direction: 'in' });
          if (r.usage.outputTokens > 0) counter(METRICS.stepTokens).add(r.usage.outputTokens, { step, direction: 'out' });
          histogram(METRICS.stepCost, 'USD').record(Math.max(r.costUsd ?? 0, 0), { step });
        }
      }
    },
    truncation(r) {
      counter(METRICS.truncations).add(1, { model: r.model });
    },
    item(r) {
      counter(METRICS.items).add(1, { status: r.status, provider: r.provider ?? 'none', tier: r.tier === null ? 'none' : String(r.tier) });
      if (FINAL_STATUSES.includes(r.status)) histogram(METRICS.itemCost, 'USD').record(Math.max(r.costUsd, 0), { status: r.status });
      if (r.recoverySeconds !== undefined && r.recoverySeconds >= 0) histogram(METRICS.itemRecovery, 's').record(r.recoverySeconds, { status: r.status });
    },
    cacheLookup(r) {
      const who: MetricTags = { provider: r.provider, model: r.model };
      counter(r.hit ? METRICS.cacheHits : METRICS.cacheMisses).add(1, who);
      if (r.hit) histogram(METRICS.cacheSaved, 'USD').record(Math.max(r.savedUsd ?? 0, 0), who);
    },
  };
}

/** Seconds from `firstFailureAt` to `finishedAt` for a recovered item; undefined when it never failed or did not succeed. */
export function recoverySeconds(status: string, firstFailureAt: string | null | undefined, finishedAt: string): number | undefined {
  if (!firstFailureAt || (status !== 'succeeded' && status !== 'approved')) return undefined;
  const ms = Date.parse(finishedAt) - Date.parse(firstFailureAt);
  return Number.isFinite(ms) && ms >= 0 ? ms / 1000 : undefined;
}
