/**
 * The batch's durable state. It is a plain record (no Map/Set: the default
 * converter writes them as `{}`) so it crosses continue-as-new unchanged.
 */
import { FailureType } from '../src/shared/failures.ts';
import type { Item, PipelineSpec } from '../src/shared/spec.ts';
import { batchPolicyMarkdown } from '../src/shared/batch-details.ts';
import { tierName } from '../src/shared/tiers.ts';
import type { BatchSummary, ItemOutcome, RateLimitInfo } from '../src/shared/types.ts';
import { closedCircuit } from './circuit.ts';
import type { CircuitState } from './circuit.ts';
import { shortReason } from '../src/shared/messages.ts';
import type { PendingReview, Progress, ReviewDecision, ReviewQueuePage } from '../src/shared/messages.ts';
import { newPacer } from './pacer.ts';
import { addStepStats } from '../src/shared/pipeline-steps.ts';
import type { StepStats } from '../src/shared/pipeline-steps.ts';
import type { PacerState } from './pacer.ts';
import type { BudgetCarry } from './batch-budget.ts';
import type { LimitsCarry } from './batch-limits.ts';

/** Everything the next run needs after continue-as-new. */
export interface BatchCarry {
  batchId: string;
  pipeline: PipelineSpec;
  /** Inline items not yet started (inline input), or the page buffer (source input). */
  queue: Item[];
  source: {
    jsonl: string;
    offset: number;
    line: number;
    done: boolean;
    /** Set once the source was scanned (its total is known from the start). */
    scanned?: boolean;
    /** `[line, firstLine]` of lines not yet read that repeat an earlier id (from the scan). */
    duplicates?: [number, number][];
  } | null;
  total: number | null;
  /** Ids of started items that have not reported back. */
  running: string[];
  /** Running items whose LLM call succeeded: they persist and report, and no longer hold a slot. */
  released?: string[];
  /** Running items waiting inside a provider batch (`mode: batch` tiers): they hold no slot and do not count in flight. */
  parked?: string[];
  started: number;
  counts: { succeeded: number; failed: number; skipped: number; approved: number; cancelled?: number };
  retried: number;
  attempts: number;
  inputTokens: number;
  outputTokens: number;
  costUsd: number;
  truncated: number;
  tierUse: Record<string, number>;
  /** Items answered per endpoint (`<vendor> <host>`); absent in batches carried over from before it existed. */
  endpoints?: Record<string, number>;
  /** Items answered by the fault-injecting provider. */
  simulated?: number;
  /** Items answered by the response cache. */
  cacheHits?: number;
  /**
   * Items awaiting review, compact so 10,000 of them stay far under the payload limit:
   * ids, an index into `reasons` (error type and a short reason) and since when. Full
   * reasons live on the item (its `itemState` query) and in its stored row.
   */
  reviews: ReviewRecord;
  /** The review queue of runs started before {@link ReviewRecord}; converted on load. */
  pendingReviews?: PendingReview[];
  /**
   * Bulk decisions accepted but not yet delivered to their items: the batch loop sends them a
   * chunk of signals at a time, so a `reviewMany` over 10,000 items answers at once. Absent
   * in batches from before it existed.
   */
  outbox?: { decision: ReviewDecision; itemIds: string[] }[];
  consecutiveFailures: number;
  /** Why dispatch is paused (too many consecutive failures); null while running. */
  paused: string | null;
  /** Set when the batch stops dispatching for good (`onTooManyFailures: stop`). */
  stopped: boolean;
  /** One circuit breaker per provider tier, by index. */
  circuits: CircuitState[];
  /** Dispatch pacing to the first tier's rate limits. */
  pacer: PacerState;
  /** Limits the first tier's provider advertised in its headers; absent until one answered. */
  learnedLimit?: RateLimitInfo;
  /** Permits of the shared rate limiter and the adaptive concurrency limit (workflows/batch-limits.ts). */
  limits?: LimitsCarry;
  /** Alerts already sent, so each fires once per batch. */
  alerted: { errorRate: boolean };
  startedAt: string;
  /** Set by a cancel: no item starts any more, running ones are being cancelled. */
  cancel?: { reason: string; rollback: 'none' | 'mark' | 'delete'; at: string; rowsRolledBack?: number };
  /** Items that entered review since the last review digest, by error type, and when that digest went out (epoch ms). */
  reviewDigest?: { since: Record<string, number>; lastAt: number | null };
  /** When the last item finished (ISO); the rate stops at it while only reviews are left. */
  lastFinishedAt?: string;
  /** Multi-step pipelines: the step of each running item past its first (item id -> step name). */
  stepOf?: Record<string, string>;
  /** Multi-step pipelines: tokens, cost, failures and fallbacks per step, over the finished items. */
  stepStats?: Record<string, StepStats>;
  /** The spending limit's state (workflows/batch-budget.ts); absent without `pipeline.budget`. */
  budget?: BudgetCarry;
  runs: number;
}

