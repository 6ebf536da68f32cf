/**
 * The batch's reactions to its items: circuit breakers per tier, the review
 * queue (forwarding decisions to the item), stop-or-pause after consecutive
 * failures, and alerts. Handlers call into this class and stay one-liners.
 */
import { condition, getExternalWorkflowHandle, log, proxyActivities } from '@temporalio/workflow';
import type { createActivities } from '../activities/index.ts';
import { NOTIFY_RETRY } from '../src/shared/policies.ts';
import { tierName } from '../src/shared/tiers.ts';
import type { Alert, ItemOutcome } from '../src/shared/types.ts';
import type { BatchState } from './batch-state.ts';
import { allows, onFailure, onSuccess, tick, withProbe } from './circuit.ts';
import { circuitSignal, reviewSignal } from '../src/shared/messages.ts';
import type { BatchReviewDecision, PendingReview, ReviewDecision } from '../src/shared/messages.ts';
import { reviewProblem } from './review.ts';

type Activities = ReturnType<typeof createActivities>;
const alerts = proxyActivities<Activities>({ startToCloseTimeout: '30 s', retry: NOTIFY_RETRY });

/** Error-rate alerts wait for this many finished items, so one early failure is not 100%. */
const ERROR_RATE_MIN_ITEMS = 20;

export class BatchControl {
  readonly state: BatchState;
  /** Bumped by every change the main loop must react to. */
  version = 0;
  private readonly inflight: Promise<unknown>[] = [];

  constructor(state: BatchState) {
    this.state = state;
  }

  private get s() {
    return this.state.s;
  }

  /** An item's LLM call succeeded (signal from the activity): its slot is free for the next item. */
  onCallDone(itemId: string): void {
    if (this.state.release(itemId)) this.version++;
  }

  /** Child starts in flight (dispatch does not wait for them) and the first one that failed. */
  pendingStarts = 0;
  startError: unknown = null;

  /** Waits until every child start is confirmed; rethrows the first that failed. */
  async settleStarts(): Promise<void> {
    await condition(() => this.pendingStarts === 0);
    if (this.startError) throw this.startError;
  }

  /** Follows a child start without blocking dispatch on it. */
  trackStart(start: Promise<void>): void {
    this.pendingStarts++;
    start.then(
      () => this.pendingStarts--,
      (err: unknown) => {
        this.pendingStarts--;
        this.startError ??= err;
        this.version++;
      },
    );
  }

  onItemDone(o: ItemOutcome): void {
    if (!this.state.applyOutcome(o)) return log.warn('ignored a report from an unknown or finished item', { itemId: o.itemId });
    if (o.status === 'succeeded' && o.tier !== null) this.setCircuit(o.tier, onSuccess(this.s.circuits[o.tier]!));
    // A probe that never used its half-open tier frees the probe slot for another item.
    this.s.circuits.forEach((c, t) => c.probe === o.itemId && c.state === 'half_open' && this.setCircuit(t, { ...c, probe: null }));
    this.checkErrorRate();
    this.version++;
  }

  onAwaiting(p: PendingReview): void {
    if (!this.state.addPending(p)) return;
    const { maxConsecutiveFailures, onTooManyFailures } = this.s.pipeline.batch;
    if (maxConsecutiveFailures > 0 && this.s.consecutiveFailures >= maxConsecutiveFailures && this.s.paused === null && !this.s.stopped) {
      const why = `${this.s.consecutiveFailures} consecutive items failed (batch.maxConsecutiveFailures ${maxConsecutiveFailures})`;
      if (onTooManyFailures === 'stop') this.s.stopped = true;
      else this.s.paused = why;
      this.alert('batch_paused', `Batch ${this.s.batchId} ${onTooManyFailures === 'stop' ? 'stopped' : 'paused'}: ${why}.`);
    }
    this.alert('awaiting_review', `Item ${p.itemId} of batch ${this.s.batchId} awaits review (${p.errorType}): ${p.reason}`, { awaiting: this.s.pendingReviews.length });
    this.version++;
  }

  onTierResult(r: { tier: number; ok: boolean; errorType?: string }, now: number): void {
    const c = this.s.circuits[r.tier];
    if (!c) return;
    this.setCircuit(
      r.tier,
      r.ok ? onSuccess(c) : onFailure(c, now, { failureThreshold: this.s.pipeline.circuitBreaker.failureThreshold, cooldownMs: this.s.pipeline.circuitBreaker.cooldown }),
    );
    const after = this.s.circuits[r.tier]!;
    if (after.opened > c.opened) {
      const name = tierName(this.s.pipeline.providers[r.tier]!, r.tier);
      this.alert(
        'circuit_open',
        `Circuit of ${name} opened in batch ${this.s.batchId} after ${after.failures} consecutive failures (last: ${r.errorType ?? 'unknown'}); cool-down ${this.s.pipeline.circuitBreaker.cooldown / 1000} s.`,
      );
    }
    this.version++;
  }

