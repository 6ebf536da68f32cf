/**
 * The Steadfast side of a measurement: start a `batchPipeline` through the
 * client, time it to its result, and read what it left behind (history sizes,
 * result rows).
 */
import { DatabaseSync } from 'node:sqlite';
import type { Client } from '@temporalio/client';
import { tsToMs } from '@temporalio/common/lib/time.js';
import type { BatchInputRaw } from '../src/shared/spec.ts';
import type { BatchSummary } from '../src/shared/types.ts';
import type { batchPipeline } from '../workflows/batch.ts';

export interface BatchRun {
  batchId: string;
  wallMs: number;
  summary: BatchSummary;
  itemsPerSec: number;
}

/** Starts a batch and waits for its summary; wall time from the start call to the result. */
export async function runBatch(client: Client, taskQueue: string, input: BatchInputRaw & { batchId: string }): Promise<BatchRun> {
  const t0 = performance.now();
  const handle = await client.workflow.start<typeof batchPipeline>('batchPipeline', { taskQueue, workflowId: input.batchId, args: [input] });
  const summary = await handle.result();
  const wallMs = performance.now() - t0;
  return { batchId: input.batchId, wallMs, summary, itemsPerSec: (summary.total / wallMs) * 1000 };
}

/** Terminates a batch and every item workflow of it still running (after a fixed-window measurement). */
export async function terminateBatch(client: Client, batchId: string): Promise<number> {
  let n = 0;
  await client.workflow
    .getHandle(batchId)
    .terminate('benchmark window over')
    .catch(() => undefined);
  for (let pass = 0; pass < 5; pass++) {
    const ids: string[] = [];
    for await (const wf of client.workflow.list({ query: `BatchId = "${batchId}" AND ExecutionStatus = "Running"` })) ids.push(wf.workflowId);
    if (ids.length === 0) break;
    await Promise.all(
      ids.map((id) =>
        client.workflow
          .getHandle(id)
          .terminate('benchmark window over')
          .then(
            () => n++,
            () => undefined,
          ),
      ),
    );
  }
  return n;
}

export interface HistoryStats {
  /** Runs of the batch workflow (1 + continue-as-new count). */
  batchRuns: number;
  /** Largest history (events) of any run of the batch workflow, and its size in bytes. */
  batchMaxEvents: number;
  batchMaxBytes: number;
  /** Largest history among the item workflows sampled. */
  itemMaxEvents: number;
  itemsSampled: number;
  /** Largest of all of the above. */
  maxEvents: number;
}

/**
 * History sizes: every run of the batch (described one by one) and a sample of
 * its item workflows (their size does not depend on the batch size).
 */
export async function historyStats(client: Client, batchId: string, itemSample = 500): Promise<HistoryStats> {
  let batchRuns = 0;
  let batchMaxEvents = 0;
  let batchMaxBytes = 0;
  const runIds: string[] = [];
  for await (const wf of client.workflow.list({ query: `WorkflowId = "${batchId}"` })) runIds.push(wf.runId);
  for (const runId of runIds) {
    const d = await client.workflow.getHandle(batchId, runId).describe();
    batchRuns++;
    batchMaxEvents = Math.max(batchMaxEvents, d.historyLength);
    batchMaxBytes = Math.max(batchMaxBytes, d.historySize ?? 0);
  }
  let itemMaxEvents = 0;
  let itemsSampled = 0;
  for await (const wf of client.workflow.list({ query: `BatchId = "${batchId}" AND WorkflowType = "itemPipeline"`, pageSize: Math.min(itemSample, 1000) })) {
    itemMaxEvents = Math.max(itemMaxEvents, wf.historyLength);
    if (++itemsSampled >= itemSample) break;
  }
  return { batchRuns, batchMaxEvents, batchMaxBytes, itemMaxEvents, itemsSampled, maxEvents: Math.max(batchMaxEvents, itemMaxEvents) };
}

/**
 * History events per item: every run of the batch, plus the item workflows (a sample's mean
 * times their count: on the fast path only items whose first call failed have one), over the
 * batch's items. `itemMean` is the events of items that have a workflow.
 */