/** Why items wait: error type, short reason, and (multi-step pipelines) the step. */
export type ReviewReason = [errorType: string, reason: string, step?: string];

/** One item awaiting review: item id, index into {@link ReviewRecord.reasons}, since (epoch ms). */
export type ReviewEntry = [itemId: string, reason: number, sinceMs: number];

/** The review queue in the batch record. */
export interface ReviewRecord {
  /** Distinct `[errorType, short reason, step?]` entries the queue points at (the step in multi-step pipelines). */
  reasons: ReviewReason[];
  /** In the order the items started to wait. */
  queue: ReviewEntry[];
}

/** Distinct reasons kept; past it a new reason is recorded as its error type only (one more entry per type). */
export const REVIEW_REASONS_MAX = 256;
/** Items awaiting review that the `progress` query lists (all of them: `reviewQueue`). */
export const PROGRESS_REVIEWS = 50;

export function initialCarry(batchId: string, pipeline: PipelineSpec, items: Item[] | undefined, source: { jsonl: string } | undefined, now: string): BatchCarry {
  return {
    batchId,
    pipeline,
    queue: items ?? [],
    source: source ? { jsonl: source.jsonl, offset: 0, line: 1, done: false } : null,
    total: items ? items.length : null,
    running: [],
    started: 0,
    counts: { succeeded: 0, failed: 0, skipped: 0, approved: 0 },
    retried: 0,
    attempts: 0,
    inputTokens: 0,
    outputTokens: 0,
    costUsd: 0,
    truncated: 0,
    tierUse: {},
    reviews: { reasons: [], queue: [] },
    consecutiveFailures: 0,
    paused: null,
    stopped: false,
    circuits: pipeline.providers.map(() => closedCircuit()),
    pacer: newPacer(null, Date.parse(now)),
    alerted: { errorRate: false },
    startedAt: now,
    runs: 1,
  };
}

/**
 * The one writer of the batch's durable record: every change goes through a
 * method here, which keeps the record's invariants (an item is running, pending
 * or finished, never two of them; counts add up). Other classes read it through
 * {@link BatchState.view}.
 */
export class BatchState {
  private readonly s: BatchCarry;
  /** Indexes of the record (rebuilt on load, never carried). */
  private readonly runningIds: Set<string>;
  private readonly pendingIds: Set<string>;
  private readonly reasonIndex = new Map<string, number>();
  /** Items awaiting review per error type, kept as the queue changes (progress is read on every message). */
  private readonly pendingByType = new Map<string, number>();
  /** Items awaiting review per step (multi-step pipelines), kept like {@link pendingByType}. */
  private readonly pendingByStep = new Map<string, number>();

