/**
 * Types shared by workflows, activities, the CLI and tests. Pure: no runtime imports.
 */
import type { FailureType } from './failures.ts';
import type { AttemptRecord, BudgetStatus, ReviewRecord } from './messages.ts';
import type { Item, PipelineSpec, ProviderSpec } from './spec.ts';
import type { StepBrief, StepResult, StepStats } from './pipeline-steps.ts';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/** What the workflow asks of one LLM call (one attempt is one activity attempt). */
export interface LlmRequest {
  batchId: string;
  itemId: string;
  /** Index of the tier in `pipeline.providers`. */
  tier: number;
  provider: ProviderSpec;
  messages: ChatMessage[];
  output: PipelineSpec['output'];
  /**
   * Length of the first user message's part that every item shares (the template's
   * text before its first placeholder): Anthropic tiers mark it for prompt caching.
   */
  sharedPrefixChars?: number;
  /** The batch workflow to tell when the call succeeded (it frees the item's concurrency slot). */
  reportTo?: string;
  /** Epoch ms before which the first attempt does not send (a shared-limiter slot). */
  notBefore?: number;
  /**
   * Attempts from `fromAttempt` on ask the batch workflow `batch` for their slot before they send
   * (`itemCallSlot`): a shared-limiter permit when `permit`, room under the adaptive limit.
   */
  pace?: { batch: string; fromAttempt: number; permit: boolean };
  /** Values of the item's secret fields: redacted from the answer and from failure messages. */
  secretValues?: string[];
  /** The step of a multi-step pipeline this call belongs to (a metric label). */
  step?: string;
  /** Set when the spec turns the response cache on: a stored valid answer is served, a new one stored. */
  cache?: { maxAgeMs?: number };
  /**
   * Set by the batch's fast path: when the item already has a stored row (a re-run or reset of
   * its batch), the activity returns that row's summary in `stored` and calls no provider.
   */
  ifNotStored?: true;
  /** Calls this item already made on this tier before this activity (a fast run's attempt): the attempt count goes on from them. */
  priorAttempts?: number;
  /**
   * Set by the batch's fast path: on success the activity writes the item's row itself (these
   * fields, the rest from the answer) and returns the result without the answer (`persisted`).
   */
  persistRow?: FastRow;
}

/** What a fast run's row holds beyond the answer. */
export interface FastRow {
  startedAt: string;
  secretFields?: string[];
  /** The spec turns the response cache on: the row records whether the answer was a hit. */
  cache: boolean;
}

export interface TokenUsage {
  /** All prompt tokens, cached and cache-written ones included. */
  inputTokens: number;
  outputTokens: number;
  /** Prompt tokens read from the provider's prompt cache (OpenAI `cached_tokens`, Anthropic `cache_read_input_tokens`). */
  cachedInputTokens?: number;
  /** Prompt tokens written to the cache (Anthropic `cache_creation_input_tokens`). */
  cacheWriteTokens?: number;
}

/** Which endpoint answered a call: recorded on every result row and counted in the summary. */
export interface EndpointInfo {
  /** `openai`, `anthropic`, `openai-compatible` or `simulated` (the fault-injecting provider). */
  vendor: string;
  /** Host (and port) of the base URL. */
  host: string;
  /** True when the answer came from the fault-injecting provider. */
  simulated: boolean;
}

/** Per-minute limits a provider advertises in its headers. */
export interface RateLimitInfo {
  requestsPerMinute?: number;
  tokensPerMinute?: number;
}

export interface LlmResult {
  text: string;
  /** Parsed and schema-validated output when `output.format` is `json`. */
  json?: unknown;
  finishReason: string;
  usage: TokenUsage;
  costUsd: number;
  model: string;
  latencyMs: number;
  /** The Temporal attempt number that succeeded (1 = first try). */
  attempt: number;
  /** The provider's advertised limits, when its headers carry them. */
  rateLimit?: RateLimitInfo;
  /** Which endpoint answered. */
  endpoint?: EndpointInfo;
  /** Set when the answer came from the response cache: no provider call, cost and usage 0; `savedUsd` is what the original call cost. */
  cached?: { savedUsd: number };
  /** Set instead of an answer when the request asked `ifNotStored` and the item has a row. */
  stored?: StoredSummary;
  /** The activity wrote the item's row (`persistRow`); the answer is in the row, not here. */
  persisted?: true;
}