export async function eventsPerItem(
  client: Client,
  batchId: string,
  items: number,
  sample = 200,
): Promise<{ perItem: number; batchPerItem: number; itemPerItem: number; itemMean: number; itemWorkflows: number }> {
  let batchEvents = 0;
  for await (const wf of client.workflow.list({ query: `WorkflowId = "${batchId}"` })) batchEvents += wf.historyLength;
  const query = `BatchId = "${batchId}" AND WorkflowType = "itemPipeline"`;
  const itemWorkflows = (await client.workflow.count(query)).count;
  let n = 0;
  let sum = 0;
  for await (const wf of client.workflow.list({ query, pageSize: sample })) {
    sum += wf.historyLength;
    if (++n >= sample) break;
  }
  const itemMean = n ? sum / n : 0;
  const round = (x: number): number => Math.round(x * 10) / 10;
  const batchPerItem = batchEvents / Math.max(1, items);
  const itemPerItem = (itemMean * itemWorkflows) / Math.max(1, items);
  return { perItem: round(batchPerItem + itemPerItem), batchPerItem: round(batchPerItem), itemPerItem: round(itemPerItem), itemMean: round(itemMean), itemWorkflows };
}

export interface RowStats {
  rows: number;
  byStatus: Record<string, number>;
  /** Rows whose item saw at least one failed call (attempts > 1), or did not succeed. */
  faulted: number;
  /** Of those, rows that ended succeeded without a human. */
  healed: number;
  attemptsSum: number;
  /** Rows written more than once (write_count > 1). */
  rewritten: number;
}

/** Reads a batch's rows from the workers' SQLite results file. */
export function rowStats(dbPath: string, batchId: string): RowStats {
  const db = new DatabaseSync(dbPath, { readOnly: true });
  try {
    db.exec('PRAGMA busy_timeout = 10000');
    const q = db.prepare(
      `SELECT COUNT(*) AS n, status, SUM(attempts > 1 OR status <> 'succeeded') AS faulted, SUM(attempts) AS att, SUM(write_count > 1) AS rewritten
       FROM results WHERE batch_id = ? GROUP BY status`,
    );
    const s: RowStats = { rows: 0, byStatus: {}, faulted: 0, healed: 0, attemptsSum: 0, rewritten: 0 };
    for (const r of q.all(batchId)) {
      const n = Number(r['n']);
      const status = String(r['status']);
      s.rows += n;
      s.byStatus[status] = n;
      s.faulted += Number(r['faulted']);
      if (status === 'succeeded') s.healed += Number(r['faulted']);
      s.attemptsSum += Number(r['att']);
      s.rewritten += Number(r['rewritten']);
    }
    return s;
  } finally {
    db.close();
  }
}

/** Where an item's time goes, from its history (means over a sample, in ms). */
export interface LatencyBreakdown {
  itemsSampled: number;
  /** Start of the item workflow to its first activity scheduled (first workflow task, incl. creating the workflow). */
  startToFirstActivity: number;
  /** Per activity type: time queued (scheduled to started) and running (started to completed). */
  activities: Record<string, { queuedMs: number; runMs: number }>;
  /** From one activity's completion to the next activity's scheduling (a workflow task round trip). */
  betweenActivities: number;
  /** The last activity's completion to the item workflow's completion (persist, report). */
  tail: number;
  /** The whole item workflow. */
  total: number;
  /** The batch: an item's report (signal) to the next child start initiated, and initiated to started. */
  parent: {
    signalToNextStart: number;
    startInitiatedToStarted: number;
    samples: number;
    /** The batch's own calls (fast path): time queued, scheduled to completed, and a completion to the next call's schedule. */
    fastCalls: { n: number; queuedMs: number; scheduledToCompletedMs: number; completedToNextScheduledMs: number };
  };
  /** Mean ms from each event of an item's history to the next, keyed `n:EventType` (the most common event sequence). */
  itemEventGaps: Record<string, number>;
  /** The batch's first run: mean ms from one event to the next, by pair of event types, with counts. */
  parentEventGaps: Record<string, { ms: number; n: number }>;
}

