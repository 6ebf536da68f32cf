/**
 * The batch's alerts (error rate, circuit open, review, pause) and the background
 * steps that must never fail the batch: webhook posts and circuit broadcasts run
 * without blocking dispatch, and are drained before the batch returns or
 * continues as new.
 */
import { log, proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities/index.ts';
import { notifyCall } from '../src/shared/policies.ts';
import { errorMessage } from '../src/shared/failures.ts';
import type { Alert } from '../src/shared/types.ts';
import type { BatchState } from './batch-state.ts';

const alerts = proxyActivities<Activities>(notifyCall);

/** Error-rate alerts wait for this many finished items, so one early failure is not 100%. */
const ERROR_RATE_MIN_ITEMS = 20;

export class Alerts {
  private readonly inflight: Promise<unknown>[] = [];
  private readonly state: BatchState;

  constructor(state: BatchState) {
    this.state = state;
  }

  /** Posts an alert to the spec's webhook, in the background. */
  send(kind: Alert['kind'], text: string, fields?: Alert['fields']): void {
    const { batchId, pipeline } = this.state.view;
    const { webhookUrl, webhookUrlEnv } = pipeline.alerts;
    this.track(alerts.notify({ batchId, kind, text, fields, webhookUrl, webhookUrlEnv }));
  }

  /** Alerts once when the share of failed and waiting items passes the spec's threshold. */
  checkErrorRate(): void {
    const s = this.state.view;
    const finished = this.state.finished;
    const waiting = this.state.pendingCount;
    const bad = s.counts.failed + waiting;
    const rate = finished + waiting === 0 ? 0 : bad / (finished + waiting);
    if (s.alerted.errorRate || finished < ERROR_RATE_MIN_ITEMS || rate <= s.pipeline.alerts.errorRateThreshold) return;
    this.state.markErrorRateAlerted();
    this.send('error_rate', `Batch ${s.batchId} error rate ${(rate * 100).toFixed(1)}% passed the threshold of ${(s.pipeline.alerts.errorRateThreshold * 100).toFixed(1)}%.`, {
      failed: bad,
      finished,
    });
  }

  /** Runs a step in the background; a failure there is logged and never fails the batch. */
  track(p: Promise<unknown>): void {
    this.inflight.push(p.catch((err: unknown) => log.warn('background step failed', { error: errorMessage(err) })));
  }

  /** Waits for every background step started so far. */
  async drain(): Promise<void> {
    await Promise.all(this.inflight.splice(0));
  }
}
