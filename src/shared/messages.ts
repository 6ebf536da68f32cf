/**
 * Every signal, query and update, defined once. The CLI and tests import these
 * definitions; nothing sends one by a string literal.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { ItemOutcome } from './types.ts';

/** A human decision on an item that failed for good (a stable payload: people type it into the Temporal CLI). */
export interface ReviewDecision {
  decision: 'approve' | 'retry' | 'skip';
  /** With `approve`: the output to accept (validated against the schema). */
  output?: unknown;
  /** With `retry`: fields that replace the item's (the id stays). */
  input?: Record<string, unknown>;
  /** With `retry`: the name (or index) of the tier to start from. */
  provider?: string;
  note?: string;
  /** Who decided (a person's name, or the auth proxy's user); kept in the item's row and history. */
  reviewer?: string;
}

/** On the batch workflow the decision names its item. */
export interface BatchReviewDecision extends ReviewDecision {
  itemId: string;
}

/** Longest reason the batch keeps per item awaiting review; the item and its row keep the full text. */
export const REVIEW_REASON_CHARS = 120;

/** A reason cut to {@link REVIEW_REASON_CHARS}, whitespace folded (an HTML error page stays readable). */
export function shortReason(reason: string): string {
  const flat = reason.replace(/\s+/g, ' ').trim();
  return flat.length <= REVIEW_REASON_CHARS ? flat : `${flat.slice(0, REVIEW_REASON_CHARS - 3)}...`;
}

/** One item awaiting review, as the progress query lists it (`reason` cut by {@link shortReason}). */
export interface PendingReview {
  itemId: string;
  errorType: string;
  reason: string;
  since: string;
  /** The step it waits at (multi-step pipelines). */
  step?: string;
}

export interface Progress {
  batchId: string;
  total: number | null;
  started: number;
  /** Items working now: started, not finished, not waiting for a human. */
  running: number;
  /** Items waiting for a human decision (they hold no slot and are not counted as running). */
  awaitingReviewCount: number;
  /** Items waiting for review by error type, e.g. `{ AuthFailed: 2, InvalidItem: 1 }`. */
  awaitingByType: Record<string, number>;
  /** Items not started yet (inline queue or the buffered page of a source). */
  queued: number;
  /** With `batch.adaptiveConcurrency`: the calls allowed in flight now, and the provider sheds it has seen. */
  adaptive?: { limit: number; sheds: number; decreases: number };
  /** True when nothing can proceed until a person decides: no item runs or waits to start. */
  waitingOnReviews: boolean;
  succeeded: number;
  failed: number;
  skipped: number;
  approved: number;
  /** The first items awaiting review (at most 50; the whole queue: the `reviewQueue` query). */
  awaitingReview: PendingReview[];
  /** Items finished per minute while work could proceed (since the start, up to the last finish while only reviews are left). */
  ratePerMinute: number;
  /** Seconds until the work that can proceed is done at that rate; null when unknown or when only reviews are left. */
  etaSeconds: number | null;
  paused: boolean;
  pausedReason: string | null;
  circuits: Record<string, { state: 'closed' | 'open' | 'half_open'; failures: number; openUntil: string | null }>;
  runs: number;
  /** Multi-step pipelines: per step, the items working on it and those awaiting review at it. */
  steps?: Record<string, { running: number; awaitingReview: number }>;
  /** The batch's spending limit; absent without `pipeline.budget`. */
  budget?: BudgetStatus;
}

/** Where a batch stands against its budget. */
export interface BudgetStatus {
  maxCostUsd: number;
  /** Booked: the cost of the items that reported. */
  spentUsd: number;
  /** Estimated cost of the items started and not yet reported. */
  reservedUsd: number;
  /** `paused`: no item starts until the budget is raised; `stopped`: the items not started were skipped. */
  state: 'ok' | 'paused' | 'stopped';
  /** Items written as skipped because the budget stopped the batch. */
  skipped: number;
}

/** A new, higher budget for a batch. */
export interface SetBudgetRequest {
  maxCostUsd: number;
}

/** Raise a batch's budget (`steadfast resume <batch> --budget 12.5`); a paused batch resumes. Rejects a lower or invalid value. */
export const setBudgetUpdate = defineUpdate<BudgetStatus, [SetBudgetRequest]>('setBudget');

/** Item → batch: the item is finished (or waits for review). Addressed by workflow id, so it survives continue-as-new. */
export const itemDoneSignal = defineSignal<[ItemOutcome]>('itemDone');

