/**
 * `steadfast cancel <batchId>`: the batch's `cancel` Update. No item starts any
 * more; running items and items awaiting review are cancelled (their in-flight
 * calls too) and their rows say `cancelled`; `--rollback` marks or deletes the
 * rows the batch wrote. `--wait` prints the final summary.
 */
import { WorkflowUpdateFailedError } from '@temporalio/client';
import type { Client } from '@temporalio/client';
import type { Config } from '../../common/config.ts';
import { cancelUpdate } from '../../shared/messages.ts';
import type { CancelAccepted, CancelRequest } from '../../shared/messages.ts';
import type { BatchSummary } from '../../shared/types.ts';
import { PROG, describeBatchOnly, rootCause, withDeadline } from './context.ts';
import type { Io } from './context.ts';
import { ExitCode, failure, messageOf, usageError } from './errors.ts';
import { summaryTable } from './format.ts';

export interface CancelOptions {
  reason?: string;
  rollback?: string;
  wait?: boolean;
  timeout?: number;
}

const ROLLBACKS = ['none', 'mark', 'delete'] as const;

export async function cancelCommand(client: Client, config: Config, batchId: string, opts: CancelOptions, io: Io): Promise<ExitCode> {
  if (opts.rollback !== undefined && !ROLLBACKS.includes(opts.rollback as (typeof ROLLBACKS)[number])) {
    throw usageError(`--rollback ${opts.rollback}: one of ${ROLLBACKS.join(', ')}`);
  }
  const req: CancelRequest = {};
  if (opts.reason !== undefined) req.reason = opts.reason;
  if (opts.rollback !== undefined) req.rollback = opts.rollback as CancelRequest['rollback'];
  const { handle, desc } = await describeBatchOnly(client, config, batchId);
  if (desc.status.name !== 'RUNNING') throw failure(`batch ${batchId} is ${desc.status.name.toLowerCase()}: there is nothing to cancel`);
  const seconds = opts.timeout ?? 30;
  let r: CancelAccepted;
  try {
    r = await withDeadline(client, seconds * 1_000, () => handle.executeUpdate(cancelUpdate, { args: [req] }));
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError) throw failure(`cancel rejected: ${rootCause(err).message}`);
    throw failure(`no answer from batch ${batchId} within ${seconds}s (${messageOf(err)}); is a worker running on task queue ${config.taskQueue}?`);
  }
  const notStarted = r.notStarted === null ? 'the rest of the source' : `${r.notStarted}`;
  io.out(
    `batch ${batchId} cancelled: ${r.stopping} running item${r.stopping === 1 ? '' : 's'} stopping, ${notStarted} never started; rows: ${r.rollback === 'none' ? 'kept' : r.rollback === 'mark' ? 'marked rolled_back' : 'deleted'} when it ends\n`,
  );
  if (!opts.wait) {
    io.out(`see it end with: ${PROG} status ${batchId}\n`);
    return ExitCode.Ok;
  }
  const summary = (await handle.result()) as BatchSummary;
  io.out(`${summaryTable(summary)}\n`);
  return ExitCode.Ok;
}
