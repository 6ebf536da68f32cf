/**
 * What the console reads and sends: batches (visibility list and the progress
 * query), the review queue across running batches, one item's reviewDetails,
 * and decisions, each through the batch's `reviewItem` Update, exactly as the
 * CLI sends them; so the page can do nothing the CLI cannot. A closed item's
 * details come from the same query (a worker answers it from the history).
 */
import { WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import type { Client } from '@temporalio/client';
import type { Config } from '../common/config.ts';
import { progressQuery, reviewDetailsQuery, reviewManyUpdate, reviewQueueQuery, reviewUpdate } from '../shared/messages.ts';
import type { BatchReviewDecision, PendingReview, Progress, ReviewDetails, ReviewQueuePage } from '../shared/messages.ts';

/** How many batches the console lists (running first, then the most recent). */
export const BATCH_LIMIT = 25;
/** Batches a bulk action decides in at once (one reviewMany Update each). */
export const BULK_CONCURRENCY = 4;
/** Deadline of one query or Update. */
const CALL_MS = 15_000;

/** One batch in the list. */
export interface BatchRow {
  batchId: string;
  status: string;
  startTime: string;
  closeTime: string | null;
  progress: Progress | null;
  /** Why progress is missing for a running batch (no worker answered). */
  problem: string | null;
}

/** One queue entry: a pending review and its batch. */
export interface QueueEntry extends PendingReview {
  batchId: string;
}

/** Filters of the queue. */
export interface QueueFilter {
  batchId?: string | undefined;
  errorType?: string | undefined;
  /** Only items waiting at least this many seconds. */
  minAgeSeconds?: number | undefined;
}

/** The outcome of one decision as the page shows it. */
export type DecisionResult = { ok: true; batchId: string; itemId: string } | { ok: false; batchId: string; itemId: string; message: string };

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The innermost cause's message (the validator's text under a WorkflowUpdateFailedError). */
export function rootMessage(err: unknown): string {
  let cur: unknown = err;
  for (let i = 0; i < 10 && cur instanceof Error && cur.cause instanceof Error; i++) cur = cur.cause;
  return messageOf(cur);
}

/** Runs `fn` over `items` with at most `limit` in flight, results in input order. */
export async function mapBounded<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return out;
}

/** The console's view of Temporal. */
export class ConsoleData {
  readonly client: Client;
  readonly config: Config;

  constructor(client: Client, config: Config) {
    this.client = client;
    this.config = config;
  }

  private deadline<T>(fn: () => Promise<T>): Promise<T> {
    return this.client.withDeadline(Date.now() + CALL_MS, fn);
  }

  /** Batches on this task queue: running ones with their progress, then the recent closed ones. */
  async batches(): Promise<BatchRow[]> {
    const query = `WorkflowType = 'batchPipeline' AND TaskQueue = '${this.config.taskQueue.replace(/'/g, "''")}'`;
    const rows: BatchRow[] = [];
    for await (const w of this.client.workflow.list({ query, pageSize: BATCH_LIMIT })) {
      rows.push({
        batchId: w.workflowId,
        status: w.status.name,
        startTime: w.startTime.toISOString(),
        closeTime: w.closeTime?.toISOString() ?? null,
        progress: null,
        problem: null,
      });
      if (rows.length >= BATCH_LIMIT) break;
    }
    await mapBounded(
      rows.filter((r) => r.status === 'RUNNING'),
      4,
      async (r) => {
        try {
          const handle = this.client.workflow.getHandle(r.batchId);
          const progress = await this.deadline(() => handle.query(progressQuery));
          // Progress lists the first items awaiting review; the whole queue comes a page at a time.
          if (progress.awaitingReviewCount > progress.awaitingReview.length) {
            const all: PendingReview[] = [];
            for (let offset: number | null = 0; offset !== null;) {
              const at: number = offset;
              const page: ReviewQueuePage = await this.deadline(() => handle.query(reviewQueueQuery, { offset: at, limit: 1_000 }));
              all.push(...page.items);
              offset = page.next;
            }
            progress.awaitingReview = all;
          }
          r.progress = progress;
        } catch (err) {
          r.problem = `no progress (${messageOf(err)}); is a worker running on task queue ${this.config.taskQueue}?`;
        }
      },
    );
    return rows.sort((a, b) => Number(b.status === 'RUNNING') - Number(a.status === 'RUNNING') || b.startTime.localeCompare(a.startTime));
  }

