/**
 * The state and steps of one item: validate, count and truncate, walk the
 * provider chain (repairing invalid output, recovering from context overflow,
 * skipping tiers whose circuit is open), then persist. Deterministic: all I/O
 * goes through activities.
 */
import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  TimeoutFailure,
  getExternalWorkflowHandle,
  isCancellation,
  patched,
  proxyActivities,
  proxyLocalActivities,
} from '@temporalio/workflow';
import { RetryState } from '@temporalio/common';
import type { Activities, PersistRequest } from '../activities/index.ts';
import { llmCallFor, persistCall, truncateCall } from '../src/shared/policies.ts';
import { surelyFits } from '../src/shared/truncate.ts';
import { repairMessages } from '../src/shared/repair.ts';
import { errorMessage, FailureType, NON_RETRYABLE_TYPES } from '../src/shared/failures.ts';
import { batchCostOf, contextWindowOf, costOf, tierName } from '../src/shared/tiers.ts';
import { callViaBatch } from './item-batch.ts';
import { callPace, LIMITS2_PATCH } from './call-slot.ts';
import type { Item, PipelineSpec } from '../src/shared/spec.ts';
import { renderMessages, validateItem } from '../src/shared/template.ts';
import type {
  ChatMessage,
  EndpointInfo,
  ErrorContext,
  FastRow,
  HandoffState,
  InvalidOutputDetails,
  ItemHandoff,
  ItemInput,
  ItemOutcome,
  LlmRequest,
  LlmResult,
  RateLimitInfo,
  StoredSummary,
  TierFailure,
  TruncateResult,
  TruncationInfo,
} from '../src/shared/types.ts';
import { tierResultSignal } from '../src/shared/messages.ts';
import type { AttemptRecord, ReviewDecision, ReviewDetails, ReviewRecord } from '../src/shared/messages.ts';
import { pushAttempt, reviewDetails } from '../src/shared/review-details.ts';
import { secretValuesOf } from '../src/shared/secrets.ts';

// A local activity: the upsert is short and idempotent, so it runs in the worker that holds the
// workflow task; no activity task round trip through the server, and one marker event instead of three.
const store = proxyLocalActivities<Activities>(persistCall);
const tokens = proxyActivities<Activities>(truncateCall);

/** Failure types that say the provider is unhealthy (they feed the circuit breaker), not the item. */
export const PROVIDER_FAULTS: readonly string[] = [
  FailureType.RateLimited,
  FailureType.ProviderOverloaded,
  FailureType.ProviderUnavailable,
  FailureType.Timeout,
  FailureType.ConnectionFailed,
  FailureType.AuthFailed,
  FailureType.ModelNotFound,
  FailureType.QuotaExhausted,
];

/** What one failed call tells the chain walker. */
export interface CallError {
  type: string;
  message: string;
  details?: InvalidOutputDetails;
}

/** Names the failure of an activity by its ApplicationFailure type, never by message text. */
export function failureOf(err: unknown): CallError {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  if (cause instanceof ApplicationFailure)
    return { type: cause.type ?? FailureType.Unknown, message: cause.message, details: cause.details?.[0] as InvalidOutputDetails | undefined };
  if (cause instanceof TimeoutFailure) return { type: FailureType.Timeout, message: cause.message };
  return { type: cause instanceof Error ? cause.name : FailureType.Unknown, message: errorMessage(cause) };
}

/**
 * The LLM calls a failed `callLlm` made, retries included: the attempt number the activity
 * wrote into the failure's details; a last attempt that timed out (no details) after every
 * attempt was spent counts `maxAttempts`; otherwise one.
 */
export function callsOf(err: unknown, f: CallError, maxAttempts: number): number {
  const attempt = (f.details as { attempt?: unknown } | undefined)?.attempt;
  if (typeof attempt === 'number' && Number.isInteger(attempt) && attempt >= 1) return attempt;
  if (err instanceof ActivityFailure && err.retryState === RetryState.MAXIMUM_ATTEMPTS_REACHED) return maxAttempts;
  return 1;
}

/**
 * Thrown by a fast run (see {@link ItemRun.fast}) at its first failed call: the item goes on
 * in its own workflow from where the call left it.
 */