  constructor(carry: BatchCarry) {
    this.s = carry;
    const legacy = carry.pendingReviews;
    delete this.s.pendingReviews;
    this.s.reviews ??= { reasons: [], queue: [] };
    this.s.reviews.reasons.forEach((r, i) => this.reasonIndex.set(reasonKey(r), i));
    this.runningIds = new Set(carry.running);
    this.pendingIds = new Set(this.s.reviews.queue.map((e) => e[0]));
    for (const e of this.s.reviews.queue) this.countType(this.typeOf(e), 1, this.s.reviews.reasons[e[1]]?.[2]);
    for (const p of legacy ?? []) this.enqueueReview(p);
  }

  /** True when the item was started and has not reported back. */
  isRunning(itemId: string): boolean {
    return this.runningIds.has(itemId);
  }

  /** True when the item waits for a human. */
  isPending(itemId: string): boolean {
    return this.pendingIds.has(itemId);
  }

  /** Items awaiting review. */
  get pendingCount(): number {
    return this.s.reviews.queue.length;
  }

  /** The step an item awaits review at (multi-step pipelines); undefined otherwise. */
  pendingStep(itemId: string): string | undefined {
    if (!this.pendingIds.has(itemId)) return undefined;
    const e = this.s.reviews.queue.find((x) => x[0] === itemId);
    return e ? this.s.reviews.reasons[e[1]]?.[2] : undefined;
  }

  /** Ids of the items awaiting review. */
  pendingItemIds(): string[] {
    return this.s.reviews.queue.map((e) => e[0]);
  }

  /** Up to `limit` items awaiting review from position `offset`, reasons expanded. */
  pendingPage(offset: number, limit: number): PendingReview[] {
    return this.s.reviews.queue.slice(Math.max(0, offset), Math.max(0, offset) + Math.max(0, limit)).map((e) => this.expand(e));
  }

  /** A page of the review queue for the `reviewQueue` query (`limit` capped at 1,000). */
  reviewQueuePage(offset: number, limit: number): ReviewQueuePage {
    const at = Math.max(0, Math.floor(offset));
    const items = this.pendingPage(at, Math.min(Math.max(1, Math.floor(limit)), 1_000));
    const total = this.pendingCount;
    return { items, total, next: at + items.length < total ? at + items.length : null };
  }

  private typeOf(e: ReviewEntry): string {
    return this.s.reviews.reasons[e[1]]?.[0] ?? FailureType.Unknown;
  }

  private countType(type: string, delta: number, step?: string): void {
    bump(this.pendingByType, type, delta);
    if (step !== undefined) bump(this.pendingByStep, step, delta);
  }

  private expand([itemId, r, sinceMs]: ReviewEntry): PendingReview {
    const [errorType, reason, step] = this.s.reviews.reasons[r] ?? [FailureType.Unknown, ''];
    return { itemId, errorType, reason, since: new Date(sinceMs).toISOString(), ...(step !== undefined ? { step } : {}) };
  }

  private enqueueReview(p: PendingReview): void {
    const reviews = this.s.reviews;
    const step = p.step;
    let entry: ReviewReason = step !== undefined ? [p.errorType, shortReason(p.reason), step] : [p.errorType, shortReason(p.reason)];
    if (!this.reasonIndex.has(reasonKey(entry)) && reviews.reasons.length >= REVIEW_REASONS_MAX) {
      entry = step !== undefined ? [p.errorType, '', step] : [p.errorType, ''];
    }
    const key = reasonKey(entry);
    let r = this.reasonIndex.get(key);
    if (r === undefined) {
      r = reviews.reasons.push(entry) - 1;
      this.reasonIndex.set(key, r);
    }
    const since = Date.parse(p.since);
    reviews.queue.push([p.itemId, r, Number.isNaN(since) ? 0 : since]);
    this.pendingIds.add(p.itemId);
    this.countType(p.errorType, 1, step);
  }

  private dequeueReview(itemId: string): boolean {
    if (!this.pendingIds.delete(itemId)) return false;
    const q = this.s.reviews.queue;
    const [e] = q.splice(
      q.findIndex((x) => x[0] === itemId),
      1,
    );
    if (e) this.countType(this.typeOf(e), -1, this.s.reviews.reasons[e[1]]?.[2]);
    return true;
  }