/**
 * callLlm activity → batch: this item's call succeeded, so its concurrency slot is free while
 * the item persists and reports. Sent by the activity itself, a workflow task earlier than the item could.
 */
export const callDoneSignal = defineSignal<[{ itemId: string; latencyMs?: number }]>('itemCallDone');

/** Item → batch: the item failed for good and waits for a human. */
export const itemAwaitingSignal = defineSignal<[PendingReview]>('itemAwaitingReview');

/** Item → batch: outcome of one call on a tier, for the circuit breakers. */
export const tierResultSignal = defineSignal<[{ tier: number; ok: boolean; errorType?: string }]>('tierResult');

/** Batch → running items: which tiers are closed to them now (circuit breaker broadcast). */
export const circuitSignal = defineSignal<[{ openTiers: number[] }]>('circuits');

/** Human review: on the batch with `itemId`, on an item without. */
export const reviewSignal = defineSignal<[BatchReviewDecision | ReviewDecision]>('review');

/** The same decision as an Update: the validator gives a synchronous accept or a clear rejection. */
export const reviewUpdate = defineUpdate<{ accepted: true; itemId: string }, [BatchReviewDecision | ReviewDecision]>('reviewItem');

/** Which items awaiting review a bulk decision applies to; absent fields match everything. */
export interface ReviewFilter {
  /** Only items waiting because of this failure type (e.g. `AuthFailed`). */
  errorType?: string;
  /** Only items waiting since this time or earlier (ISO 8601). */
  since?: string;
  /** Only these items. */
  itemIds?: string[];
  /** Only items waiting at this step (multi-step pipelines). */
  step?: string;
}

/** A decision for every item awaiting review that matches `filter` (on the batch workflow). */
export interface BulkReviewDecision extends ReviewDecision {
  filter?: ReviewFilter;
}

/** What a bulk decision changed. */
export interface BulkReviewResult {
  /** Items that matched the filter and received the decision. */
  decided: number;
  /** Their ids (at most the first 1,000, to keep the answer small). */
  itemIds: string[];
  /** Items awaiting review that the filter left alone. */
  remaining: number;
}

/** A bulk decision as an Update (`steadfast review skip <batch> --all`): validated, then applied to every matching item. */
export const reviewManyUpdate = defineUpdate<BulkReviewResult, [BulkReviewDecision]>('reviewMany');

/** A request to cancel a batch. */
export interface CancelRequest {
  reason?: string;
  /** Overrides the spec's `batch.rollbackOnCancel` for this cancel. */
  rollback?: 'none' | 'mark' | 'delete';
}

/** What a cancel found: the items it stops (running or awaiting review) and those it never starts. */
export interface CancelAccepted {
  batchId: string;
  stopping: number;
  /** Items not started yet; null when the source was not read to its end. */
  notStarted: number | null;
  rollback: 'none' | 'mark' | 'delete';
}

/** Cancel the batch as an Update (`steadfast cancel`): no new item starts, running ones are cancelled, their rows say so. */
export const cancelUpdate = defineUpdate<CancelAccepted, [CancelRequest]>('cancel');

/** The same as a fire-and-forget signal (`temporal workflow signal --name cancel`). */
export const cancelSignal = defineSignal<[CancelRequest]>('cancel');

/** Resume a paused batch (after too many consecutive failures). */
export const resumeSignal = defineSignal<[]>('resume');

export const progressQuery = defineQuery<Progress>('progress');

/** A page of the batch's review queue, in the order the items started to wait. */
export interface ReviewQueuePage {
  items: PendingReview[];
  /** Items awaiting review in all. */
  total: number;
  /** Offset of the next page; null after the last. */
  next: number | null;
}

/** Batch: a page of the review queue (`limit` at most 1,000). */
export const reviewQueueQuery = defineQuery<ReviewQueuePage, [{ offset?: number; limit?: number }?]>('reviewQueue');

/** Item state for the CLI: its status and why it waits. */
/** One call of a tier, as the review console shows it: the tier, the model, why it failed and what it cost. */
export interface AttemptRecord {
  tier: number;
  tierName: string;
  model: string;
  /** `ok`, or the failure type (RateLimited, InvalidOutput, ...). */
  outcome: string;
  /** The failure's message (truncated, secrets masked); empty on success. */
  reason: string;
  costUsd: number;
  at: string;
}