export class Handoff extends Error {
  readonly handoff: ItemHandoff;
  constructor(handoff: ItemHandoff) {
    super(`handed over after ${handoff.failure.type}`);
    this.name = 'Handoff';
    this.handoff = handoff;
  }
}

/** Thrown by a fast run whose item already has a stored row (a re-run or reset of its batch). */
export class AlreadyStored extends Error {
  readonly row: StoredSummary;
  constructor(row: StoredSummary) {
    super(`item already stored as ${row.status}`);
    this.name = 'AlreadyStored';
    this.row = row;
  }
}

/** Refits after a provider's context-length error, at most. */
export const MAX_REFITS = 2;

/** What the chain does after a failed call on a tier. */
export type NextStep =
  /** Ask the same tier again with the validation errors. */
  | { kind: 'repair' }
  /** Count and truncate again, reserving `reserve` output tokens (the provider's tokenizer counts more than ours). */
  | { kind: 'refit'; reserve: number }
  /** Leave this tier for the next one. */
  | { kind: 'next-tier' }
  /** No tier is left: the item fails and waits for review. */
  | { kind: 'give-up' };

/**
 * The decision after a failed call, pure so it is tested table by table:
 * invalid output is repaired while repairs remain; a context overflow is refitted
 * with a wider margin while refits remain (strategy `truncate`); anything else
 * moves to the next tier, or gives up on the last.
 */
export function nextStep(
  failure: CallError,
  counters: { repairs: number; refits: number; reserve: number },
  spec: Pick<PipelineSpec, 'repair' | 'truncation'>,
  tier: { contextWindow: number; lastTier: boolean },
): NextStep {
  if (failure.type === FailureType.InvalidOutput && failure.details && counters.repairs < spec.repair.maxRepairs) return { kind: 'repair' };
  if (failure.type === FailureType.ContextWindowExceeded && counters.refits < MAX_REFITS && spec.truncation.strategy === 'truncate') {
    return { kind: 'refit', reserve: Math.ceil(counters.reserve * 1.5 + tier.contextWindow * 0.1) };
  }
  return tier.lastTier ? { kind: 'give-up' } : { kind: 'next-tier' };
}

export class ItemRun {
  readonly input: ItemInput;
  readonly spec: PipelineSpec;
  item: Item;
  status: ItemOutcome['status'] = 'failed';
  tier: number | null = null;
  attempts = 0;
  retried = 0;
  inputTokens = 0;
  outputTokens = 0;
  costUsd = 0;
  truncation: TruncationInfo | null = null;
  lastError: ErrorContext | null = null;
  output: unknown = null;
  /** The last output a model gave, valid or not: what `approve` accepts when no output is supplied. */
  bestOutput: unknown = null;
  /** The schema's complaints about `bestOutput`. */
  bestOutputErrors: string[] = [];
  /** The latest calls (bounded), for the review console. */
  attemptLog: AttemptRecord[] = [];
  attemptsDropped = 0;
  /** The last human decision, stored in the row. */
  review: ReviewRecord | null = null;
  model: string | null = null;
  /** Which endpoint gave the answer. */
  endpoint: EndpointInfo | null = null;
  /** True when the answer came from the response cache. */
  cacheHit = false;
  /** Calls of this run answered by the response cache (each one a call the provider never saw). */
  cacheHits = 0;
  /** The last failure of each tier tried in this run of the chain. */
  tierFailures: TierFailure[] = [];
  /** Limits the first tier's provider advertised (its rate-limit headers). */
  rateLimit: RateLimitInfo | undefined;
  /** Tiers closed to this item by the batch's circuit breakers. */
  openTiers: number[];
  private call: { tier: number; scope: CancellationScope } | null = null;
  readonly startedAt: string;
  /** A step of a multi-step pipeline: how it differs from a whole item (see {@link StepMode}). */
  readonly stepMode: StepMode | null;
  /** Rewrites the row before it is stored (a multi-step item stores all its steps in it). */
  persistAs: ((row: PersistRequest) => PersistRequest) | null = null;
  /**
   * A fast run, in the batch's own workflow: one attempt on the first tier, and any
   * failure throws a {@link Handoff} instead of retrying, repairing or moving on.
   */
  readonly fast: boolean;
  /** Where a fast run left this item; consumed by the first `execute`. */
  private handoff: ItemHandoff | null;