  /** The record, to read. Writes go through this class's methods. */
  get view(): Readonly<BatchCarry> {
    return this.s;
  }

  /** The record for continue-as-new; reasons no entry points at any more are dropped. */
  carry(): BatchCarry {
    const { reasons, queue } = this.s.reviews;
    const used = [...new Set(queue.map((e) => e[1]))].sort((a, b) => a - b);
    const renumber = new Map(used.map((old, i) => [old, i]));
    this.s.reviews = { reasons: used.map((i) => reasons[i]!), queue: queue.map(([id, r, since]) => [id, renumber.get(r)!, since]) };
    this.reasonIndex.clear();
    this.s.reviews.reasons.forEach((r, i) => this.reasonIndex.set(reasonKey(r), i));
    return this.s;
  }

  /** Takes up to `n` queued items for dispatch and advances the pacer to `pacer`. */
  takeQueued(n: number, pacer: PacerState): Item[] {
    this.s.pacer = pacer;
    return this.s.queue.splice(0, n);
  }

  /** The shared-limit and adaptive-concurrency record, which workflows/batch-limits.ts writes. */
  get limits(): LimitsCarry {
    return (this.s.limits ??= { slots: [], told: 0, shed: 0 });
  }

  /** Sets the pacer (rate and refill) without taking items. */
  setPacer(pacer: PacerState): void {
    this.s.pacer = pacer;
  }

  /** Appends a page read from the source and advances the source's position. */
  addPage(page: { items: Item[]; nextOffset: number; nextLine: number; done: boolean }): void {
    const source = this.s.source;
    if (!source) return;
    this.s.queue.push(...page.items);
    source.offset = page.nextOffset;
    source.line = page.nextLine;
    source.done = page.done;
    if (source.duplicates?.length) source.duplicates = source.duplicates.filter(([l]) => l >= page.nextLine);
    if (page.done) this.s.total = this.s.started + this.s.queue.length;
  }

  /** Records the source's scan: its total (known before the first page) and its duplicate lines. */
  setScan(scan: { total: number; duplicates: [number, number][] }): void {
    const source = this.s.source;
    if (!source) return;
    source.scanned = true;
    source.duplicates = scan.duplicates;
    this.s.total = scan.total;
  }

  /** Duplicate lines at or after `line`, for the next page read. */
  duplicatesFrom(line: number): [number, number][] {
    return (this.s.source?.duplicates ?? []).filter(([l]) => l >= line);
  }

  /** Bytes of the queued items' JSON (the page buffer is part of the carry). */
  queueBytes(): number {
    let n = 0;
    for (const item of this.s.queue) n += JSON.stringify(item).length;
    return n;
  }

  /** Replaces the circuit of tier `t`; returns the previous one. */
  setCircuit(t: number, next: CircuitState): CircuitState {
    const prev = this.s.circuits[t]!;
    this.s.circuits[t] = next;
    return prev;
  }

  /** An item left the review queue (its decision was forwarded). */
  removePending(itemId: string): void {
    this.dequeueReview(itemId);
  }

  /** Takes items off the review queue and keeps their decision until the loop delivers it. */
  queueDecisions(decision: ReviewDecision, itemIds: readonly string[]): void {
    const ids = itemIds.filter((id) => this.dequeueReview(id));
    if (ids.length) (this.s.outbox ??= []).push({ decision, itemIds: ids });
  }

  /** Decisions accepted and not yet delivered. */
  get outboxSize(): number {
    return (this.s.outbox ?? []).reduce((n, e) => n + e.itemIds.length, 0);
  }

  /** The next `max` undelivered decisions, removed from the outbox. */
  takeOutbox(max: number): { itemId: string; decision: ReviewDecision }[] {
    const out: { itemId: string; decision: ReviewDecision }[] = [];
    const box = this.s.outbox ?? [];
    while (box.length && out.length < max) {
      const e = box[0]!;
      for (const itemId of e.itemIds.splice(0, max - out.length)) out.push({ itemId, decision: e.decision });
      if (e.itemIds.length === 0) box.shift();
    }
    if (box.length === 0) delete this.s.outbox;
    return out;
  }

