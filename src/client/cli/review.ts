/**
 * `steadfast review list|approve|retry|skip`: the review queue and the human
 * decisions on it. Decisions go by the batch's `reviewItem` Update, whose
 * validator accepts or rejects synchronously, so a typo'd item id or an output
 * that misses the schema is an error now rather than a log line later;
 * `--signal` sends the fire-and-forget `review` signal instead.
 */
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import type { Client } from '@temporalio/client';
import type { Config } from '../../common/config.ts';
import { resumeSignal, reviewManyUpdate, reviewSignal, reviewUpdate, setBudgetUpdate } from '../../shared/messages.ts';
import type { BatchReviewDecision, BulkReviewDecision, BulkReviewResult, PendingReview, ReviewDecision, ReviewFilter } from '../../shared/messages.ts';
import { PROG, describeBatchOnly, rootCause, withDeadline } from './context.ts';
import type { Io } from './context.ts';
import { ExitCode, failure, messageOf, usageError } from './errors.ts';
import { reviewTable } from './format.ts';
import { queryReviewQueue } from './status.ts';

/** The `review list` command. */
export async function reviewListCommand(client: Client, config: Config, batchId: string, opts: { json?: boolean }, io: Io): Promise<ExitCode> {
  const { handle, desc } = await describeBatchOnly(client, config, batchId);
  let pending: PendingReview[] = [];
  if (desc.status.name === 'RUNNING') pending = await queryReviewQueue(client, handle, config);
  if (opts.json) {
    io.out(`${JSON.stringify(pending, null, 2)}\n`);
    return ExitCode.Ok;
  }
  if (desc.status.name !== 'RUNNING') {
    io.out(`batch ${batchId} is ${desc.status.name.toLowerCase()}: nothing awaits review (dead-letter list: ${PROG} export ${batchId} --format csv --failed)\n`);
    return ExitCode.Ok;
  }
  if (pending.length === 0) {
    io.out(`nothing awaits review in batch ${batchId}\n`);
    return ExitCode.Ok;
  }
  io.out(`${reviewTable(pending, Date.now(), Math.max(30, io.columns() - 50))}\n\n`);
  io.out(`${pending.length} item${pending.length === 1 ? '' : 's'} awaiting review. Decide with:\n`);
  io.out(`  ${PROG} review approve ${batchId} <itemId> [--output output.json]\n`);
  io.out(`  ${PROG} review retry ${batchId} <itemId> [--input fields.json] [--provider <tier>]\n`);
  io.out(`  ${PROG} review skip ${batchId} <itemId>\n`);
  io.out(`  ${PROG} review skip ${batchId} --all [--error-type <type>] [--since 2h]   (every matching item at once)\n`);
  return ExitCode.Ok;
}

export interface DecisionOptions {
  /** approve: file with the output to accept (`.json` is parsed, anything else is text). */
  output?: string;
  /** retry: JSON file with fields that replace the item's. */
  input?: string;
  /** retry: the tier (name or index) to start from. */
  provider?: string;
  note?: string;
  /** Send the `review` signal (fire-and-forget) instead of the Update. */
  signal?: boolean;
  /** Seconds to wait for the workflow to accept or reject. @default 30 */
  timeout?: number;
}

async function readOutput(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw usageError(`--output ${file}: cannot read the file (${(err as NodeJS.ErrnoException).code ?? messageOf(err)})`);
  }
  if (extname(file).toLowerCase() !== '.json') return text;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw usageError(`--output ${file}: not valid JSON: ${messageOf(err)}`);
  }
}