  /** Open circuits half-open when their cool-down has passed. */
  tickCircuits(now: number): void {
    this.s.circuits.forEach((c, t) => this.setCircuit(t, tick(c, now)));
  }

  /** Milliseconds until the next open circuit half-opens. */
  nextCircuitChange(now: number): number | undefined {
    const until = this.s.circuits.map((c) => c.openUntil).filter((u): u is number => u !== null);
    return until.length ? Math.max(Math.min(...until) - now, 1) : undefined;
  }

  /** New items wait while every tier is closed to them. */
  canDispatch(): boolean {
    return this.s.circuits.some((c) => c.state === 'closed' || (c.state === 'half_open' && c.probe === null));
  }

  /** Tiers closed to a new item; it becomes the probe of a half-open tier that has none. */
  openTiersForNewItem(itemId: string): number[] {
    this.s.circuits.forEach((c, t) => (this.s.circuits[t] = withProbe(c, itemId)));
    return this.openTiersFor(itemId);
  }

  private openTiersFor(itemId: string): number[] {
    return this.s.circuits.flatMap((c, t) => (allows(c, itemId) ? [] : [t]));
  }

  private setCircuit(t: number, next: (typeof this.s.circuits)[number]): void {
    const prev = this.s.circuits[t]!;
    this.s.circuits[t] = next;
    if (prev.state !== next.state) this.broadcastCircuits();
  }

  /** Tells running items which tiers are closed to them, so they skip (or leave) those tiers. */
  private broadcastCircuits(): void {
    const waiting = new Set(this.s.pendingReviews.map((p) => p.itemId));
    for (const id of this.s.running) {
      if (waiting.has(id)) continue;
      this.track(getExternalWorkflowHandle(`${this.s.batchId}/${id}`).signal(circuitSignal, { openTiers: this.openTiersFor(id) }));
    }
  }

  validateReview(d: BatchReviewDecision | ReviewDecision): void {
    const itemId = 'itemId' in d ? d.itemId : undefined;
    if (typeof itemId !== 'string') throw new Error('itemId is required on the batch workflow');
    const pending = this.s.pendingReviews.some((p) => p.itemId === itemId);
    if (!pending && !this.s.running.includes(itemId)) throw new Error(`item ${JSON.stringify(itemId)} is not in batch ${this.s.batchId} or has finished`);
    const problem = reviewProblem(d, this.s.pipeline, pending);
    if (problem) throw new Error(`item ${itemId}: ${problem}`);
  }

  /** Signal path: a decision for an unknown item, or one not awaiting review, changes nothing and is logged. */
  async reviewBySignal(d: BatchReviewDecision | ReviewDecision): Promise<void> {
    try {
      this.validateReview(d);
    } catch (err) {
      log.warn('review ignored', { problem: err instanceof Error ? err.message : String(err) });
      return;
    }
    await this.forwardReview(d);
  }

  /** Sends a validated decision on to the item that awaits it. */
  async forwardReview(d: BatchReviewDecision | ReviewDecision): Promise<{ accepted: true; itemId: string }> {
    const { itemId, ...decision } = d as BatchReviewDecision;
    await getExternalWorkflowHandle(`${this.s.batchId}/${itemId}`).signal(reviewSignal, decision);
    this.s.pendingReviews = this.s.pendingReviews.filter((p) => p.itemId !== itemId);
    this.version++;
    return { accepted: true, itemId };
  }

  resume(): void {
    if (this.s.paused === null) return;
    log.info('batch resumed', { reason: this.s.paused });
    this.s.paused = null;
    this.s.consecutiveFailures = 0;
    this.version++;
  }

  private checkErrorRate(): void {
    const finished = this.state.finished;
    const bad = this.s.counts.failed + this.s.pendingReviews.length;
    const rate = finished + this.s.pendingReviews.length === 0 ? 0 : bad / (finished + this.s.pendingReviews.length);
    if (this.s.alerted.errorRate || finished < ERROR_RATE_MIN_ITEMS || rate <= this.s.pipeline.alerts.errorRateThreshold) return;
    this.s.alerted.errorRate = true;
    this.alert(
      'error_rate',
      `Batch ${this.s.batchId} error rate ${(rate * 100).toFixed(1)}% passed the threshold of ${(this.s.pipeline.alerts.errorRateThreshold * 100).toFixed(1)}%.`,
      { failed: bad, finished },
    );
  }

  private alert(kind: Alert['kind'], text: string, fields?: Alert['fields']): void {
    const { webhookUrl, webhookUrlEnv } = this.s.pipeline.alerts;
    this.track(alerts.notify({ batchId: this.s.batchId, kind, text, fields, webhookUrl, webhookUrlEnv }));
  }

  /** Alerts and broadcasts run in the background; a failure there never fails the batch. */
  private track(p: Promise<unknown>): void {
    this.inflight.push(p.catch((err: unknown) => log.warn('background step failed', { error: String(err) })));
  }

  async drainAlerts(): Promise<void> {
    await Promise.all(this.inflight.splice(0));
  }
}
