/**
 * The Steadfast side of a measurement: start a `batchPipeline` through the
 * client, time it to its result, and read what it left behind (history sizes,
 * result rows).
 */
import { DatabaseSync } from 'node:sqlite';
import type { Client } from '@temporalio/client';
import type { BatchInputRaw } from '../src/spec.ts';
import type { BatchSummary } from '../src/types.ts';
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
  await client.workflow.getHandle(batchId).terminate('benchmark window over').catch(() => undefined);
  for (let pass = 0; pass < 5; pass++) {
    const ids: string[] = [];
    for await (const wf of client.workflow.list({ query: `BatchId = "${batchId}" AND ExecutionStatus = "Running"` })) ids.push(wf.workflowId);
    if (ids.length === 0) break;
    await Promise.all(ids.map((id) => client.workflow.getHandle(id).terminate('benchmark window over').then(() => n++, () => undefined)));
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
