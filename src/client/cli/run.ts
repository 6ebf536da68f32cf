/**
 * `steadfast run <items> --pipeline <spec>`: validates everything, starts one
 * `batchPipeline` workflow (workflow id = batch id), then watches it or detaches.
 * Large inputs go by reference (`source.jsonl`) so they never sit in history.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { WorkflowExecutionAlreadyStartedError, WorkflowIdReusePolicy } from '@temporalio/client';
import type { Client } from '@temporalio/client';
import { batchPolicyMarkdown } from '../../shared/batch-details.ts';
import type { Config } from '../../common/config.ts';
import { resolveUnderRoots } from '../../common/source-roots.ts';
import { closeClient, webUiUrl } from '../client.ts';
import { BatchInput, formatIssues } from '../../shared/spec.ts';
import type { BatchInputRaw, Item } from '../../shared/spec.ts';
import type { BatchSummary } from '../../shared/types.ts';
import type { batchPipeline } from '../../../workflows/batch.ts';
import { progressQuery } from '../../shared/messages.ts';
import { PROG, connect, withDeadline } from './context.ts';
import type { Io } from './context.ts';
import { ExitCode, failure, messageOf } from './errors.ts';
import { checkBatchId, defaultBatchId, loadBatch, shouldPassByReference } from './input.ts';
import type { LoadedBatch } from './input.ts';
import { watchBatch } from './progress.ts';

export interface RunOptions {
  pipeline: string;
  batchId?: string;
  detach?: boolean;
  sourceByReference?: boolean;
  /** Where CSV items are converted to JSONL when passed by reference. @default `data/inputs` */
  inputsDir?: string;
}

/** How the items reach the workflow. */
export type Transport = { kind: 'inline'; items: Item[] } | { kind: 'reference'; path: string; written: boolean };

/**
 * Inline items, or a JSONL path the workers read: the items file itself when it
 * is JSONL and under the source roots, else a JSONL copy (CSV converted, or a JSONL
 * file the workers may not read) under `inputsDir`.
 */
export function planTransport(batch: LoadedBatch, itemsFile: string, batchId: string, opts: { forced: boolean; inputsDir: string; roots?: readonly string[] }): Transport {
  if (!shouldPassByReference(batch.items, opts.forced)) return { kind: 'inline', items: batch.items };
  // A JSONL file outside the source roots would be refused by the workers: a copy goes where they read.
  if (batch.format === 'jsonl' && (opts.roots === undefined || underRoots(resolve(itemsFile), opts.roots))) return { kind: 'reference', path: resolve(itemsFile), written: false };
  const path = resolve(opts.inputsDir, `${batchId}.jsonl`);
  return { kind: 'reference', path, written: true };
}

function underRoots(path: string, roots: readonly string[]): boolean {
  try {
    resolveUnderRoots(path, roots);
    return true;
  } catch {
    return false;
  }
}

function writeJsonl(path: string, items: readonly Item[]): void {
  mkdirSync(resolve(path, '..'), { recursive: true });
  writeFileSync(path, items.map((i) => JSON.stringify(i)).join('\n') + '\n');
}

/** True when some worker polled the task queue recently; null when the server cannot tell. */
async function hasPollers(client: Client, config: Config): Promise<boolean | null> {
  try {
    const r = await withDeadline(client, 3_000, () =>
      client.workflowService.describeTaskQueue({
        namespace: config.namespace,
        // TASK_QUEUE_KIND_NORMAL and TASK_QUEUE_TYPE_WORKFLOW (proto enums; @temporalio/proto is not a direct dependency).
        taskQueue: { name: config.taskQueue, kind: 1 },
        taskQueueType: 1,
      }),
    );
    return (r.pollers?.length ?? 0) > 0;
  } catch {
    return null;
  }
}

/** The `run` command; returns the exit code. */
export async function runCommand(itemsFile: string, opts: RunOptions, config: Config, io: Io, signal?: AbortSignal): Promise<ExitCode> {
  // Everything is validated before any connection or file is touched: a bad file starts nothing.
  const batch = await loadBatch(itemsFile, opts.pipeline);
  const batchId = opts.batchId !== undefined ? checkBatchId(opts.batchId) : defaultBatchId(batch.spec.name, new Date());
  const transport = planTransport(batch, itemsFile, batchId, { forced: Boolean(opts.sourceByReference), inputsDir: opts.inputsDir ?? 'data/inputs', roots: config.sourceRoots });
  const input: BatchInputRaw =
    transport.kind === 'inline' ? { batchId, pipeline: batch.rawSpec, items: transport.items } : { batchId, pipeline: batch.rawSpec, source: { jsonl: transport.path } };
  const check = BatchInput.safeParse(input);
  if (!check.success) throw failure(`internal: the batch input does not validate: ${formatIssues(check.error)}`);

  const client = await connect(config);
  try {
    if (transport.kind === 'reference' && transport.written) writeJsonl(transport.path, batch.items);
    let handle;
    try {
      handle = await withDeadline(client, 15_000, () =>
        client.workflow.start<typeof batchPipeline>('batchPipeline', {
          taskQueue: config.taskQueue,
          workflowId: batchId,
          args: [input],
          // A finished batch's id is not reused (its rows are in the store); a failed one's may be.
          workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
          staticSummary: `${batch.items.length} items from ${itemsFile}, pipeline ${batch.spec.name}`,
          staticDetails: batchPolicyMarkdown(batch.spec),
        }),
      );
    } catch (err) {
      if (transport.kind === 'reference' && transport.written) rmSync(transport.path, { force: true });
      if (err instanceof WorkflowExecutionAlreadyStartedError) {
        throw failure(`batch ${batchId} already exists; choose another --batch-id (see it with: ${PROG} status ${batchId})`);
      }
      throw failure(`could not start batch ${batchId}: ${messageOf(err)}`);
    }

    const how = transport.kind === 'inline' ? 'inline' : `by reference from ${transport.path} (workers must be able to read this path)`;
    io.out(`batch ${batchId} started: ${batch.items.length} items, ${how}\n`);
    const ui = webUiUrl(config, batchId);
    if (ui) io.out(`Web UI: ${ui}\n`);
    if ((await hasPollers(client, config)) === false) {
      io.err(`warning: no worker has polled task queue ${config.taskQueue} recently; the batch waits until one runs (npm run worker)\n`);
    }
    if (opts.detach) {
      io.out(`watch it with: ${PROG} status ${batchId}\n`);
      return ExitCode.Ok;
    }
    const h = handle;
    // Ctrl-C stops the watching only; the batch runs on in Temporal.
    const abort = new AbortController();
    const onSigint = () => abort.abort();
    process.once('SIGINT', onSigint);
    try {
      return await watchBatch(
        {
          batchId,
          result: () => h.result() as Promise<BatchSummary>,
          progress: () => withDeadline(client, 5_000, () => h.query(progressQuery)),
        },
        io,
        { taskQueue: config.taskQueue, signal: signal ? AbortSignal.any([signal, abort.signal]) : abort.signal },
      );
    } finally {
      process.off('SIGINT', onSigint);
    }
  } finally {
    await closeClient(client);
  }
}
