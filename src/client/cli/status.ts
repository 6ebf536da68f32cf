/**
 * `steadfast status <batchId>`: the progress of a running batch (progress
 * query), the summary of a completed one (its result), or why it ended.
 * `<batchId>/<itemId>` shows one item's state instead (itemState query).
 */
import type { Client, WorkflowExecutionDescription, WorkflowHandle } from '@temporalio/client';
import type { Config } from '../../common/config.ts';
import type { BatchSummary } from '../../shared/types.ts';
import { itemStateQuery, progressQuery, reviewQueueQuery } from '../../shared/messages.ts';
import type { PendingReview, Progress, ReviewQueuePage } from '../../shared/messages.ts';
import { PROG, describeBatch, rootCause, withDeadline } from './context.ts';
import type { Io } from './context.ts';
import { ExitCode, failure, messageOf } from './errors.ts';
import { keyValues, progressTable, reviewTable, summaryTable } from './format.ts';

/** What `status --json` prints. */
export interface StatusReport {
  batchId: string;
  /** The workflow's status: RUNNING, COMPLETED, FAILED, TERMINATED, CANCELLED, TIMED_OUT. */
  status: string;
  runId: string;
  startTime: string;
  closeTime: string | null;
  progress?: Progress;
  summary?: BatchSummary;
  failure?: { type: string | null; message: string };
  /** For an item workflow: its state from the itemState query. */
  item?: { status: string; errorType: string | null; reason: string | null; tier: number | null; step?: string };
}

/** The progress query, answered by a worker; a missing worker is a clear error. */
export async function queryProgress(client: Client, handle: WorkflowHandle, config: Config): Promise<Progress> {
  try {
    return await withDeadline(client, 10_000, () => handle.query(progressQuery));
  } catch (err) {
    throw failure(`batch ${handle.workflowId} did not answer the progress query (${messageOf(err)}); is a worker running on task queue ${config.taskQueue}?`);
  }
}

/** The whole review queue of a running batch, a page of 1,000 at a time. */
export async function queryReviewQueue(client: Client, handle: WorkflowHandle, config: Config): Promise<PendingReview[]> {
  const all: PendingReview[] = [];
  let offset: number | null = 0;
  while (offset !== null) {
    const at: number = offset;
    let page: ReviewQueuePage;
    try {
      page = await withDeadline(client, 10_000, () => handle.query(reviewQueueQuery, { offset: at, limit: 1_000 }));
    } catch (err) {
      throw failure(`batch ${handle.workflowId} did not answer the reviewQueue query (${messageOf(err)}); is a worker running on task queue ${config.taskQueue}?`);
    }
    all.push(...page.items);
    offset = page.next;
  }
  return all;
}

async function report(client: Client, config: Config, handle: WorkflowHandle, desc: WorkflowExecutionDescription): Promise<StatusReport> {
  const base: StatusReport = {
    batchId: desc.workflowId,
    status: desc.status.name,
    runId: desc.runId,
    startTime: desc.startTime.toISOString(),
    closeTime: desc.closeTime?.toISOString() ?? null,
  };
  if (desc.type === 'itemPipeline') {
    if (desc.status.name !== 'RUNNING') return base;
    try {
      return { ...base, item: await withDeadline(client, 10_000, () => handle.query(itemStateQuery)) };
    } catch (err) {
      throw failure(`item ${desc.workflowId} did not answer the itemState query (${messageOf(err)}); is a worker running on task queue ${config.taskQueue}?`);
    }
  }
  if (desc.type !== 'batchPipeline') throw failure(`${desc.workflowId} is a ${desc.type} workflow, not a batch`);
  if (desc.status.name === 'RUNNING') return { ...base, progress: await queryProgress(client, handle, config) };
  try {
    // A closed workflow's result comes from its history: no worker needed.
    return { ...base, summary: (await withDeadline(client, 10_000, () => handle.result())) as BatchSummary };
  } catch (err) {
    return { ...base, failure: rootCause(err) };
  }
}

/** The `status` command. Exit 0 whenever the status could be read, whatever it is. */
export async function statusCommand(client: Client, config: Config, batchId: string, opts: { json?: boolean }, io: Io): Promise<ExitCode> {
  const { handle, desc } = await describeBatch(client, config, batchId);
  const r = await report(client, config, handle, desc);
  if (opts.json) {
    io.out(`${JSON.stringify(r, null, 2)}\n`);
    return ExitCode.Ok;
  }
  if (r.item) {
    io.out(
      `${keyValues([
        ['item', r.batchId],
        ['status', r.item.status],
        ...(r.item.step !== undefined ? ([['step', r.item.step]] as [string, string][]) : []),
        ['tier', r.item.tier === null ? '-' : String(r.item.tier)],
        ['error', r.item.errorType ?? '-'],
        ['reason', r.item.reason ?? '-'],
      ])}\n`,
    );
  } else if (r.progress) {
    io.out(`${progressTable(r.progress)}\n`);
    const waiting = r.progress.awaitingReview;
    if (waiting.length > 0) {
      io.out(`\n${reviewTable(waiting.slice(0, 10), Date.now())}\n`);
      const more = r.progress.awaitingReviewCount - Math.min(waiting.length, 10);
      if (more > 0) io.out(`... and ${more} more\n`);
      io.out(`review them with: ${PROG} review list ${r.batchId}\n`);
    }
  } else if (r.summary) {
    io.out(`${summaryTable(r.summary)}\n`);
  } else {
    io.out(
      `${keyValues([
        ['batch', r.batchId],
        ['status', r.status.toLowerCase()],
        ['closed', r.closeTime ?? '-'],
      ])}\n`,
    );
    if (r.failure) io.out(`failure: ${r.failure.type ? `${r.failure.type}: ` : ''}${r.failure.message}\n`);
  }
  return ExitCode.Ok;
}