  constructor(input: ItemInput, stepMode: StepMode | null = null, startedAt?: string, options: { fast?: boolean } = {}) {
    this.input = input;
    this.spec = input.pipeline;
    this.item = input.item;
    this.stepMode = stepMode;
    this.openTiers = stepMode?.sharedTiers === false ? [] : (input.openTiers ?? []);
    this.fast = options.fast === true;
    this.handoff = input.handoff ?? null;
    const h = input.handoff?.state;
    this.startedAt = startedAt ?? h?.startedAt ?? new Date().toISOString();
    if (h) {
      this.attempts = h.attempts;
      this.inputTokens = h.inputTokens;
      this.outputTokens = h.outputTokens;
      this.costUsd = h.costUsd;
      this.lastError = h.lastError;
      this.bestOutput = h.bestOutput;
      this.bestOutputErrors = h.bestOutputErrors;
      this.attemptLog = h.attemptLog;
      this.attemptsDropped = h.attemptsDropped;
      if (h.rateLimit) this.rateLimit = h.rateLimit;
    }
  }

  /** What crosses to the item workflow with a handoff. */
  private snapshot(): HandoffState {
    return {
      startedAt: this.startedAt,
      attempts: this.attempts,
      inputTokens: this.inputTokens,
      outputTokens: this.outputTokens,
      costUsd: this.costUsd,
      lastError: this.lastError,
      tierFailures: this.tierFailures,
      bestOutput: this.bestOutput,
      bestOutputErrors: this.bestOutputErrors,
      attemptLog: this.attemptLog,
      attemptsDropped: this.attemptsDropped,
      ...(this.rateLimit ? { rateLimit: this.rateLimit } : {}),
    };
  }

  /** The handoff of a fast run whose chain stopped without a call failing (a circuit opened, the item is invalid). */
  handoffAfterStop(): ItemHandoff {
    const failure = { type: this.lastError?.type ?? FailureType.Unknown, message: this.lastError?.message ?? '' };
    return { next: this.spec.providers.length > 1 ? 'next-tier' : 'give-up', failure, state: this.snapshot() };
  }

  get itemId(): string {
    return this.item.id;
  }

  get providerName(): string | null {
    return this.tier === null ? null : tierName(this.spec.providers[this.tier]!, this.tier);
  }

  /** The batch opened or closed circuits: a call on a tier that just opened is cancelled, and the chain moves on. */
  setOpenTiers(openTiers: number[]): void {
    if (this.stepMode?.sharedTiers === false) return;
    this.openTiers = openTiers;
    if (this.call && openTiers.includes(this.call.tier)) this.call.scope.cancel();
  }

  editInput(fields: Record<string, unknown>): void {
    this.item = { ...this.item, ...fields, id: this.item.id };
  }

  /** Remembers who decided what; the row keeps it. */
  recordReview(d: ReviewDecision, reviewer: string | null = d.reviewer ?? null): void {
    this.review = { decision: d.decision, reviewer, note: d.note ?? null, at: new Date().toISOString() };
  }

  /** The reviewDetails answer: masked and bounded. */
  details(): ReviewDetails {
    return reviewDetails({
      batchId: this.input.batchId,
      item: this.item,
      spec: this.spec,
      status: this.status,
      attempts: this.attemptLog,
      attemptsDropped: this.attemptsDropped,
      bestOutput: this.bestOutput,
      bestOutputErrors: this.bestOutputErrors,
      lastError: this.lastError,
      retried: this.retried,
      review: this.review,
    });
  }

  private logCall(t: number, model: string, outcome: string, reason: string, costUsd: number): void {
    const name = tierName(this.spec.providers[t]!, t);
    this.attemptsDropped += pushAttempt(this.attemptLog, { tier: t, tierName: name, model, outcome, reason, costUsd, at: new Date().toISOString() });
  }

  approve(output: unknown): void {
    this.status = 'approved';
    this.output = output !== undefined ? output : this.bestOutput;
  }