  /** The items awaiting review across the running batches, oldest first, filtered. */
  queue(batches: BatchRow[], filter: QueueFilter, now = Date.now()): QueueEntry[] {
    const all = batches.flatMap((b) => (b.progress?.awaitingReview ?? []).map((p) => ({ ...p, batchId: b.batchId })));
    return all
      .filter((e) => !filter.batchId || e.batchId === filter.batchId)
      .filter((e) => !filter.errorType || e.errorType === filter.errorType)
      .filter((e) => !filter.minAgeSeconds || now - Date.parse(e.since) >= filter.minAgeSeconds * 1_000)
      .sort((a, b) => a.since.localeCompare(b.since) || a.batchId.localeCompare(b.batchId) || a.itemId.localeCompare(b.itemId));
  }

  /** One item's details (reviewDetails query); null when the item workflow does not exist. */
  async details(batchId: string, itemId: string): Promise<ReviewDetails | null> {
    try {
      return await this.deadline(() => this.client.workflow.getHandle(`${batchId}/${itemId}`).query(reviewDetailsQuery));
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return null;
      throw err;
    }
  }

  /** Sends one decision by the batch's `reviewItem` Update; a rejection comes back as the validator's message. */
  async decide(batchId: string, d: BatchReviewDecision): Promise<DecisionResult> {
    const base = { batchId, itemId: d.itemId };
    try {
      await this.deadline(() => this.client.workflow.getHandle(batchId).executeUpdate(reviewUpdate, { args: [d] }));
      return { ok: true, ...base };
    } catch (err) {
      if (err instanceof WorkflowUpdateFailedError) return { ok: false, ...base, message: `rejected: ${rootMessage(err)}` };
      if (err instanceof WorkflowNotFoundError) return { ok: false, ...base, message: `batch ${batchId} is no longer running` };
      return { ok: false, ...base, message: `not confirmed (${messageOf(err)}); the decision may or may not have been applied` };
    }
  }

  /**
   * The same decision for many items: one `reviewMany` Update per batch (filtered to the
   * selected ids), {@link BULK_CONCURRENCY} batches at a time, one result per item.
   */
  async decideMany(targets: { batchId: string; itemId: string }[], d: Omit<BatchReviewDecision, 'itemId'>): Promise<DecisionResult[]> {
    const byBatch = new Map<string, string[]>();
    for (const t of targets) byBatch.set(t.batchId, [...(byBatch.get(t.batchId) ?? []), t.itemId]);
    const perBatch = await mapBounded([...byBatch], BULK_CONCURRENCY, async ([batchId, itemIds]): Promise<DecisionResult[]> => {
      try {
        const r = await this.deadline(() => this.client.workflow.getHandle(batchId).executeUpdate(reviewManyUpdate, { args: [{ ...d, filter: { itemIds } }] }));
        const decided = new Set(r.itemIds);
        return itemIds.map((itemId) => (decided.has(itemId) ? { ok: true, batchId, itemId } : { ok: false, batchId, itemId, message: 'not awaiting review any more' }));
      } catch (err) {
        const message =
          err instanceof WorkflowUpdateFailedError
            ? `rejected: ${rootMessage(err)}`
            : err instanceof WorkflowNotFoundError
              ? `batch ${batchId} is no longer running`
              : `not confirmed (${messageOf(err)}); the decision may or may not have been applied`;
        return itemIds.map((itemId) => ({ ok: false, batchId, itemId, message }));
      }
    });
    const results = new Map(perBatch.flat().map((r) => [`${r.batchId}/${r.itemId}`, r]));
    return targets.map((t) => results.get(`${t.batchId}/${t.itemId}`)!);
  }
}
