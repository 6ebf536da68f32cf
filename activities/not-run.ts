/**
 * Rows for items that never ran: a batch stopped at its budget writes each item it
 * did not start as `skipped`, with the reason as its error, so the rows account for
 * every item and `steadfast rerun --skipped` finds them. Upserts by (batch id, item
 * id): a retried call writes nothing twice, and an item that already has a final row
 * keeps it.
 */
import type { ApplicationFailure } from '@temporalio/common';
import type { ResultStore } from './store.ts';

/** The `recordNotRun` input: ids only, so a chunk stays far under the payload limit. */
export interface NotRunRequest {
  batchId: string;
  itemIds: string[];
  /** The failure type recorded on each row (e.g. `BudgetExceeded`). */
  type: string;
  message: string;
  /** When the batch decided (workflow time). */
  at: string;
}

/** Builds the activity; store errors become the retryable failure `storeFailure` gives. */
export function makeRecordNotRun(store: ResultStore, storeFailure: (op: string, err: unknown) => ApplicationFailure): (req: NotRunRequest) => Promise<number> {
  return async function recordNotRun(req: NotRunRequest): Promise<number> {
    let written = 0;
    try {
      for (const itemId of req.itemIds) {
        const outcome = await store.upsert({
          batchId: req.batchId,
          itemId,
          status: 'skipped',
          output: null,
          provider: null,
          model: null,
          tier: null,
          attempts: 0,
          inputTokens: 0,
          outputTokens: 0,
          costUsd: 0,
          truncation: null,
          error: { type: req.type, message: req.message, attempts: 0, firstAt: req.at, lastAt: req.at },
          startedAt: req.at,
          finishedAt: req.at,
          endpoint: null,
        });
        if (outcome !== 'unchanged') written++;
      }
    } catch (err: unknown) {
      throw storeFailure('upsert', err);
    }
    return written;
  };
}
