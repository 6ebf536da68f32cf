/**
 * Re-runs and their merged export.
 *
 * `steadfast rerun <batch>` starts a new batch of just the items that did not
 * succeed (or `--skipped`, or the ids in a file), with the original pipeline
 * or a fixed one, linked to the original by the `ParentBatch` search attribute
 * (always the root of the chain, so a re-run of a re-run links to the same root).
 * `steadfast export <batch> --merged` gives one clean output over the original
 * and every re-run: per item the latest good result, else its latest row, with
 * the batch it came from.
 */
import { readFile } from 'node:fs/promises';
import { WorkflowExecutionAlreadyStartedError, WorkflowIdReusePolicy } from '@temporalio/client';
import type { Client } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { batchPolicyMarkdown } from '../../shared/batch-details.ts';
import type { Config } from '../../common/config.ts';
import { PARENT_BATCH } from '../../shared/search-attributes.ts';
import { BatchInput } from '../../shared/spec.ts';
import type { BatchInputRaw, Item, PipelineSpecInput } from '../../shared/spec.ts';
import type { ResultStore } from '../../../activities/store.ts';
import type { ItemStatus, ResultRecord } from '../../shared/types.ts';
import { PROG, describeBatchOnly, withDeadline } from './context.ts';
import type { Io } from './context.ts';
import { ExitCode, failure, messageOf, usageError } from './errors.ts';
import { openResultStore, storePages } from './export.ts';
import { checkBatchId, parseItemsText, parseSpecText, Problems } from './input.ts';

export interface RerunOptions {
  /** Items that ended without a decision: failed, cancelled, rolled back (default: every item that did not succeed). */
  failed?: boolean;
  skipped?: boolean;
  /** A file with one item id per line. */
  ids?: string;
  /** A fixed pipeline spec (JSON or YAML); default: the original's. */
  pipeline?: string;
  batchId?: string;
}

const FAILED: readonly ItemStatus[] = ['failed', 'cancelled', 'rolled_back', 'awaiting_review'];
const NOT_GOOD: readonly ItemStatus[] = [...FAILED, 'skipped'];
const GOOD: readonly ItemStatus[] = ['succeeded', 'approved'];

/** Every row of a batch (optionally of some statuses). */
async function allRows(s: ResultStore, batchId: string, status?: readonly ItemStatus[]): Promise<ResultRecord[]> {
  const rows: ResultRecord[] = [];
  for await (const page of storePages(s, batchId, status)) rows.push(...page);
  return rows;
}

/** The input the batch was started with (its first run's start event), and its root batch. */
async function originalInput(client: Client, config: Config, batchId: string): Promise<{ input: BatchInputRaw; root: string }> {
  const { desc } = await describeBatchOnly(client, config, batchId);
  if (desc.status.name === 'RUNNING') throw failure(`batch ${batchId} is still running; re-run it when it ends (or ${PROG} cancel ${batchId})`);
  const firstRunId = desc.raw.workflowExecutionInfo?.firstRunId || desc.runId;
  const history = await client.workflow.getHandle(batchId, firstRunId).fetchHistory();
  const payload = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
  if (!payload) throw failure(`batch ${batchId}: its start event has no input`);
  const input = defaultPayloadConverter.fromPayload<BatchInputRaw>(payload);
  const parent = desc.searchAttributes?.[PARENT_BATCH.name]?.[0];
  return { input, root: typeof parent === 'string' && parent ? parent : batchId };
}

/** The items of the original input: inline, or read again from its JSONL source. */
async function originalItems(input: BatchInputRaw): Promise<Item[]> {
  if (input.items) return input.items as Item[];
  const path = input.source?.jsonl;
  if (!path) return [];
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw failure(
      `the original batch read its items from ${path}, which this machine cannot read (${(err as NodeJS.ErrnoException).code ?? messageOf(err)}); run the re-run where that file is`,
    );
  }
  const problems = new Problems();
  const items = parseItemsText(text, path, 'jsonl', null, problems);
  return items;
}

