/** Decisions forwarded at once by a bulk review: each is a signal to an item, and a workflow may have at most 2,000 pending. */
const BULK_CHUNK = 200;
/** Ids listed in a bulk answer at most. */
const BULK_IDS_LISTED = 1_000;

/** Whether a pending review matches a bulk filter (`ids`: the filter's `itemIds` as a set, when a caller tests many items). */
export function matchesFilter(p: PendingReview, f: ReviewFilter | undefined, ids?: ReadonlySet<string>): boolean {
  if (!f) return true;
  if (f.errorType !== undefined && p.errorType !== f.errorType) return false;
  if (f.since !== undefined && Date.parse(p.since) > Date.parse(f.since)) return false;
  if (f.itemIds !== undefined && !(ids ? ids.has(p.itemId) : f.itemIds.includes(p.itemId))) return false;
  if (f.step !== undefined && p.step !== f.step) return false;
  return true;
}

/**
 * The batch's review queue: items that failed for good and wait for a human,
 * the decisions forwarded to them (by signal or Update), and the stop-or-pause
 * rule after too many consecutive failures.
 */
import { getExternalWorkflowHandle, log } from '@temporalio/workflow';
import { errorMessage } from '../src/shared/failures.ts';
import { reviewSignal } from '../src/shared/messages.ts';
import type { BatchReviewDecision, BulkReviewDecision, BulkReviewResult, PendingReview, ReviewDecision, ReviewFilter } from '../src/shared/messages.ts';
import type { Alerts } from './batch-alerts.ts';
import type { BatchState } from './batch-state.ts';
import { reviewProblem } from './review.ts';
import { stepSpec } from '../src/shared/pipeline-steps.ts';

export class Reviews {
  private readonly state: BatchState;
  private readonly alerts: Alerts;
  /** Review alerts as one digest per interval (new batches) rather than one post per item (older ones replay that). */
  private readonly digest: boolean;
  /** Bulk decisions answer at once and are delivered by the loop (new batches); older ones replay delivery inside the Update. */
  private readonly outbox: () => boolean;

  constructor(state: BatchState, alerts: Alerts, digest: boolean, outbox: () => boolean = () => false) {
    this.state = state;
    this.alerts = alerts;
    this.digest = digest;
    this.outbox = outbox;
  }

  /** The digest interval of this batch's spec (ms). */
  private get digestInterval(): number {
    return this.state.view.pipeline.alerts.reviewDigestInterval ?? 600_000;
  }

  /** When the next review digest is due (epoch ms), or null. */
  get digestDueAt(): number | null {
    return this.digest ? this.state.digestDueAt(this.digestInterval) : null;
  }

  /** Posts the review digest when it is due: one post with the counts by error type. */
  sendDigestIfDue(now: number, force = false): void {
    const due = this.digestDueAt;
    if (due === null || (!force && due > now)) return;
    const s = this.state.view;
    const entered = this.state.takeDigest(now);
    const n = Object.values(entered).reduce((a, b) => a + b, 0);
    const byType = Object.entries(entered)
      .sort((a, b) => b[1] - a[1])
      .map(([t, k]) => `${t} ${k}`)
      .join(', ');
    this.alerts.send('awaiting_review', `${n} item${n === 1 ? '' : 's'} of batch ${s.batchId} entered review (${byType}); ${this.state.pendingCount} await a decision.`, {
      entered: n,
      awaiting: this.state.pendingCount,
      ...entered,
    });
  }

  /** An item waits for review. False when it is not one of ours or already listed. */
  onAwaiting(p: PendingReview): boolean {
    if (!this.state.addPending(p)) return false;
    const s = this.state.view;
    const { maxConsecutiveFailures, onTooManyFailures } = s.pipeline.batch;
    if (maxConsecutiveFailures > 0 && s.consecutiveFailures >= maxConsecutiveFailures && this.state.dispatching) {
      const why = `${s.consecutiveFailures} consecutive items failed (batch.maxConsecutiveFailures ${maxConsecutiveFailures})`;
      this.state.halt(onTooManyFailures === 'stop' ? 'stop' : 'pause', why);
      this.alerts.send('batch_paused', `Batch ${s.batchId} ${onTooManyFailures === 'stop' ? 'stopped' : 'paused'}: ${why}.`);
    }
    if (this.digest) {
      this.state.noteForDigest(p.errorType);
      this.sendDigestIfDue(Date.now());
    } else {
      this.alerts.send('awaiting_review', `Item ${p.itemId} of batch ${s.batchId} awaits review (${p.errorType}): ${p.reason}`, { awaiting: this.state.pendingCount });
    }
    return true;
  }