/** What the batch needs of an item's stored row to count it instead of running it. */
export interface StoredSummary {
  status: ItemStatus;
  provider: string | null;
  tier: number | null;
}

/** Details attached to an InvalidOutput failure so the workflow can ask for a repair. */
export interface InvalidOutputDetails {
  text: string;
  errors: string[];
  usage: TokenUsage;
}

export interface TruncateRequest {
  provider: ProviderSpec;
  messages: ChatMessage[];
  /** Tokens kept free for the answer. */
  reserveOutputTokens: number;
}

/** What truncation removed, recorded on the item. */
export interface TruncationInfo {
  originalTokens: number;
  finalTokens: number;
  droppedMessages: number;
  trimmedChars: number;
}

export interface TruncateResult {
  messages: ChatMessage[];
  inputTokens: number;
  contextWindow: number;
  /** Null when nothing had to be removed. */
  truncation: TruncationInfo | null;
  /** False when even the system prompt alone does not fit. */
  fits: boolean;
}

/**
 * A row's status. `cancelled`: the batch was cancelled before the item finished;
 * `rolled_back`: the batch was cancelled with `batch.rollbackOnCancel: mark`.
 */
export type ItemStatus = 'succeeded' | 'failed' | 'skipped' | 'approved' | 'awaiting_review' | 'cancelled' | 'rolled_back';

/** Error context stored for post-mortems. Never holds secrets. */
export interface ErrorContext {
  type: FailureType | string;
  message: string;
  attempts: number;
  provider?: string;
  firstAt: string;
  lastAt: string;
  /** The last failure of each tier tried, in order: what a reviewer reads. */
  tiers?: TierFailure[];
}

/** How one tier failed for an item. */
export interface TierFailure {
  provider: string;
  type: string;
  /** The provider's own message, with HTTP status and error type when it sent them. */
  message: string;
}

/** One row of the results store, keyed by (batchId, itemId). */
export interface ResultRecord {
  batchId: string;
  itemId: string;
  status: ItemStatus;
  output: unknown;
  provider: string | null;
  model: string | null;
  tier: number | null;
  attempts: number;
  inputTokens: number;
  outputTokens: number;
  costUsd: number;
  truncation: TruncationInfo | null;
  error: ErrorContext | null;
  startedAt: string;
  finishedAt: string;
  /** The last human decision (decision, reviewer, note, time); absent when there was none. */
  review?: ReviewRecord | null;
  /** Which endpoint gave the stored answer; null when no call answered. */
  endpoint?: EndpointInfo | null;
  /** A multi-step item's steps in order, each with its output and figures; absent for one-prompt pipelines. */
  steps?: StepResult[] | null;
  /** True when every call of the item was answered by the response cache (no provider call, cost 0). */
  cacheHit?: boolean;
}

/** Input of the `itemPipeline` child workflow. */
export interface ItemInput {
  batchId: string;
  item: Item;
  pipeline: PipelineSpec;
  /** Workflow id of the batch, signalled on completion (survives continue-as-new). */
  parentWorkflowId?: string;
  /** Tiers whose circuit is open at start (the batch's breakers); skipped while open. */
  openTiers?: number[];
  /** The shared limiter's send time (epoch ms) for the item's first call: the activity waits for it. */
  notBefore?: number;
  /** The batch's fast path made the item's first call and hands the item over from there. */
  handoff?: ItemHandoff;
}

/**
 * Where the batch's fast path left an item whose first call (one attempt on the first tier)
 * did not give a valid answer: what the item workflow does next, and what the call cost.
 */