  /**
   * The call's slot: the item's first call sends at the shared limiter's time it was dispatched
   * with; since the limits2 patch every other call (retries, repairs, fallback tiers, later steps)
   * asks the batch for its own (workflows/call-slot.ts). Before it, only the first call was paced.
   */
  private slot(t: number): Pick<LlmRequest, 'notBefore' | 'pace'> {
    const paced = callPace(this.input, this.spec.providers[t]!, this.stepMode);
    if (paced && patched(LIMITS2_PATCH)) {
      // A handed-over item's next call is not the one it was dispatched with (the batch made that).
      const first = !this.slotUsed && (this.stepMode?.firstStep ?? true) && this.input.handoff === undefined;
      this.slotUsed = true;
      const at = first ? this.input.notBefore : undefined;
      // The dispatched call already holds its slot: only its retries ask.
      return { ...(at !== undefined ? { notBefore: at } : {}), pace: { ...paced, fromAttempt: first && (at !== undefined || !paced.permit) ? 2 : 1 } };
    }
    const at = this.input.notBefore;
    if (at === undefined || this.slotUsed) return {};
    this.slotUsed = true;
    return { notBefore: at };
  }

  private slotUsed = false;

  /** The item's secret field values, for the activities to redact (a model may quote them back). */
  private secrets(): { secretValues?: string[] } {
    const values = secretValuesOf(this.item, this.spec.secretFields);
    return values.length > 0 ? { secretValues: values } : {};
  }

  /** Records a failure of the item (of a tier when `provider` is given): what review shows. */
  fail(type: string, message: string, provider?: string): void {
    const now = new Date().toISOString();
    if (provider !== undefined) {
      // One line per tier (its latest failure), bounded: the reason travels in the batch's state.
      const entry = { provider, type, message: message.length > MAX_REASON_CHARS ? `${message.slice(0, MAX_REASON_CHARS)}...` : message };
      this.tierFailures = [...this.tierFailures.filter((f) => f.provider !== provider), entry];
    }
    this.lastError = {
      type,
      message,
      attempts: this.attempts,
      provider,
      firstAt: this.lastError?.firstAt ?? now,
      lastAt: now,
      ...(this.tierFailures.length > 0 ? { tiers: this.tierFailures } : {}),
    };
  }

  /** What a reviewer reads: every tier tried, each with its own failure. */
  get reviewReason(): string {
    if (!this.lastError) return '';
    if (this.tierFailures.length <= 1) return this.lastError.message;
    return this.tierFailures.map((f) => `${f.provider}: ${f.type}: ${f.message}`).join(' | ');
  }

  /** Runs the chain from `startTier` to a final state: succeeded, or failed (then a human decides). */
  async execute(startTier: number): Promise<void> {
    this.status = 'failed';
    this.tierFailures = [];
    this.cacheHit = false;
    const problems = validateItem(this.item, this.spec);
    if (problems.length > 0) return this.fail(FailureType.InvalidItem, problems.join('; '));
    const messages = renderMessages(this.spec, this.item);
    const tiers = this.spec.providers;
    // Handed over by the batch's fast path: go on from its first call.
    const handoff = this.handoff;
    this.handoff = null;
    if (handoff) {
      this.tierFailures = handoff.state.tierFailures;
      if (handoff.next === 'give-up') return;
      if (handoff.next === 'next-tier') startTier = Math.max(startTier, 1);
    }
    const last = this.fast ? Math.min(1, tiers.length) : tiers.length;
    for (let t = startTier; t < last; t++) {
      // The last tier is tried even when open: an item gives up only after every tier said no.
      if (this.openTiers.includes(t) && t < tiers.length - 1) {
        this.fail(FailureType.CircuitOpen, `circuit of ${tierName(tiers[t]!, t)} is open`, tierName(tiers[t]!, t));
        continue;
      }
      const result = await this.runTier(t, messages, t === 0 && handoff && handoff.next !== 'next-tier' ? handoff : undefined);
      if (result) {
        this.status = 'succeeded';
        this.tier = t;
        this.model = result.model;
        this.output = result.json !== undefined ? result.json : result.text;
        this.endpoint = result.endpoint ?? null;
        this.cacheHit = result.cached !== undefined;
        return;
      }
    }
  }