/** Short names of the event types an item history holds (temporal.api.enums.v1.EventType). */
const EVENT_NAMES: Record<number, string> = {
  1: 'started',
  2: 'completed',
  5: 'wftScheduled',
  6: 'wftStarted',
  7: 'wftCompleted',
  10: 'activityScheduled',
  11: 'activityStarted',
  12: 'activityCompleted',
  13: 'activityFailed',
  17: 'timerStarted',
  18: 'timerFired',
  25: 'marker',
  26: 'signaled',
  29: 'startChildInitiated',
  31: 'childStarted',
  32: 'childCompleted',
  37: 'signalExternalInitiated',
  38: 'signalExternalFailed',
  39: 'externalSignaled',
  40: 'upsertSearchAttributes',
};
const eventName = (e: { eventType?: unknown }): string => EVENT_NAMES[Number(e.eventType)] ?? `type${String(e.eventType)}`;

const mean = (xs: number[]): number => (xs.length ? Math.round(xs.reduce((a, b) => a + b, 0) / xs.length) : 0);

function commonGaps(seqs: { keys: string[]; sums: number[]; n: number }[]): Record<string, number> {
  const top = seqs.sort((a, b) => b.n - a.n)[0];
  return top ? Object.fromEntries(top.keys.map((k, i) => [k, Math.round(top.sums[i]! / top.n)])) : {};
}