  /** Update validator: throws to reject a decision before it reaches history. */
  validate(d: BatchReviewDecision | ReviewDecision): void {
    const s = this.state.view;
    const itemId = 'itemId' in d ? d.itemId : undefined;
    if (typeof itemId !== 'string') throw new Error('itemId is required on the batch workflow');
    const pending = this.state.isPending(itemId);
    if (!pending && !this.state.isRunning(itemId)) throw new Error(`item ${JSON.stringify(itemId)} is not in batch ${s.batchId} or has finished`);
    // A multi-step item is decided against the step it waits at (its output schema, its tiers).
    const step = this.state.pendingStep(itemId);
    const problem = reviewProblem(d, (step !== undefined ? stepSpec(s.pipeline, step) : null) ?? s.pipeline, pending);
    if (problem) throw new Error(`item ${itemId}${step !== undefined ? ` (step ${step})` : ''}: ${problem}`);
  }

  /** Signal path: a decision for an unknown item, or one not awaiting review, changes nothing and is logged. False then. */
  async bySignal(d: BatchReviewDecision | ReviewDecision): Promise<boolean> {
    try {
      this.validate(d);
    } catch (err) {
      log.warn('review ignored', { problem: errorMessage(err) });
      return false;
    }
    await this.forward(d);
    return true;
  }

  /** Update validator of a bulk decision: the decision must be one a single item could take. */
  validateBulk(d: BulkReviewDecision): void {
    const f = d?.filter;
    if (f !== undefined && (typeof f !== 'object' || f === null || Array.isArray(f))) throw new Error('filter must be an object like {"errorType":"AuthFailed"}');
    if (f?.since !== undefined && Number.isNaN(Date.parse(f.since))) throw new Error(`filter.since must be an ISO 8601 time; got ${JSON.stringify(f.since)}`);
    if (f?.itemIds !== undefined && (!Array.isArray(f.itemIds) || f.itemIds.some((id) => typeof id !== 'string'))) throw new Error('filter.itemIds must be an array of item ids');
    if (f?.step !== undefined && this.state.view.pipeline.steps && stepSpec(this.state.view.pipeline, f.step) === null) {
      throw new Error(`filter.step ${JSON.stringify(f.step)} is not a step of this pipeline (${this.state.view.pipeline.steps.map((st) => st.name).join(', ')})`);
    }
    const spec = f?.step !== undefined ? stepSpec(this.state.view.pipeline, f.step) : null;
    const problem = reviewProblem(d, spec ?? this.state.view.pipeline, true);
    if (problem) throw new Error(problem);
  }

  /** Applies one decision to every matching item awaiting review, a chunk of signals at a time. */
  async forwardMany(d: BulkReviewDecision): Promise<BulkReviewResult> {
    const { filter, ...decision } = d;
    const ids = filter?.itemIds ? new Set(filter.itemIds) : undefined;
    const matched = this.state
      .pendingPage(0, this.state.pendingCount)
      .filter((p) => matchesFilter(p, filter, ids))
      .map((p) => p.itemId);
    if (this.outbox()) {
      this.state.queueDecisions(decision, matched);
    } else {
      for (let i = 0; i < matched.length; i += BULK_CHUNK) {
        await Promise.all(matched.slice(i, i + BULK_CHUNK).map((itemId) => this.forward({ ...decision, itemId })));
      }
    }
    return { decided: matched.length, itemIds: matched.slice(0, BULK_IDS_LISTED), remaining: this.state.pendingCount };
  }

  /**
   * Delivers the next chunk of accepted bulk decisions (a workflow may have at most 2,000
   * signals in flight). One chunk per pass of the loop, so the loop can continue as new
   * between chunks: 10,000 decisions are 20,000 events, which one run must not hold. An item
   * that ended meanwhile (its review timed out, the batch was cancelled) cannot take its
   * decision: that is logged, nothing else changes.
   */
  async deliverOutbox(): Promise<void> {
    const chunk = this.state.takeOutbox(BULK_CHUNK);
    await Promise.all(
      chunk.map(({ itemId, decision }) =>
        getExternalWorkflowHandle(`${this.state.view.batchId}/${itemId}`)
          .signal(reviewSignal, decision)
          .catch((err: unknown) => log.warn('bulk decision not delivered: the item has ended', { itemId, error: errorMessage(err) })),
      ),
    );
  }

  /** Sends a validated decision on to the item that awaits it. */
  async forward(d: BatchReviewDecision | ReviewDecision): Promise<{ accepted: true; itemId: string }> {
    const { itemId, ...decision } = d as BatchReviewDecision;
    await getExternalWorkflowHandle(`${this.state.view.batchId}/${itemId}`).signal(reviewSignal, decision);
    this.state.removePending(itemId);
    return { accepted: true, itemId };
  }
}