  /**
   * One tier: fit the context, call, repair invalid output. Null when the tier gave up.
   * `resume`: a fast run's failed first call on this tier; the walk goes on from it.
   */
  private async runTier(t: number, original: ChatMessage[], resume?: ItemHandoff): Promise<LlmResult | null> {
    const provider = this.spec.providers[t]!;
    const name = tierName(provider, t);
    const larger = this.spec.providers.some((p, i) => i > t && contextWindowOf(p) > contextWindowOf(provider));
    let reserve = provider.maxOutputTokens;
    const window = contextWindowOf(provider);
    // Short prompts provably fit: skip the counting activity (the provider's usage gives the exact count).
    let fit: TruncateResult = surelyFits(original, window, reserve)
      ? { messages: original, inputTokens: 0, contextWindow: window, truncation: null, fits: true }
      : await tokens.countAndTruncate({ provider, messages: original, reserveOutputTokens: reserve });
    if (!fit.fits) return (this.fail(FailureType.ContextWindowExceeded, `${fit.inputTokens} tokens do not fit ${name}'s window of ${fit.contextWindow}`, name), null);
    if (fit.truncation && (this.spec.truncation.strategy === 'fail' || (this.spec.truncation.strategy === 'larger-model' && larger))) {
      return (this.fail(FailureType.ContextWindowExceeded, `input needs truncation for ${name} (strategy ${this.spec.truncation.strategy})`, name), null);
    }
    let messages = fit.messages;
    if (fit.truncation) this.truncation = fit.truncation;
    // Each attempt's own timeout grows (provider.timeoutGrowth); start-to-close covers the longest.
    const retry = this.spec.retry;
    // A fast run's call writes the row when it succeeds, so a cancelled one is waited for: either it
    // confirms the cancel (and wrote nothing) or its success is the item's, never both.
    const llm = proxyActivities<Activities>({
      ...llmCallFor(provider, this.fast ? { ...retry, maxAttempts: 1 } : retry),
      ...(this.fast ? { cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED } : {}),
      summary: `${name}: ${provider.model}`,
    });
    // After a fast run's transient failure, its one attempt counts against the tier's attempts.
    const rest = resume?.next === 'retry' ? Math.max(1, retry.maxAttempts - 1) : retry.maxAttempts;
    const llmFirst =
      rest === retry.maxAttempts ? llm : proxyActivities<Activities>({ ...llmCallFor(provider, { ...retry, maxAttempts: rest }), summary: `${name}: ${provider.model}` });
    let first = true;
    let repairs = 0;
    let refits = 0;
    const sharedPrefix = staticPrefixLength(this.spec.prompt?.template ?? '');
    /** Takes the step the chain chose after a failed call; false when the tier gave up. */
    const goOn = async (step: NextStep, f: CallError): Promise<boolean> => {
      switch (step.kind) {
        case 'repair':
          repairs += 1;
          messages = repairMessages(messages, f.details!.text, f.details!.errors);
          return true;
        case 'refit':
          refits += 1;
          reserve = step.reserve;
          fit = await tokens.countAndTruncate({ provider, messages: original, reserveOutputTokens: reserve });
          if (!fit.fits) return false;
          messages = fit.messages;
          if (fit.truncation) this.truncation = fit.truncation;
          return true;
        case 'next-tier':
        case 'give-up':
          return false;
      }
    };
    // A fast run's failed call, handed over: its repair or refit is the first step here.
    if (resume?.next === 'repair' && resume.failure.details && !(await goOn({ kind: 'repair' }, resume.failure))) return null;
    if (resume?.next === 'refit' && resume.reserve !== undefined && !(await goOn({ kind: 'refit', reserve: resume.reserve }, resume.failure))) return null;
    for (;;) {
      const maxAttempts = this.fast ? 1 : first ? rest : retry.maxAttempts;
      const proxy = first ? llmFirst : llm;
      const prior = first && resume?.next === 'retry' ? 1 : 0;
      first = false;
      try {
        const scope = new CancellationScope();
        this.call = { tier: t, scope };
        const req = {
          batchId: this.input.batchId,
          itemId: this.itemId,
          tier: t,
          provider,
          messages,
          output: this.spec.output,
          ...(sharedPrefix > 0 ? { sharedPrefixChars: sharedPrefix } : {}),
          ...(this.input.parentWorkflowId && !this.stepMode ? { reportTo: this.input.parentWorkflowId } : {}),
          ...(this.stepMode ? { step: this.stepMode.name } : {}),
          ...this.slot(t),
          ...this.secrets(),
          ...this.cacheOption(),
          ...(this.fast ? { ifNotStored: true as const, persistRow: this.fastRow() } : {}),
          ...(prior > 0 ? { priorAttempts: prior } : {}),
        };
        // A mode: batch tier answers through the provider's Batch API (workflows/item-batch.ts).
        const viaBatch = provider.mode === 'batch' && patched('batchmode-v1');
        const r = await scope.run(() => (viaBatch ? callViaBatch(req, this.input.parentWorkflowId) : proxy.callLlm(req)));
        if (r.stored) throw new AlreadyStored(r.stored);
        this.persisted = r.persisted === true;
        // Success reaches the breaker with the item's outcome (one signal fewer per item).
        // A cache hit made no provider request: only the failed attempts before it count.
        this.record(r.usage, r.costUsd, r.cached ? r.attempt - 1 : r.attempt);
        this.logCall(t, r.model, r.cached ? 'cache-hit' : 'ok', '', r.costUsd);
        if (r.cached) this.cacheHits += 1;
        if (t === 0 && r.rateLimit) this.rateLimit = r.rateLimit;
        return r;
      } catch (err) {
        if (isCancellation(err) && this.openTiers.includes(t) && !CancellationScope.current().consideredCancelled) {
          // The call in flight reached the provider: it counts.
          this.attempts += 1;
          this.fail(FailureType.CircuitOpen, `circuit of ${name} opened during the call`, name);
          return null;
        }
        if (isCancellation(err) || err instanceof AlreadyStored) throw err;
        const f = failureOf(err);
        this.attempts += callsOf(err, f, maxAttempts);
        // A rejected answer (invalid, refused, cut off) was billed: its tokens and cost count.
        const cost = f.details?.usage ? (provider.mode === 'batch' ? batchCostOf : costOf)(provider.pricing, f.details.usage) : 0;
        if (f.details?.usage) this.record(f.details.usage, cost, 0);
        if (f.details?.text !== undefined) {
          this.bestOutput = f.details.text;
          this.bestOutputErrors = f.details.errors ?? [];
        }
        this.logCall(t, provider.model, f.type, f.message, cost);
        // A fast run's transient failure is retried by the item workflow, like a retry inside the activity: not yet the item's failure.
        if (this.fast && this.transient(f)) throw new Handoff(this.handoffOf({ kind: 'next-tier' }, f));
        this.fail(f.type, f.message, name);
        if (PROVIDER_FAULTS.includes(f.type)) await this.reportTier(t, false, f.type);
        const step = nextStep(f, { repairs, refits, reserve }, this.spec, { contextWindow: contextWindowOf(provider), lastTier: t === this.spec.providers.length - 1 });
        if (this.fast) throw new Handoff(this.handoffOf(step, f));
        if (!(await goOn(step, f))) return null;
      } finally {
        this.call = null;
      }
    }
  }