async function readInput(file: string): Promise<Record<string, unknown>> {
  let value: unknown;
  try {
    value = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw usageError(`--input ${file}: ${code ? `cannot read the file (${code})` : `not valid JSON: ${messageOf(err)}`}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw usageError(`--input ${file}: must hold a JSON object of fields, e.g. {"text": "..."}`);
  if ('id' in value) throw usageError(`--input ${file}: "id" cannot be changed; leave it out`);
  return value as Record<string, unknown>;
}

/** Builds the decision from the flags, reading any files; a bad file is a usage error. */
export async function buildDecision(itemId: string, decision: ReviewDecision['decision'], opts: DecisionOptions): Promise<BatchReviewDecision> {
  const d: BatchReviewDecision = { itemId, decision };
  if (opts.output !== undefined) d.output = await readOutput(opts.output);
  if (opts.input !== undefined) d.input = await readInput(opts.input);
  if (opts.provider !== undefined) d.provider = opts.provider;
  if (opts.note !== undefined) d.note = opts.note;
  return d;
}

const DONE: Record<ReviewDecision['decision'], string> = {
  approve: 'approved',
  retry: 'sent back to run again',
  skip: 'skipped',
};

/** `review approve|retry|skip`: 0 accepted, 1 rejected or not delivered, 2 bad flags or files. */
export async function reviewDecisionCommand(
  client: Client,
  config: Config,
  batchId: string,
  itemId: string,
  decision: ReviewDecision['decision'],
  opts: DecisionOptions,
  io: Io,
): Promise<ExitCode> {
  const d = await buildDecision(itemId, decision, opts);
  const { handle, desc } = await describeBatchOnly(client, config, batchId);
  if (desc.status.name !== 'RUNNING') throw failure(`batch ${batchId} is ${desc.status.name.toLowerCase()}: it takes no more review decisions`);
  if (opts.signal) {
    await handle.signal(reviewSignal, d);
    io.out(
      `review signal sent: ${decision} item ${itemId} of batch ${batchId} (not confirmed: a signal for an item that is not awaiting review is logged and ignored; check with: ${PROG} review list ${batchId})\n`,
    );
    return ExitCode.Ok;
  }
  const seconds = opts.timeout ?? 30;
  try {
    await withDeadline(client, seconds * 1_000, () => handle.executeUpdate(reviewUpdate, { args: [d] }));
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError) {
      throw failure(`review rejected: ${rootCause(err).message}`);
    }
    if (err instanceof WorkflowNotFoundError) throw failure(`batch ${batchId} is no longer running: it takes no more review decisions`);
    throw failure(
      `no answer from batch ${batchId} within ${seconds}s (${messageOf(err)}); is a worker running on task queue ${config.taskQueue}? The decision may not have been applied: check with ${PROG} review list ${batchId}`,
    );
  }
  io.out(`item ${itemId} of batch ${batchId} ${DONE[decision]}${d.note ? ` (note: ${d.note})` : ''}\n`);
  return ExitCode.Ok;
}

/** Flags of a bulk decision. */
export interface BulkOptions {
  all?: boolean;
  errorType?: string;
  since?: string;
  /** Multi-step pipelines: only items waiting at this step. */
  step?: string;
}

const AGE = /^(\d+(?:\.\d+)?)(s|m|h|d)$/;
const AGE_MS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** `--since 2h` (waiting at least two hours) or an ISO time: the latest `since` a matching item may have. */
export function sinceToIso(value: string, nowMs: number): string {
  const m = AGE.exec(value.trim());
  if (m) return new Date(nowMs - Number(m[1]) * AGE_MS[m[2] as keyof typeof AGE_MS]).toISOString();
  const t = Date.parse(value);
  if (Number.isNaN(t)) throw usageError(`--since ${value}: give an age like 30m, 2h, 1d or an ISO time like 2026-12-01T09:00:00Z`);
  return new Date(t).toISOString();
}

/** `review approve|retry|skip <batch> --all [--error-type T] [--since D]`: one Update, a count of what changed. */
export async function reviewBulkCommand(
  client: Client,
  config: Config,
  batchId: string,
  decision: ReviewDecision['decision'],
  opts: DecisionOptions & BulkOptions,
  io: Io,
): Promise<ExitCode> {
  if (opts.signal) throw usageError('--all goes through the reviewMany Update; --signal does not apply (for a signal per item use the Temporal CLI with --query, see docs/cli.md)');
  const single = await buildDecision('-', decision, opts);
  const { itemId: _unused, ...rest } = single;
  const filter: ReviewFilter = {};
  if (opts.errorType !== undefined) filter.errorType = opts.errorType;
  if (opts.since !== undefined) filter.since = sinceToIso(opts.since, Date.now());
  if (opts.step !== undefined) filter.step = opts.step;
  const d: BulkReviewDecision = { ...rest, filter };
  const { handle, desc } = await describeBatchOnly(client, config, batchId);
  if (desc.status.name !== 'RUNNING') throw failure(`batch ${batchId} is ${desc.status.name.toLowerCase()}: it takes no more review decisions`);
  const seconds = opts.timeout ?? 30;
  let r: BulkReviewResult;
  try {
    r = await withDeadline(client, seconds * 1_000, () => handle.executeUpdate(reviewManyUpdate, { args: [d] }));
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError) throw failure(`review rejected: ${rootCause(err).message}`);
    throw failure(`no answer from batch ${batchId} within ${seconds}s (${messageOf(err)}); check with ${PROG} review list ${batchId}`);
  }
  const what = [
    filter.errorType ? `error type ${filter.errorType}` : '',
    filter.since ? `waiting since ${filter.since} or earlier` : '',
    filter.step ? `at step ${filter.step}` : '',
  ]
    .filter(Boolean)
    .join(', ');
  io.out(`${r.decided} item${r.decided === 1 ? '' : 's'} of batch ${batchId} ${DONE[decision]}${what ? ` (${what})` : ''}; ${r.remaining} still awaiting review\n`);
  return ExitCode.Ok;
}

/** `resume <batchId>`: resumes a batch paused after too many consecutive failures. */
/**
 * `steadfast resume <batch> [--budget <usd>]`: without `--budget` the `resume` signal (a pause after
 * too many consecutive failures); with it the `setBudget` Update, which raises the budget (rejecting
 * a lower or invalid value) and resumes a batch paused at its budget.
 */
export async function resumeCommand(client: Client, config: Config, batchId: string, io: Io, opts: { budget?: string } = {}): Promise<ExitCode> {
  let maxCostUsd: number | undefined;
  if (opts.budget !== undefined) {
    maxCostUsd = Number(opts.budget.trim().replace(/^\$/, ''));
    if (!opts.budget.trim() || !Number.isFinite(maxCostUsd) || maxCostUsd <= 0) throw usageError(`--budget ${opts.budget}: a positive number of USD, e.g. --budget 12.5`);
  }
  const { handle, desc } = await describeBatchOnly(client, config, batchId);
  if (desc.status.name !== 'RUNNING') throw failure(`batch ${batchId} is ${desc.status.name.toLowerCase()}, not running`);
  if (maxCostUsd !== undefined) {
    let b;
    try {
      b = await withDeadline(client, 30_000, () => handle.executeUpdate(setBudgetUpdate, { args: [{ maxCostUsd: maxCostUsd! }] }));
    } catch (err) {
      if (err instanceof WorkflowUpdateFailedError) throw failure(`budget rejected: ${rootCause(err).message}`);
      throw failure(`no answer from batch ${batchId} within 30s (${messageOf(err)}); is a worker running on task queue ${config.taskQueue}?`);
    }
    io.out(
      `budget of batch ${batchId} is now $${b.maxCostUsd.toFixed(2)} ($${b.spentUsd.toFixed(4)} spent, $${b.reservedUsd.toFixed(4)} in flight); ${b.state === 'ok' ? 'dispatch goes on' : b.state}\n`,
    );
    return ExitCode.Ok;
  }
  await handle.signal(resumeSignal);
  io.out(`resume sent to batch ${batchId}\n`);
  return ExitCode.Ok;
}