  /** Stops dispatch for good (`stop`) or until `resume` (`pause`). */
  halt(how: 'stop' | 'pause', why: string): void {
    if (how === 'stop') this.s.stopped = true;
    else this.s.paused = why;
  }

  /** Lifts a pause; false when the batch was not paused. */
  resume(): boolean {
    if (this.s.paused === null) return false;
    this.s.paused = null;
    this.s.consecutiveFailures = 0;
    return true;
  }

  /** Counts an item that entered review for the next digest. */
  noteForDigest(errorType: string): void {
    const d = (this.s.reviewDigest ??= { since: {}, lastAt: null });
    d.since[errorType] = (d.since[errorType] ?? 0) + 1;
  }

  /** When the next digest is due (epoch ms); null when nothing waits to be told. */
  digestDueAt(intervalMs: number): number | null {
    const d = this.s.reviewDigest;
    if (!d || Object.keys(d.since).length === 0) return null;
    return d.lastAt === null ? 0 : d.lastAt + intervalMs;
  }

  /** Takes the counts of a digest that goes out now. */
  takeDigest(now: number): Record<string, number> {
    const d = (this.s.reviewDigest ??= { since: {}, lastAt: null });
    const since = d.since;
    this.s.reviewDigest = { since: {}, lastAt: now };
    return since;
  }

  /** The budget's record, created by `init` on first use; the Budget class is its one writer. */
  budgetRecord(init: () => BudgetCarry): BudgetCarry {
    return (this.s.budget ??= init());
  }

  /** Items written as skipped without running (the budget stopped the batch): they count as finished. */
  countNotRun(n: number): void {
    this.s.counts.skipped += n;
  }

  /** Marks the error-rate alert as sent (it fires once per batch). */
  markErrorRateAlerted(): void {
    this.s.alerted.errorRate = true;
  }

  /** True while dispatch may go on: not paused, not stopped, not cancelled. */
  get dispatching(): boolean {
    return this.s.paused === null && !this.s.stopped && !this.cancelled;
  }

  /** True when the queue is empty and the source has more: the next page should be read. */
  get wantsPage(): boolean {
    return this.s.queue.length === 0 && this.s.source !== null && !this.s.source.done;
  }

  get finished(): number {
    const c = this.s.counts;
    return c.succeeded + c.failed + c.skipped + c.approved + (c.cancelled ?? 0);
  }

  /** True when every item has been started and has reported back (or the batch stopped or was cancelled, and drained). */
  get done(): boolean {
    return this.s.running.length === 0 && (this.s.stopped || this.cancelled || (this.s.queue.length === 0 && (this.s.source === null || this.s.source.done)));
  }

  /** True once a cancel was accepted. */
  get cancelled(): boolean {
    return this.s.cancel !== undefined;
  }

  /** Accepts a cancel (the first one wins; a second changes nothing). False when already cancelled. */
  requestCancel(reason: string, rollback: 'none' | 'mark' | 'delete'): boolean {
    if (this.s.cancel) return false;
    this.s.cancel = { reason, rollback, at: new Date().toISOString() };
    return true;
  }

  /** Records how many rows the cancel's rollback touched. */
  markRolledBack(rows: number): void {
    if (this.s.cancel) this.s.cancel.rowsRolledBack = rows;
  }

  /** Items not started yet; null while the source has unread lines. */
  get notStarted(): number | null {
    if (this.s.source && !this.s.source.done) return null;
    return this.s.queue.length;
  }

  /** Items that hold a concurrency slot: running, not waiting for a human, call not yet done. */
  get active(): number {
    return this.inFlight - (this.s.released?.length ?? 0);
  }

  /** Running items not waiting for a human, released or not: bounded so tails cannot pile up. */
  get inFlight(): number {
    return this.s.running.length - this.pendingCount - (this.s.parked?.length ?? 0);
  }