  /** A fast run's failed call, handed over: a transient failure is retried on the tier; the rest as `step` says. */
  private handoffOf(step: NextStep, f: CallError): ItemHandoff {
    const transient = this.transient(f);
    const next = transient ? 'retry' : step.kind;
    return {
      next,
      failure: { type: f.type, message: f.message, ...(f.details ? { details: f.details } : {}) },
      ...(step.kind === 'refit' && !transient ? { reserve: step.reserve } : {}),
      state: this.snapshot(),
    };
  }

  /** True when the tier's retry policy would try again after this failure. */
  private transient(f: CallError): boolean {
    return !(NON_RETRYABLE_TYPES as readonly string[]).includes(f.type) && this.spec.retry.maxAttempts > 1;
  }

  /** True when the call wrote the item's row itself (a fast run's success). */
  persisted = false;

  /** What a fast run's call writes into the row beyond its answer. */
  private fastRow(): FastRow {
    const fields = this.spec.secretFields;
    return { startedAt: this.startedAt, ...(fields && fields.length > 0 ? { secretFields: fields } : {}), cache: this.spec.cache?.enabled === true };
  }

  /** Cancels the call in flight, if any (the batch cancels a fast run this way). */
  cancelCall(): void {
    this.call?.scope.cancel();
  }

