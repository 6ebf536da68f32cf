/**
 * The batch's review queue: items that failed for good and wait for a human,
 * the decisions forwarded to them (by signal or Update), and the stop-or-pause
 * rule after too many consecutive failures.
 */
import { getExternalWorkflowHandle, log } from '@temporalio/workflow';
import { errorMessage } from '../src/shared/failures.ts';
import { reviewSignal } from '../src/shared/messages.ts';
import type { BatchReviewDecision, PendingReview, ReviewDecision } from '../src/shared/messages.ts';
import type { Alerts } from './batch-alerts.ts';
import type { BatchState } from './batch-state.ts';
import { reviewProblem } from './review.ts';

export class Reviews {
  private readonly state: BatchState;
  private readonly alerts: Alerts;

  constructor(state: BatchState, alerts: Alerts) {
    this.state = state;
    this.alerts = alerts;
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
    this.alerts.send('awaiting_review', `Item ${p.itemId} of batch ${s.batchId} awaits review (${p.errorType}): ${p.reason}`, { awaiting: s.pendingReviews.length });
    return true;
  }

  /** Update validator: throws to reject a decision before it reaches history. */
  validate(d: BatchReviewDecision | ReviewDecision): void {
    const s = this.state.view;
    const itemId = 'itemId' in d ? d.itemId : undefined;
    if (typeof itemId !== 'string') throw new Error('itemId is required on the batch workflow');
    const pending = s.pendingReviews.some((p) => p.itemId === itemId);
    if (!pending && !s.running.includes(itemId)) throw new Error(`item ${JSON.stringify(itemId)} is not in batch ${s.batchId} or has finished`);
    const problem = reviewProblem(d, s.pipeline, pending);
    if (problem) throw new Error(`item ${itemId}: ${problem}`);
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

  /** Sends a validated decision on to the item that awaits it. */
  async forward(d: BatchReviewDecision | ReviewDecision): Promise<{ accepted: true; itemId: string }> {
    const { itemId, ...decision } = d as BatchReviewDecision;
    await getExternalWorkflowHandle(`${this.state.view.batchId}/${itemId}`).signal(reviewSignal, decision);
    this.state.removePending(itemId);
    return { accepted: true, itemId };
  }
}