  /** An item entered (`parked`) or left a provider batch. False when unknown or unchanged. */
  park(itemId: string, parked: boolean): boolean {
    if (!this.runningIds.has(itemId)) return false;
    const list = (this.s.parked ??= []);
    const i = list.indexOf(itemId);
    if (parked === i >= 0) return false;
    if (parked) list.push(itemId);
    else list.splice(i, 1);
    return true;
  }

  /** An item's call succeeded: its slot is free. False when unknown, finished or already released. */
  release(itemId: string): boolean {
    const released = (this.s.released ??= []);
    if (!this.runningIds.has(itemId) || released.includes(itemId) || this.pendingIds.has(itemId)) return false;
    released.push(itemId);
    return true;
  }

  /** Lists an item as awaiting review; false when it is not one of ours or already listed. */
  addPending(p: PendingReview): boolean {
    if (!this.runningIds.has(p.itemId) || this.pendingIds.has(p.itemId)) return false;
    this.enqueueReview(p);
    this.s.consecutiveFailures += 1;
    return true;
  }

  /** A running multi-step item moved on to `step`; false when the item is not running. */
  setStep(itemId: string, step: string): boolean {
    if (!this.runningIds.has(itemId)) return false;
    this.s.stepOf = { ...this.s.stepOf, [itemId]: step };
    return true;
  }

  markStarted(itemId: string): void {
    this.s.running.push(itemId);
    this.runningIds.add(itemId);
    this.s.started += 1;
  }

  /** Applies an item's report. Returns false for a duplicate or unknown report (ignored). */
  applyOutcome(o: ItemOutcome): boolean {
    if (!this.runningIds.has(o.itemId)) return false;
    const i = this.s.running.indexOf(o.itemId);
    this.s.running.splice(i, 1);
    if (!this.s.running.includes(o.itemId)) this.runningIds.delete(o.itemId);
    const r = this.s.released?.indexOf(o.itemId) ?? -1;
    if (r >= 0) this.s.released!.splice(r, 1);
    const k = this.s.parked?.indexOf(o.itemId) ?? -1;
    if (k >= 0) this.s.parked!.splice(k, 1);
    const wasPending = this.dequeueReview(o.itemId);
    if (this.s.stepOf && o.itemId in this.s.stepOf) delete this.s.stepOf[o.itemId];
    if (o.steps) this.s.stepStats = addStepStats(this.s.stepStats ?? {}, o.steps);
    this.s.retried += o.retried;
    if (o.rateLimit) this.s.learnedLimit = o.rateLimit;
    if (o.status === 'succeeded') this.s.counts.succeeded += 1;
    else if (o.status === 'skipped') this.s.counts.skipped += 1;
    else if (o.status === 'approved') this.s.counts.approved += 1;
    else if (o.status === 'cancelled') this.s.counts.cancelled = (this.s.counts.cancelled ?? 0) + 1;
    else this.s.counts.failed += 1;
    // A failure is counted when the item starts to wait for review; a success resets the run.
    if (o.status === 'succeeded') this.s.consecutiveFailures = 0;
    else if (o.status === 'failed' && !wasPending) this.s.consecutiveFailures += 1;
    this.s.lastFinishedAt = new Date().toISOString();
    this.s.attempts += o.attempts;
    this.s.inputTokens += o.inputTokens;
    this.s.outputTokens += o.outputTokens;
    this.s.costUsd += o.costUsd;
    if (o.truncated) this.s.truncated += 1;
    if (o.provider && (o.status === 'succeeded' || o.status === 'approved')) {
      this.s.tierUse[o.provider] = (this.s.tierUse[o.provider] ?? 0) + 1;
    }
    if (o.endpoint && (o.status === 'succeeded' || o.status === 'approved')) {
      const key = `${o.endpoint.vendor} ${o.endpoint.host}`;
      this.s.endpoints = { ...this.s.endpoints, [key]: (this.s.endpoints?.[key] ?? 0) + 1 };
      if (o.endpoint.simulated) this.s.simulated = (this.s.simulated ?? 0) + 1;
    }
    // Hits per call; an item reporting before its review is counted once, at its final report.
    const hits = o.cacheHits ?? (o.cacheHit && o.status === 'succeeded' ? 1 : 0);
    if (hits > 0 && o.status !== 'failed') this.s.cacheHits = (this.s.cacheHits ?? 0) + hits;
    return true;
  }

