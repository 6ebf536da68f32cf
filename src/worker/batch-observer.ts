/**
 * Publishes the workflow-held state (review queue, circuits, running batches) as
 * gauges on the worker's /metrics endpoint.
 */
import type { Client } from '@temporalio/client';
import type { MetricMeter, MetricTags } from '@temporalio/common';
import { METRICS } from '../../activities/metrics.ts';
import { progressQuery } from '../shared/messages.ts';
import type { Progress } from '../shared/messages.ts';

/** Circuit states as gauge values: higher is worse, so `max` over batches is the worst. */
export const CIRCUIT_STATE_VALUE: Record<Progress['circuits'][string]['state'], number> = { closed: 0, half_open: 1, open: 2 };

/** What the observer read in one pass. */
export interface BatchObservation {
  batches: number;
  /** Batches whose progress query answered. */
  answered: number;
  reviewQueue: number;
  /** Items working now (awaiting review not counted). */
  running?: number;
  circuits: Record<string, number>;
  /** False when another worker publishes (this one then reports zeros). */
  leader?: boolean;
}

/** Folds the progress of the running batches into the gauge values. */
export function observe(progress: readonly Progress[], batches: number): BatchObservation {
  const circuits: Record<string, number> = {};
  let reviewQueue = 0;
  let running = 0;
  for (const p of progress) {
    reviewQueue += p.awaitingReviewCount;
    running += p.running;
    for (const [name, c] of Object.entries(p.circuits)) circuits[name] = Math.max(circuits[name] ?? 0, CIRCUIT_STATE_VALUE[c.state]);
  }
  return { batches, answered: progress.length, reviewQueue, running, circuits };
}

/** Options of {@link startBatchObserver}. */
export interface BatchObserverOptions {
  client: Client;
  taskQueue: string;
  /** Where the gauges go (the Runtime's meter in the worker). */
  meter: MetricMeter;
  /** Time between passes. @default 5000 (ms) */
  intervalMs?: number;
  /** Batches queried per pass at most (the oldest are listed first by the server). @default 200 */
  maxBatches?: number;
  /** Deadline of each list and query call. @default 5000 (ms) */
  deadlineMs?: number;
  /**
   * This worker's identity. When set, only the worker whose identity sorts first among
   * the task queue's live workflow pollers queries the batches; the others publish zeros
   * (dashboards take `max`). Unset: this observer always queries (one worker, tests).
   */
  identity?: string;
  onError?: (err: unknown) => void;
}

/** A running observer. */
export interface BatchObserver {
  /** Runs one pass now (tests; the timer runs them too). */
  refresh(): Promise<BatchObservation>;
  stop(): Promise<void>;
}

const OBSERVER_DEFAULTS = { intervalMs: 5_000, maxBatches: 200, deadlineMs: 5_000 };

/** A poller not seen for this long no longer counts as a live worker. */
const POLLER_LIVE_MS = 2 * 60_000;

/**
 * The identity that leads among a task queue's pollers: the first in sort order of those
 * seen in the last {@link POLLER_LIVE_MS}. Null when none is live.
 */
export function leaderOf(pollers: readonly { identity?: string | null; lastAccessMs?: number }[], nowMs: number): string | null {
  const live = pollers
    .filter((p) => p.identity && (p.lastAccessMs === undefined || nowMs - p.lastAccessMs < POLLER_LIVE_MS))
    .map((p) => p.identity!)
    .sort();
  return live[0] ?? null;
}

/**
 * Publishes the workflow-held state as gauges: items awaiting review, circuit state
 * per provider tier and running batches. Each pass lists the running
 * `batchPipeline` workflows of the task queue and asks each for `progress`
 * (a query: no history event, but a workflow task on the worker that caches the batch,
 * and the server buffers few queries per workflow). So that the load does not grow
 * with the number of workers, only one of them queries (see `identity`); the others
 * publish zeros, so dashboards take `max`.
 */