  /** The request's cache option when the spec turns the response cache on. */
  private cacheOption(): { cache?: { maxAgeMs?: number } } {
    const c = this.spec.cache;
    if (!c?.enabled) return {};
    return { cache: c.maxAge !== undefined ? { maxAgeMs: c.maxAge } : {} };
  }

  /** Feeds the batch's circuit breaker for this tier. */
  private async reportTier(tier: number, ok: false, errorType: string): Promise<void> {
    if (!this.input.parentWorkflowId || this.stepMode?.sharedTiers === false) return;
    try {
      await getExternalWorkflowHandle(this.input.parentWorkflowId).signal(tierResultSignal, { tier, ok, errorType });
    } catch {
      // The batch is gone; the breaker does not matter any more.
    }
  }

  private record(usage: { inputTokens: number; outputTokens: number }, cost: number, attempt: number): void {
    this.inputTokens += usage.inputTokens;
    this.outputTokens += usage.outputTokens;
    this.costUsd += cost;
    this.attempts += attempt;
  }

  /** Writes the item's row: an idempotent upsert by (batch id, item id). */
  async persist(): Promise<void> {
    await store.persistResult(this.row());
  }

  /** The item's row as it stands. */
  row(): PersistRequest {
    const ok = this.status === 'succeeded' || this.status === 'approved';
    const rec: PersistRequest = {
      batchId: this.input.batchId,
      itemId: this.itemId,
      status: this.status,
      output: ok ? this.output : null,
      provider: this.providerName,
      model: this.model,
      tier: this.tier,
      attempts: this.attempts,
      inputTokens: this.inputTokens,
      outputTokens: this.outputTokens,
      costUsd: this.costUsd,
      truncation: this.truncation,
      error: this.status === 'succeeded' ? null : this.lastError,
      ...(this.review ? { review: this.review } : {}),
      endpoint: ok ? this.endpoint : null,
      ...(this.spec.cache?.enabled && ok ? { cacheHit: this.allFromCache() } : {}),
      startedAt: this.startedAt,
      finishedAt: new Date().toISOString(),
      secretFields: this.spec.secretFields,
      ...this.secrets(),
      firstFailureAt: this.lastError?.firstAt ?? null,
    };
    return this.persistAs ? this.persistAs(rec) : rec;
  }

  outcome(): ItemOutcome {
    return {
      itemId: this.itemId,
      status: this.status,
      tier: this.tier,
      provider: this.providerName,
      attempts: this.attempts,
      inputTokens: this.inputTokens,
      outputTokens: this.outputTokens,
      costUsd: this.costUsd,
      truncated: this.truncation !== null,
      errorType: this.status === 'succeeded' ? null : (this.lastError?.type ?? null),
      retried: this.retried,
      ...(this.rateLimit ? { rateLimit: this.rateLimit } : {}),
      ...(this.endpoint && this.status === 'succeeded' ? { endpoint: this.endpoint } : {}),
      ...(this.allFromCache() ? { cacheHit: true } : {}),
      ...(this.cacheHits > 0 ? { cacheHits: this.cacheHits } : {}),
    };
  }

  /** The answer came from the cache and no call of this run reached a provider. */
  private allFromCache(): boolean {
    return this.cacheHit && this.status === 'succeeded' && this.attempts === 0;
  }
}

/**
 * How a step of a multi-step item runs the chain: its calls do not free the item's
 * concurrency slot (later steps still call), and a step with its own providers
 * neither reads nor feeds the batch's circuit breakers (they count the pipeline's tiers).
 */
export interface StepMode {
  name: string;
  sharedTiers: boolean;
  /** The item's whole pipeline: its first tier is the one the batch's shared limiter paces. */
  pipeline?: PipelineSpec;
  /** False for the steps after the first: the item's dispatched slot is not theirs. */
  firstStep?: boolean;
}

/** Longest failure message kept per tier in the review reason. */
const MAX_REASON_CHARS = 400;

/** Characters of a template before its first placeholder: the part every item's prompt shares. */
export function staticPrefixLength(template: string): number {
  const i = template.indexOf('{{');
  return i < 0 ? 0 : i;
}