  /** Items waiting for review by error type. */
  awaitingByType(): Record<string, number> {
    return Object.fromEntries(this.pendingByType);
  }

  progress(nowMs: number): Progress {
    const awaiting = this.pendingCount;
    const running = this.s.running.length - awaiting;
    const queued = this.s.queue.length;
    const moreToRead = this.s.source !== null && !this.s.source.done;
    const waitingOnReviews = awaiting > 0 && running === 0 && queued === 0 && !moreToRead;
    // While only reviews are left the clock stops at the last finish, so the rate does not decay or freeze.
    const until = waitingOnReviews && this.s.lastFinishedAt ? Date.parse(this.s.lastFinishedAt) : nowMs;
    const elapsedMin = Math.max((until - Date.parse(this.s.startedAt)) / 60_000, 1e-9);
    const rate = this.finished / elapsedMin;
    const proceedable = this.s.total === null ? null : this.s.total - this.finished - awaiting;
    return {
      batchId: this.s.batchId,
      total: this.s.total,
      started: this.s.started,
      running,
      awaitingReviewCount: awaiting,
      awaitingByType: this.awaitingByType(),
      queued,
      ...(this.s.limits?.aimd
        ? {
            adaptive: {
              limit: Math.max(1, Math.min(this.s.pipeline.batch.concurrency, Math.floor(this.s.limits.aimd.limit))),
              sheds: this.s.limits.aimd.sheds,
              decreases: this.s.limits.aimd.decreases,
            },
          }
        : {}),
      waitingOnReviews,
      ...this.s.counts,
      awaitingReview: this.pendingPage(0, PROGRESS_REVIEWS),
      ratePerMinute: Math.round(rate * 10) / 10,
      etaSeconds: proceedable === null || rate === 0 || waitingOnReviews ? null : Math.round((Math.max(proceedable, 0) / rate) * 60),
      paused: this.s.paused !== null,
      pausedReason: this.s.paused,
      circuits: Object.fromEntries(
        this.s.pipeline.providers.map((p, i) => {
          const c = this.s.circuits[i]!;
          return [tierName(p, i), { state: c.state, failures: c.failures, openUntil: c.openUntil === null ? null : new Date(c.openUntil).toISOString() }];
        }),
      ),
      runs: this.s.runs,
      ...(this.s.pipeline.steps ? { steps: this.stepProgress() } : {}),
    };
  }

  /** Multi-step pipelines: per step, the items working on it and those waiting for review at it. */
  private stepProgress(): Record<string, { running: number; awaitingReview: number }> {
    const names = (this.s.pipeline.steps ?? []).map((st) => st.name);
    const out: Record<string, { running: number; awaitingReview: number }> = Object.fromEntries(
      names.map((n) => [n, { running: 0, awaitingReview: this.pendingByStep.get(n) ?? 0 }]),
    );
    for (const id of this.s.running) {
      if (this.pendingIds.has(id)) continue;
      const step = this.s.stepOf?.[id] ?? names[0];
      if (step !== undefined && out[step]) out[step].running += 1;
    }
    return out;
  }