/** Everything a reviewer needs about one item, with secret field values masked (reviewDetails query). */
export interface ReviewDetails {
  batchId: string;
  itemId: string;
  status: string;
  /** The item's current fields; secret fields masked, long texts truncated. */
  input: Record<string, unknown>;
  /** The prompt as rendered from the masked fields. */
  messages: { role: string; content: string }[];
  attempts: AttemptRecord[];
  /** Calls beyond the recorded ones (the list keeps the latest). */
  attemptsDropped: number;
  /** The last output a model gave (text), valid or not; null when none. */
  bestOutput: string | null;
  /** The schema's complaints about `bestOutput`, as the validator gave them. */
  bestOutputErrors: string[];
  lastError: { type: string; message: string; provider?: string } | null;
  output: { format: 'text' | 'json'; schema?: Record<string, unknown> };
  tiers: { name: string; model: string }[];
  secretFields: string[];
  retried: number;
  review: ReviewRecord | null;
  /** Multi-step pipelines: the step the item waits at, and the outputs of the steps before it (clipped). */
  step?: { name: string; index: number; of: number; earlier: { name: string; status: string; output: string | null }[] };
}

/** The last decision an item received, kept in its row (`review` column). */
export interface ReviewRecord {
  decision: ReviewDecision['decision'];
  reviewer: string | null;
  note: string | null;
  at: string;
}

/** Item: what a reviewer needs, bounded in size (see src/shared/review-details.ts). */
export const reviewDetailsQuery = defineQuery<ReviewDetails>('reviewDetails');

export const itemStateQuery = defineQuery<{ status: string; errorType: string | null; reason: string | null; tier: number | null; step?: string }>('itemState');

/** Item -> batch: a multi-step item moved on to a later step (progress shows where each item is). */
export const itemStepSignal = defineSignal<[{ itemId: string; step: string }]>('itemStep');

/**
 * What each handler does, shown in the Web UI's signal, query and update dialogs. Internal
 * messages (sent by items and activities, never by people) say so first.
 */
export const HANDLER_DESCRIPTIONS: Record<string, string> = {
  itemDone: 'Internal (item -> batch): the item finished and persisted its row. Do not send by hand.',
  itemCallDone: "Internal (activity -> batch): an item's LLM call succeeded; its slot is free. Do not send by hand.",
  itemAwaitingReview: 'Internal (item -> batch): the item failed for good and waits for a person. Do not send by hand.',
  itemStep: 'Internal (item -> batch): a multi-step item started its next step. Do not send by hand.',
  tierResult: 'Internal (item -> batch): a provider fault on a tier, for the circuit breakers. Do not send by hand.',
  circuits: 'Internal (batch -> item): tiers closed by the circuit breakers. Do not send by hand.',
  review:
    'A person decides an item that waits for review. On the batch: {"itemId":"t7","decision":"approve"|"retry"|"skip","output"?:...,"input"?:{...},"provider"?:"tier","note"?:"..."}; on an item the same without itemId. Ignored (and logged) when the item is not waiting.',
  reviewItem: 'The review decision as an Update: validated first, rejected with a clear message (bad output, unknown item, not waiting).',
  reviewMany: 'One decision for every waiting item that matches {"filter":{"errorType"?:"AuthFailed","since"?:"<ISO time>","itemIds"?:[...]}}; answers with how many changed.',
  cancel: 'Cancel the batch: {"reason"?:"...","rollback"?:"none"|"mark"|"delete"}. Nothing new starts, running and waiting items stop, their rows say cancelled.',
  resume: 'Resume a batch paused after too many consecutive failures.',
  setBudget: 'Raise the batch budget: {"maxCostUsd":12.5}. A batch paused at its budget resumes; a lower or invalid value is rejected.',
  progress: 'Counts by state (running apart from awaiting review), rate, ETA, circuits, and the first 50 items awaiting review.',
  reviewQueue: 'A page of the items awaiting review, oldest first: {"offset"?:0,"limit"?:1000}; answers {items, total, next}.',
  itemState: "The item's status, error type, reason and tier (and, in a multi-step pipeline, its step).",
  reviewDetails: 'What a reviewer needs: input fields (secret ones masked), calls, best output, schema errors.',
};

/** The options of `setHandler` for a message: its description. */
export function described(def: { name: string }): { description: string } {
  return { description: HANDLER_DESCRIPTIONS[def.name] ?? def.name };
}
