/**
 * Watching a batch until it is done: a live progress bar on a terminal, plain
 * periodic lines otherwise (logs, CI), a hint when items wait for review, and
 * the summary at the end. Ctrl-C stops the watching, never the batch.
 */
import type { BatchSummary } from '../../shared/types.ts';
import type { Progress } from '../../shared/messages.ts';
import type { Io } from './context.ts';
import { PROG, rootCause } from './context.ts';
import { ExitCode } from './errors.ts';
import { progressBarLine, progressPlainLine, summaryTable } from './format.ts';

/** What watching needs of a batch; the CLI passes the workflow handle, tests a fake. */
export interface WatchTarget {
  batchId: string;
  /** Resolves with the summary when the batch completes (across continue-as-new); rejects when it fails. */
  result(): Promise<BatchSummary>;
  /** The progress query; rejects when no worker answers in time. */
  progress(): Promise<Progress>;
}

export interface WatchOptions {
  /** Progress poll interval (ms). @default 1000 */
  pollMs?: number;
  /** Minimum time between plain lines when not on a terminal (ms). @default 5000 */
  plainEveryMs?: number;
  /** The task queue, named when no worker answers. */
  taskQueue: string;
  /** Stops the watching early (Ctrl-C); the batch keeps running. */
  signal?: AbortSignal;
}

const CLEAR_LINE = '\r\x1b[2K';

type Outcome = { ok: true; summary: BatchSummary } | { ok: false; error: unknown };

/** Watches until the batch ends; returns the exit code (0 done, 1 failed or stopped, 130 interrupted). */
export async function watchBatch(target: WatchTarget, io: Io, options: WatchOptions): Promise<ExitCode> {
  const { pollMs = 1_000, plainEveryMs = 5_000, taskQueue, signal } = options;
  let ended = false;
  const outcome: Promise<Outcome> = target.result().then(
    (summary) => ((ended = true), { ok: true, summary }),
    (error: unknown) => ((ended = true), { ok: false, error }),
  );
  const interrupted = new Promise<'interrupted'>((resolve) => {
    const stop = () => ((ended = true), resolve('interrupted'));
    if (signal?.aborted) stop();
    signal?.addEventListener('abort', stop, { once: true });
  });
  let barShown = false;
  let hinted = 0;
  let lastPlainAt = 0;
  let lastPlain = '';
  let silentNoted = false;

  // Text above the bar: clear the bar, print, and let the next poll redraw it.
  const note = (text: string) => {
    if (barShown) io.out(CLEAR_LINE);
    barShown = false;
    io.out(`${text}\n`);
  };

  for (;;) {
    const progress = await Promise.race([target.progress().catch(() => null), outcome.then(() => null), interrupted.then(() => null)]);
    if (progress) {
      silentNoted = false;
      const waiting = progress.awaitingReviewCount;
      if (waiting > hinted) note(`${waiting} item${waiting === 1 ? '' : 's'} await${waiting === 1 ? 's' : ''} review: ${PROG} review list ${target.batchId}`);
      hinted = waiting;
      if (io.tty) {
        io.out(`${CLEAR_LINE}${progressBarLine(progress, io.columns())}`);
        barShown = true;
      } else {
        const line = progressPlainLine(progress, target.batchId);
        const now = Date.now();
        if (line !== lastPlain && now - lastPlainAt >= plainEveryMs) {
          io.out(`${line}\n`);
          lastPlain = line;
          lastPlainAt = now;
        }
      }
    } else if (!silentNoted && !ended) {
      note(`waiting for a worker to answer (is one running on task queue ${taskQueue}? start one with: npm run worker)`);
      silentNoted = true;
    }
    const next = await Promise.race([outcome, interrupted, new Promise<null>((r) => setTimeout(() => r(null), pollMs))]);
    if (next === null) continue;
    if (barShown) io.out(`${CLEAR_LINE}`);
    if (next === 'interrupted') {
      io.err(`stopped watching; batch ${target.batchId} keeps running. See it with: ${PROG} status ${target.batchId}\n`);
      return ExitCode.Interrupted;
    }
    return finish(target.batchId, next, io);
  }
}

function finish(batchId: string, o: Outcome, io: Io): ExitCode {
  if (!o.ok) {
    const cause = rootCause(o.error);
    io.err(`batch ${batchId} failed: ${cause.type ? `${cause.type}: ` : ''}${cause.message}\n`);
    return ExitCode.Failed;
  }
  io.out(`${summaryTable(o.summary)}\n`);
  if (o.summary.failed + o.summary.skipped > 0) io.out(`dead-letter list: ${PROG} export ${batchId} --format csv --failed\n`);
  if (o.summary.status === 'stopped' && o.summary.budget?.state === 'stopped') {
    io.err(`batch ${batchId} stopped at its budget: ${o.summary.budget.skipped} items not started are skipped rows; run them with: ${PROG} rerun ${batchId} --skipped\n`);
    return ExitCode.Failed;
  }
  if (o.summary.status === 'stopped') {
    io.err(`batch ${batchId} stopped before every item ran (too many consecutive failures)\n`);
    return ExitCode.Failed;
  }
  return ExitCode.Ok;
}