  /** A short Markdown view of the progress, for the Web UI's current-details panel. */
  detailsMarkdown(nowMs: number): string {
    const p = this.progress(nowMs);
    const circuits = Object.entries(p.circuits)
      .map(([name, c]) => `${name}: ${c.state}`)
      .join(', ');
    const byType = Object.entries(p.awaitingByType)
      .map(([t, n]) => `${t} ${n}`)
      .join(', ');
    const ids = p.awaitingReview
      .slice(0, 5)
      .map((r) => r.itemId)
      .join(', ');
    return [
      `**${p.succeeded + p.approved} done**, ${p.failed} failed, ${p.skipped} skipped of ${p.total ?? '?'}; ${p.running} running, ${p.queued} queued`,
      p.waitingOnReviews
        ? `**waiting for ${p.awaitingReviewCount} review${p.awaitingReviewCount === 1 ? '' : 's'}** (${byType}): ${ids}${p.awaitingReviewCount > 5 ? ', ...' : ''}. Nothing else runs until they are decided.`
        : `awaiting review: ${p.awaitingReviewCount}${p.awaitingReviewCount ? ` (${byType}: ${ids}${p.awaitingReviewCount > 5 ? ', ...' : ''})` : ''}; ${p.ratePerMinute}/min`,
      `circuits: ${circuits}`,
      ...(p.steps
        ? [
            `steps: ${Object.entries(p.steps)
              .map(([n, c]) => `${n} ${c.running} running${c.awaitingReview ? `, ${c.awaitingReview} awaiting review` : ''}`)
              .join('; ')}`,
          ]
        : []),
      ...(p.pausedReason ? [`**paused**: ${p.pausedReason} (signal \`resume\` to continue)`] : []),
      batchPolicyMarkdown(this.s.pipeline),
    ].join('\n\n');
  }

  summary(finishedAt: string, status: BatchSummary['status']): BatchSummary {
    const c = this.s.counts;
    const total = this.finished;
    const tierUse: Record<string, number> = {};
    this.s.pipeline.providers.forEach((p, i) => (tierUse[tierName(p, i)] = this.s.tierUse[tierName(p, i)] ?? 0));
    // A multi-step item may end on a step's own tier, which is not one of the pipeline's.
    for (const [name, n] of Object.entries(this.s.tierUse)) tierUse[name] ??= n;
    return {
      batchId: this.s.batchId,
      total,
      succeeded: c.succeeded,
      failed: c.failed,
      skipped: c.skipped,
      approved: c.approved,
      retried: this.s.retried,
      successRate: total === 0 ? 0 : Math.round(((c.succeeded + c.approved) / total) * 10_000) / 10_000,
      attempts: this.s.attempts,
      inputTokens: this.s.inputTokens,
      outputTokens: this.s.outputTokens,
      costUsd: Math.round(this.s.costUsd * 1e6) / 1e6,
      truncated: this.s.truncated,
      tierUse,
      endpoints: { ...this.s.endpoints },
      simulated: this.s.simulated ?? 0,
      cacheHits: this.s.cacheHits ?? 0,
      startedAt: this.s.startedAt,
      finishedAt,
      status: this.cancelled ? 'cancelled' : this.s.stopped ? 'stopped' : status,
      ...(this.cancelled || this.s.stopped ? { cancelled: c.cancelled ?? 0, notStarted: this.notStarted } : {}),
      ...(this.s.stepStats ? { steps: roundedSteps(this.s.stepStats) } : {}),
      ...(this.s.cancel ? { cancel: { reason: this.s.cancel.reason, rollback: this.s.cancel.rollback, rowsRolledBack: this.s.cancel.rowsRolledBack ?? 0 } } : {}),
    };
  }
}

/** The reason index's key of an entry. */
function reasonKey([type, reason, step]: ReviewReason): string {
  return step === undefined ? `${type}\u0000${reason}` : `${type}\u0000${reason}\u0000${step}`;
}

function bump(m: Map<string, number>, key: string, delta: number): void {
  const n = (m.get(key) ?? 0) + delta;
  if (n > 0) m.set(key, n);
  else m.delete(key);
}

function roundedSteps(stats: Record<string, StepStats>): Record<string, StepStats> {
  return Object.fromEntries(Object.entries(stats).map(([k, v]) => [k, { ...v, costUsd: Math.round(v.costUsd * 1e6) / 1e6 }]));
}