export function startBatchObserver(options: BatchObserverOptions): BatchObserver {
  const o = { ...OBSERVER_DEFAULTS, ...options };
  const tags: MetricTags = { namespace: o.client.options.namespace, taskQueue: o.taskQueue };
  const reviewQueue = o.meter.createGauge(METRICS.reviewQueue.name, 'int', '', METRICS.reviewQueue.help);
  const circuitState = o.meter.createGauge(METRICS.circuitState.name, 'int', '', METRICS.circuitState.help);
  const batchesRunning = o.meter.createGauge(METRICS.batchesRunning.name, 'int', '', METRICS.batchesRunning.help);
  const itemsRunning = o.meter.createGauge(METRICS.itemsRunning.name, 'int', '', METRICS.itemsRunning.help);
  // Providers seen before keep a series; when no running batch uses them any more they read closed.
  const seen = new Set<string>();
  const escaped = o.taskQueue.replace(/\\/g, '\\\\').replace(/'/g, "\\'");
  const query = `WorkflowType = 'batchPipeline' AND ExecutionStatus = 'Running' AND TaskQueue = '${escaped}'`;
  const deadline = <T>(fn: () => Promise<T>): Promise<T> => o.client.withDeadline(Date.now() + o.deadlineMs, fn);

  /** True when this worker should query the batches (see {@link BatchObserverOptions.identity}). */
  async function leads(): Promise<boolean> {
    if (o.identity === undefined) return true;
    const r = await deadline(() =>
      o.client.workflowService.describeTaskQueue({
        namespace: o.client.options.namespace,
        // TASK_QUEUE_KIND_NORMAL and TASK_QUEUE_TYPE_WORKFLOW (proto enums; @temporalio/proto is not a direct dependency).
        taskQueue: { name: o.taskQueue, kind: 1 },
        taskQueueType: 1,
      }),
    );
    const pollers = (r.pollers ?? []).map((p) => ({
      identity: p.identity,
      ...(p.lastAccessTime?.seconds != null ? { lastAccessMs: Number(p.lastAccessTime.seconds) * 1000 } : {}),
    }));
    return leaderOf(pollers, Date.now()) === o.identity;
  }

  function publish(obs: BatchObservation): BatchObservation {
    reviewQueue.set(obs.reviewQueue, tags);
    batchesRunning.set(obs.batches, tags);
    itemsRunning.set(obs.running ?? 0, tags);
    for (const name of Object.keys(obs.circuits)) seen.add(name);
    for (const name of seen) circuitState.set(obs.circuits[name] ?? 0, { ...tags, provider: name });
    return obs;
  }

  async function refresh(): Promise<BatchObservation> {
    if (!(await leads())) return publish({ batches: 0, answered: 0, reviewQueue: 0, circuits: {}, leader: false });
    const ids: string[] = [];
    await deadline(async () => {
      for await (const wf of o.client.workflow.list({ query, pageSize: o.maxBatches })) {
        ids.push(wf.workflowId);
        if (ids.length >= o.maxBatches) break;
      }
    });
    const progress: Progress[] = [];
    // A few queries at a time: each one is a workflow task on some worker.
    for (let i = 0; i < ids.length; i += 8) {
      const answers = await Promise.allSettled(ids.slice(i, i + 8).map((id) => deadline(() => o.client.workflow.getHandle(id).query(progressQuery))));
      for (const a of answers) if (a.status === 'fulfilled') progress.push(a.value);
    }
    return publish(observe(progress, ids.length));
  }

  let stopped = false;
  let busy = false;
  let running: Promise<unknown> = Promise.resolve();
  // One pass at a time: when unanswered queries make a pass outlast the interval, the next waits its turn.
  const tick = (): void => {
    if (stopped || busy) return;
    busy = true;
    running = refresh()
      .catch((err: unknown) => o.onError?.(err))
      .finally(() => (busy = false));
  };
  const timer = setInterval(tick, o.intervalMs);
  timer.unref();
  tick();
  return {
    refresh,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}

/** One sample of a Prometheus text exposition. */
