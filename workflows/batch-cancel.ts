/**
 * Cancelling a batch: no item starts any more, every running item (and every
 * item waiting for review) is asked to cancel, which cancels its in-flight
 * call; each item writes its row as `cancelled` and reports. When all have
 * reported, the batch optionally rolls back its rows and returns a summary
 * with status `cancelled`. The collectors of `mode: batch` tiers are told too: they
 * submit nothing more and ask the provider to cancel the batches they submitted.
 */
import { getExternalWorkflowHandle, log, patched, proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities/index.ts';
import type { CancelAccepted, CancelRequest } from '../src/shared/messages.ts';
import { persistCall } from '../src/shared/policies.ts';
import { cancelProviderBatchesSignal, providerBatchWorkflowIds } from '../src/shared/provider-batch.ts';
import type { Alerts } from './batch-alerts.ts';
import type { Dispatcher } from './batch-dispatch.ts';
import type { BatchState } from './batch-state.ts';

const store = proxyActivities<Activities>(persistCall);

/** Cancellation requests sent at once (each is a command; a workflow may have at most 2,000 pending). */
const CANCEL_CHUNK = 200;
const ROLLBACKS = ['none', 'mark', 'delete'] as const;

export class Cancel {
  private readonly state: BatchState;
  private readonly dispatcher: Dispatcher;
  private readonly alerts: Alerts;

  constructor(state: BatchState, dispatcher: Dispatcher, alerts: Alerts) {
    this.state = state;
    this.dispatcher = dispatcher;
    this.alerts = alerts;
  }

  /** Cancels the items running inside the batch workflow (its fast path); set by the batch. */
  cancelLocal: (() => void) | undefined;

  /** Update validator: a clear error for a bad request. A second cancel is accepted and changes nothing. */
  validate(r: CancelRequest | undefined): void {
    if (r === undefined || r === null) return;
    if (typeof r !== 'object' || Array.isArray(r)) throw new Error('a cancel takes an object like {"reason":"wrong prompt"}');
    if (r.reason !== undefined && typeof r.reason !== 'string') throw new Error('reason must be a string');
    if (r.rollback !== undefined && !ROLLBACKS.includes(r.rollback)) throw new Error(`rollback must be one of ${ROLLBACKS.join(', ')}; got ${JSON.stringify(r.rollback)}`);
  }

  /** Accepts the cancel and asks every running item to cancel. */
  async request(r: CancelRequest | undefined): Promise<CancelAccepted> {
    const s = this.state.view;
    const rollback = r?.rollback ?? s.pipeline.batch.rollbackOnCancel ?? 'none';
    const first = this.state.requestCancel(r?.reason ?? 'cancelled by request', s.cancel?.rollback ?? rollback);
    const answer = { batchId: s.batchId, stopping: s.running.length, notStarted: this.state.notStarted, rollback: this.state.view.cancel!.rollback };
    if (!first) return answer;
    log.info('batch cancelled', { reason: this.state.view.cancel!.reason, running: s.running.length });
    // Starts already sent are confirmed first, so every started item receives the request.
    // Fast runs stop their calls and report as cancelled (or hand over, and are cancelled below).
    this.cancelLocal?.();
    await this.dispatcher.settle();
    const ids = [...this.state.view.running];
    for (let i = 0; i < ids.length; i += CANCEL_CHUNK) {
      await Promise.all(
        ids.slice(i, i + CANCEL_CHUNK).map((id) =>
          getExternalWorkflowHandle(`${s.batchId}/${id}`)
            .cancel()
            .catch((err: unknown) => log.warn('could not cancel an item; it finishes on its own', { itemId: id, error: String(err) })),
        ),
      );
    }
    // The tiers' collectors cancel their provider batches (the requests of cancelled items).
    const collectors = providerBatchWorkflowIds(s.batchId, s.pipeline);
    if (collectors.length > 0 && patched('cost2-cancel')) {
      const reason = this.state.view.cancel!.reason;
      await Promise.all(
        collectors.map((id) =>
          getExternalWorkflowHandle(id)
            .signal(cancelProviderBatchesSignal, { reason })
            .catch(() => {
              // No collector ran for this tier, or it finished: nothing to cancel.
            }),
        ),
      );
    }
    this.alerts.send('batch_cancelled', `Batch ${s.batchId} cancelled: ${this.state.view.cancel!.reason}. ${ids.length} running items are stopping; rows: ${answer.rollback}.`, {
      stopping: ids.length,
    });
    return answer;
  }

  /** After every item reported: rolls back the batch's rows when asked to. */
  async finish(): Promise<void> {
    const c = this.state.view.cancel;
    if (!c || c.rollback === 'none' || c.rowsRolledBack !== undefined) return;
    this.state.markRolledBack(await store.rollbackResults({ batchId: this.state.view.batchId, mode: c.rollback }));
  }
}