export interface ItemHandoff {
  /** `retry`: call the first tier again (a transient failure); the rest as the chain decides after a failed call. */
  next: 'retry' | 'repair' | 'refit' | 'next-tier' | 'give-up';
  /** The failure: a repair quotes its text and errors. */
  failure: { type: string; message: string; details?: InvalidOutputDetails };
  /** Output tokens a refit reserves. */
  reserve?: number;
  /** What the item had recorded when it was handed over. */
  state: HandoffState;
}

/** The bookkeeping of an item's run that crosses from the batch to the item workflow. */
export interface HandoffState {
  startedAt: string;
  attempts: number;
  inputTokens: number;
  outputTokens: number;
  costUsd: number;
  lastError: ErrorContext | null;
  tierFailures: TierFailure[];
  bestOutput: unknown;
  bestOutputErrors: string[];
  attemptLog: AttemptRecord[];
  attemptsDropped: number;
  rateLimit?: RateLimitInfo;
}

/** Returned by `itemPipeline`, and reported to the batch. */
export interface ItemOutcome {
  itemId: string;
  status: ItemStatus;
  tier: number | null;
  provider: string | null;
  attempts: number;
  inputTokens: number;
  outputTokens: number;
  costUsd: number;
  truncated: boolean;
  errorType: string | null;
  /** Review decisions of `retry` this item received. */
  retried: number;
  /** Limits the tier-0 provider advertised on this item's calls (pacing adapts to them). */
  rateLimit?: RateLimitInfo;
  /** Which endpoint gave the item's answer. */
  endpoint?: EndpointInfo;
  /** A multi-step item's figures per step (no outputs: the batch only counts). */
  steps?: StepBrief[];
  /** True when every call of the item was answered by the response cache (no provider call at all). */
  cacheHit?: boolean;
  /** Calls of the item answered by the response cache (a multi-step item counts each step's). */
  cacheHits?: number;
}

/** A Slack-compatible alert. */
export interface Alert {
  batchId: string;
  kind: 'error_rate' | 'circuit_open' | 'awaiting_review' | 'batch_paused' | 'batch_done' | 'batch_cancelled' | 'budget_warning' | 'budget_exceeded';
  text: string;
  fields?: Record<string, string | number>;
}

/** The batch summary: what the batch workflow returns. */
export interface BatchSummary {
  batchId: string;
  total: number;
  succeeded: number;
  failed: number;
  skipped: number;
  approved: number;
  /** Review decisions of `retry`, over all items. */
  retried: number;
  successRate: number;
  attempts: number;
  inputTokens: number;
  outputTokens: number;
  costUsd: number;
  truncated: number;
  /** Items finished by each tier name. */
  tierUse: Record<string, number>;
  /** Items answered by each endpoint, keyed `<vendor> <host>` (e.g. `openai api.openai.com`). */
  endpoints: Record<string, number>;
  /** Items whose answer came from the fault-injecting provider. */
  simulated: number;
  /** Calls answered by the response cache (no provider call, cost 0); a multi-step item counts one per step served. */
  cacheHits?: number;
  startedAt: string;
  finishedAt: string;
  /** `cancelled`: a cancel stopped it; items that never finished are counted in `cancelled` and `notStarted`. */
  status: 'completed' | 'stopped' | 'cancelled';
  /** Items a cancel stopped while they ran or waited for review (their rows say `cancelled`). */
  cancelled?: number;
  /** Items never started because the batch was cancelled or stopped (no row); null when the source was not read to its end. */
  notStarted?: number | null;
  /** Multi-step pipelines: tokens, cost, reviews, failures and fallbacks per step. */
  steps?: Record<string, StepStats>;
  /** The cancel's reason and what happened to the batch's rows. */
  cancel?: { reason: string; rollback: 'none' | 'mark' | 'delete'; rowsRolledBack: number };
  /** The budget at the end (with `pipeline.budget`); a budget stop makes `status` `stopped`. */
  budget?: BudgetStatus;
}