export async function rerunCommand(client: Client, config: Config, batchId: string, opts: RerunOptions, io: Io): Promise<ExitCode> {
  const picks = [opts.failed, opts.skipped, opts.ids !== undefined].filter(Boolean).length;
  if (picks > 1) throw usageError('choose one of --failed, --skipped, --ids');
  const newId = opts.batchId !== undefined ? checkBatchId(opts.batchId) : undefined;
  let spec: PipelineSpecInput | undefined;
  if (opts.pipeline !== undefined) {
    const problems = new Problems();
    let text: string;
    try {
      text = await readFile(opts.pipeline, 'utf8');
    } catch (err) {
      throw usageError(`--pipeline ${opts.pipeline}: cannot read the file (${(err as NodeJS.ErrnoException).code ?? messageOf(err)})`);
    }
    const parsed = parseSpecText(text, opts.pipeline, problems);
    if (!problems.empty) throw usageError([...problems.lines(), 'nothing was started']);
    spec = parsed.raw as PipelineSpecInput;
  }
  let ids: Set<string>;
  const s = await openResultStore(config, 'the re-run');
  try {
    if (opts.ids !== undefined) {
      let text: string;
      try {
        text = await readFile(opts.ids, 'utf8');
      } catch (err) {
        throw usageError(`--ids ${opts.ids}: cannot read the file (${(err as NodeJS.ErrnoException).code ?? messageOf(err)})`);
      }
      ids = new Set(
        text
          .split('\n')
          .map((l) => l.trim())
          .filter(Boolean),
      );
    } else {
      ids = new Set((await allRows(s, batchId, opts.skipped ? ['skipped'] : opts.failed ? FAILED : NOT_GOOD)).map((r) => r.itemId));
    }
  } finally {
    await s.close();
  }
  const { input, root } = await originalInput(client, config, batchId);
  const items = (await originalItems(input)).filter((i) => ids.has(i.id));
  const missing = [...ids].filter((id) => !items.some((i) => i.id === id));
  if (missing.length)
    throw failure(
      `${missing.length} item id${missing.length === 1 ? '' : 's'} not in batch ${batchId}'s input: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', ...' : ''}`,
    );
  if (items.length === 0) {
    io.out(`nothing to re-run in batch ${batchId}: no item matches\n`);
    return ExitCode.Ok;
  }
  const id = newId ?? `${root}-rerun-${new Date().toISOString().replace(/[-:]/g, '').replace(/\..*$/, '')}`;
  const next: BatchInputRaw = { batchId: id, pipeline: spec ?? input.pipeline, items };
  const check = BatchInput.safeParse(next);
  if (!check.success) throw usageError(`the re-run's input does not validate: ${check.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  try {
    await withDeadline(client, 15_000, () =>
      client.workflow.start('batchPipeline', {
        taskQueue: config.taskQueue,
        workflowId: id,
        args: [next],
        workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
        typedSearchAttributes: [{ key: PARENT_BATCH, value: root }],
        staticSummary: `re-run of ${items.length} items of ${batchId}${spec ? ` with ${opts.pipeline}` : ''}`,
        staticDetails: batchPolicyMarkdown(check.data.pipeline),
      }),
    );
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) throw failure(`batch ${id} already exists; choose another --batch-id`);
    throw failure(`could not start the re-run: ${messageOf(err)}`);
  }
  io.out(`batch ${id} started: re-runs ${items.length} items of ${batchId} (ParentBatch=${root})\n`);
  io.out(`watch it with: ${PROG} status ${id}; then one clean output: ${PROG} export ${root} --merged\n`);
  return ExitCode.Ok;
}

/** A merged row: the record with the batch it came from. */
export type MergedRecord = ResultRecord & { fromBatch: string };

/**
 * Merges rows of a batch and its re-runs (in start order): per item the latest
 * good result (succeeded or approved), else the latest row.
 */
export function mergeRows(batches: readonly { batchId: string; rows: readonly ResultRecord[] }[]): MergedRecord[] {
  const chosen = new Map<string, MergedRecord>();
  for (const b of batches) {
    for (const r of b.rows) {
      const prev = chosen.get(r.itemId);
      const good = GOOD.includes(r.status);
      if (!prev || good || !GOOD.includes(prev.status)) chosen.set(r.itemId, { ...r, fromBatch: b.batchId });
    }
  }
  return [...chosen.values()].sort((a, b) => (a.itemId < b.itemId ? -1 : a.itemId > b.itemId ? 1 : 0));
}

/** The original and its re-runs, oldest first. */
export async function lineage(client: Client, batchId: string): Promise<string[]> {
  const reruns: { id: string; at: number }[] = [];
  const escaped = batchId.replace(/\\/g, '\\\\').replace(/"/g, '\\"');
  for await (const w of client.workflow.list({ query: `WorkflowType = 'batchPipeline' AND ParentBatch = "${escaped}"` })) {
    reruns.push({ id: w.workflowId, at: w.startTime.getTime() });
  }
  return [batchId, ...[...new Set(reruns.sort((a, b) => a.at - b.at).map((r) => r.id))].filter((id) => id !== batchId)];
}

/** Rows of `batchId` merged with all its re-runs. */
export async function mergedRows(client: Client, config: Config, batchId: string): Promise<{ rows: MergedRecord[]; batches: string[] }> {
  const batches = await lineage(client, batchId);
  const s = await openResultStore(config);
  try {
    const all = [];
    for (const b of batches) all.push({ batchId: b, rows: await allRows(s, b) });
    return { rows: mergeRows(all), batches };
  } finally {
    await s.close();
  }
}