/** Samples item histories (and the first run of the batch) to show where the time per item goes. */
export async function latencyBreakdown(client: Client, batchId: string, sample = 30): Promise<LatencyBreakdown> {
  const ids: string[] = [];
  for await (const wf of client.workflow.list({ query: `BatchId = "${batchId}" AND WorkflowType = "itemPipeline"`, pageSize: 200 })) ids.push(wf.workflowId);
  // Skip the first and last items: ramp-up and drain are not the steady state.
  const picked = ids.sort().slice(Math.floor(ids.length * 0.25), Math.floor(ids.length * 0.25) + sample);
  const first: number[] = [];
  const between: number[] = [];
  const tail: number[] = [];
  const total: number[] = [];
  const acts: Record<string, { q: number[]; r: number[] }> = {};
  const gaps = new Map<string, { keys: string[]; sums: number[]; n: number }>();
  for (const id of picked) {
    const events = (await client.workflow.getHandle(id).fetchHistory()).events ?? [];
    const t = (e: (typeof events)[number]) => tsToMs(e.eventTime);
    const keys = events.map((e, i) => `${i + 1}:${eventName(e)}`);
    const seq = gaps.get(keys.join()) ?? { keys, sums: keys.map(() => 0), n: 0 };
    events.forEach((e, i) => (seq.sums[i]! += i === 0 ? 0 : t(e) - t(events[i - 1]!)));
    seq.n += 1;
    gaps.set(keys.join(), seq);
    const startedAt = t(events[0]!);
    const scheduled = new Map<string, { type: string; at: number }>();
    let lastDone: number | null = null;
    let firstSeen = false;
    for (const e of events) {
      if (e.activityTaskScheduledEventAttributes) {
        const type = e.activityTaskScheduledEventAttributes.activityType?.name ?? '?';
        scheduled.set(String(e.eventId), { type, at: t(e) });
        if (!firstSeen) first.push(t(e) - startedAt);
        else if (lastDone !== null) between.push(t(e) - lastDone);
        firstSeen = true;
      } else if (e.activityTaskStartedEventAttributes) {
        const s = scheduled.get(String(e.activityTaskStartedEventAttributes.scheduledEventId));
        if (s) (acts[s.type] ??= { q: [], r: [] }).q.push(t(e) - s.at);
      } else if (e.activityTaskCompletedEventAttributes) {
        const s = scheduled.get(String(e.activityTaskCompletedEventAttributes.scheduledEventId));
        const startedEv = events.find(
          (x) =>
            x.activityTaskStartedEventAttributes &&
            String(x.activityTaskStartedEventAttributes.scheduledEventId) === String(e.activityTaskCompletedEventAttributes!.scheduledEventId),
        );
        if (s && startedEv) acts[s.type]!.r.push(t(e) - t(startedEv));
        lastDone = t(e);
      } else if (e.workflowExecutionCompletedEventAttributes) {
        if (lastDone !== null) tail.push(t(e) - lastDone);
        total.push(t(e) - startedAt);
      }
    }
  }
  // The batch's first run: each report to the next child start it allows.
  const parentEvents =
    (
      await client.workflow
        .getHandle(batchId)
        .fetchHistory()
        .catch(() => null)
    )?.events ?? [];
  const sigToStart: number[] = [];
  const initToStarted: number[] = [];
  const initiatedAt = new Map<string, number>();
  let pendingSignals: number[] = [];
  const pairs: Record<string, number[]> = {};
  // The fast path: the batch's own calls, from one call's completion to the next call's schedule.
  const callScheduled = new Map<string, number>();
  const callQueued: number[] = [];
  const callRun: number[] = [];
  const completedToNext: number[] = [];
  let doneCalls: number[] = [];
  parentEvents.forEach((e, i) => {
    if (i > 0) (pairs[`${eventName(parentEvents[i - 1]!)}>${eventName(e)}`] ??= []).push(tsToMs(e.eventTime) - tsToMs(parentEvents[i - 1]!.eventTime));
  });
  for (const e of parentEvents) {
    const at = tsToMs(e.eventTime);
    if (e.workflowExecutionSignaledEventAttributes?.signalName === 'itemDone') pendingSignals.push(at);
    if (e.startChildWorkflowExecutionInitiatedEventAttributes) {
      initiatedAt.set(String(e.eventId), at);
      const s = pendingSignals.shift();
      if (s !== undefined) sigToStart.push(at - s);
    }
    if (e.childWorkflowExecutionStartedEventAttributes) {
      const i = initiatedAt.get(String(e.childWorkflowExecutionStartedEventAttributes.initiatedEventId));
      if (i !== undefined) initToStarted.push(at - i);
    }
    if (e.activityTaskScheduledEventAttributes?.activityType?.name === 'callLlm') {
      callScheduled.set(String(e.eventId), at);
      const d = doneCalls.shift();
      if (d !== undefined) completedToNext.push(at - d);
    }
    const startedOf = e.activityTaskStartedEventAttributes;
    const sched = startedOf ? callScheduled.get(String(startedOf.scheduledEventId)) : undefined;
    if (sched !== undefined) callQueued.push(at - sched);
    const completedOf = e.activityTaskCompletedEventAttributes;
    const schedDone = completedOf ? callScheduled.get(String(completedOf.scheduledEventId)) : undefined;
    if (schedDone !== undefined) {
      callRun.push(at - schedDone);
      doneCalls.push(at);
    }
    if (e.workflowExecutionContinuedAsNewEventAttributes) pendingSignals = doneCalls = [];
  }
  return {
    itemsSampled: picked.length,
    startToFirstActivity: mean(first),
    activities: Object.fromEntries(Object.entries(acts).map(([k, v]) => [k, { queuedMs: mean(v.q), runMs: mean(v.r) }])),
    betweenActivities: mean(between),
    tail: mean(tail),
    total: mean(total),
    parent: {
      signalToNextStart: mean(sigToStart),
      startInitiatedToStarted: mean(initToStarted),
      samples: sigToStart.length,
      fastCalls: { n: callRun.length, queuedMs: mean(callQueued), scheduledToCompletedMs: mean(callRun), completedToNextScheduledMs: mean(completedToNext) },
    },
    itemEventGaps: commonGaps([...gaps.values()]),
    parentEventGaps: Object.fromEntries(
      Object.entries(pairs)
        .filter(([, v]) => v.length >= 5)
        .map(([k, v]) => [k, { ms: mean(v), n: v.length }]),
    ),
  };
}
