import { describe, expect, it } from 'vitest';
import type { Io } from '../../src/client/cli/context.ts';
import { ExitCode } from '../../src/client/cli/errors.ts';
import { bar, formatDuration, progressBarLine, progressCounts, progressTable, reviewTable, summaryTable, table } from '../../src/client/cli/format.ts';
import { watchBatch } from '../../src/client/cli/progress.ts';
import type { BatchSummary } from '../../src/shared/types.ts';
import type { Progress } from '../../src/shared/messages.ts';

function progress(p: Partial<Progress> = {}): Progress {
  return {
    batchId: 'b1',
    total: 100,
    started: 50,
    running: 8,
    awaitingReviewCount: 0,
    awaitingByType: {},
    queued: 42,
    waitingOnReviews: false,
    succeeded: 40,
    failed: 3,
    skipped: 0,
    approved: 2,
    awaitingReview: [],
    ratePerMinute: 12.5,
    etaSeconds: 250,
    paused: false,
    pausedReason: null,
    circuits: {},
    runs: 1,
    ...p,
  };
}

const summary: BatchSummary = {
  batchId: 'b1',
  total: 3,
  succeeded: 2,
  failed: 0,
  skipped: 1,
  approved: 0,
  retried: 0,
  successRate: 0.6667,
  attempts: 5,
  inputTokens: 1234,
  outputTokens: 56,
  costUsd: 0.00123,
  truncated: 1,
  tierUse: { primary: 1, secondary: 1 },
  endpoints: { 'simulated 127.0.0.1:8787': 2 },
  simulated: 2,
  startedAt: '2026-11-24T01:30:00.000Z',
  finishedAt: '2026-11-24T01:31:05.000Z',
  status: 'completed',
};

function fakeIo(tty: boolean): Io & { stdout: string; stderr: string } {
  const io = { stdout: '', stderr: '', tty, out: (t: string) => void (io.stdout += t), err: (t: string) => void (io.stderr += t), columns: () => 120 };
  return io;
}

describe('format', () => {
  it('formats durations', () => {
    expect([formatDuration(5), formatDuration(250), formatDuration(7_500), formatDuration(200_000), formatDuration(null)]).toEqual(['5s', '4m10s', '2h05m', '2d07h', '?']);
  });

  it('draws the bar and counts', () => {
    expect(bar(45, 100, 10)).toBe('[####------]');
    expect(bar(5, null, 4)).toBe('[----]');
    expect(progressCounts(progress({ awaitingReviewCount: 1, awaitingByType: { E: 1 }, awaitingReview: [{ itemId: 'x', errorType: 'E', reason: 'r', since: '' }] }))).toBe(
      '45/100 45% | ok 42 | failed 3 | review 1 | running 8 | 12.5/min | ETA 4m10s',
    );
    expect(progressCounts(progress({ total: null, paused: true, pausedReason: '5 failures in a row' }))).toMatch(/^45\/\? \| .* \| PAUSED: 5 failures in a row$/);
    const line = progressBarLine(progress(), 100);
    expect(line.length).toBeLessThanOrEqual(100);
    expect(line).toMatch(/^\[#+-+\] 45\/100/);
  });

  it('says what it waits for when only reviews are left, instead of a frozen rate and ETA', () => {
    const waiting = progress({
      total: 40,
      succeeded: 37,
      failed: 0,
      approved: 0,
      running: 0,
      queued: 0,
      awaitingReviewCount: 3,
      awaitingByType: { InvalidItem: 1, AuthFailed: 2 },
      waitingOnReviews: true,
      etaSeconds: null,
    });
    expect(progressCounts(waiting)).toBe('37/40 92% | ok 37 | failed 0 | waiting for 3 reviews (AuthFailed 2, InvalidItem 1)');
    expect(progressCounts(waiting)).not.toMatch(/ETA|running|\/min/);
    expect(progressTable(waiting)).toMatch(/status\s+waiting for reviews/);
    expect(progressTable(waiting)).toMatch(/awaiting review\s+3 \(AuthFailed 2, InvalidItem 1\)/);
  });

  it('prints aligned tables and the summary', () => {
    expect(
      table(
        ['A', 'LONGER'],
        [
          ['xx', 'y'],
          ['z', ''],
        ],
      ),
    ).toBe('A   LONGER\nxx  y\nz');
    const s = summaryTable(summary);
    expect(s).toContain('success rate    66.7%');
    expect(s).toContain('tokens          1,234 in, 56 out');
    expect(s).toContain('tier use        primary 1, secondary 1');
    expect(s).toContain('duration        1m05s');
    const r = reviewTable([{ itemId: 'i1', errorType: 'InvalidOutput', reason: 'a\nlong reason', since: '2026-11-24T01:30:00.000Z' }], Date.parse('2026-11-24T01:32:00.000Z'));
    expect(r.split('\n')).toEqual(['ITEM  ERROR          WAITING    REASON', 'i1    InvalidOutput  2m00s ago  a long reason']);
  });
});

describe('watchBatch', () => {
  it('draws a bar on a terminal, hints at review, and prints the summary', async () => {
    const io = fakeIo(true);
    let polls = 0;
    let finish: (s: BatchSummary) => void = () => undefined;
    const result = new Promise<BatchSummary>((r) => (finish = r));
    const code = await watchBatch(
      {
        batchId: 'b1',
        result: () => result,
        progress: async () => {
          polls += 1;
          if (polls === 3) finish(summary);
          return progress(polls >= 2 ? { awaitingReviewCount: 1, awaitingByType: { E: 1 }, awaitingReview: [{ itemId: 'x', errorType: 'E', reason: 'r', since: '' }] } : {});
        },
      },
      io,
      { pollMs: 5, taskQueue: 'q' },
    );
    expect(code).toBe(ExitCode.Ok);
    expect(io.stdout).toContain('\r\x1b[2K[');
    expect(io.stdout.match(/1 item awaits review: steadfast review list b1\n/g)).toHaveLength(1);
    expect(io.stdout).toContain('status          completed');
    expect(io.stdout).toContain('dead-letter list: steadfast export b1 --format csv --failed');
  });

  it('prints plain lines when not a terminal, and names the task queue while no worker answers', async () => {
    const io = fakeIo(false);
    let polls = 0;
    const code = await watchBatch(
      {
        batchId: 'b1',
        result: () => new Promise((r) => setTimeout(() => r(summary), 60)),
        progress: async () => {
          polls += 1;
          if (polls === 1) throw new Error('deadline exceeded');
          return progress();
        },
      },
      io,
      { pollMs: 5, plainEveryMs: 1_000, taskQueue: 'steadfast-q' },
    );
    expect(code).toBe(ExitCode.Ok);
    const lines = io.stdout.split('\n');
    expect(lines[0]).toBe('waiting for a worker to answer (is one running on task queue steadfast-q? start one with: npm run worker)');
    expect(lines[1]).toBe('b1: 45/100 45% | ok 42 | failed 3 | review 0 | running 8 | 12.5/min | ETA 4m10s');
    expect(io.stdout).not.toContain('\x1b');
    expect(io.stdout.match(/^b1: /gm)).toHaveLength(1);
  });

  it('exits 1 with the root cause when the batch fails', async () => {
    const io = fakeIo(false);
    const cause = Object.assign(new Error('invalid batch input: pipeline.providers: at least one provider'), { type: 'InvalidSpec' });
    const code = await watchBatch(
      { batchId: 'b1', result: () => Promise.reject(new Error('Workflow execution failed', { cause })), progress: () => new Promise(() => undefined) },
      io,
      { pollMs: 5, taskQueue: 'q' },
    );
    expect(code).toBe(ExitCode.Failed);
    expect(io.stderr).toBe('batch b1 failed: InvalidSpec: invalid batch input: pipeline.providers: at least one provider\n');
  });

  it('exits 1 when the batch stopped early', async () => {
    const io = fakeIo(false);
    const code = await watchBatch({ batchId: 'b1', result: async () => ({ ...summary, status: 'stopped' }), progress: () => new Promise(() => undefined) }, io, {
      pollMs: 5,
      taskQueue: 'q',
    });
    expect(code).toBe(ExitCode.Failed);
    expect(io.stderr).toContain('stopped before every item ran');
  });

  it('stops watching on abort and leaves the batch running', async () => {
    const io = fakeIo(true);
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 20);
    const code = await watchBatch({ batchId: 'b1', result: () => new Promise(() => undefined), progress: async () => progress() }, io, {
      pollMs: 5,
      taskQueue: 'q',
      signal: abort.signal,
    });
    expect(code).toBe(ExitCode.Interrupted);
    expect(io.stderr).toBe('stopped watching; batch b1 keeps running. See it with: steadfast status b1\n');
  });
});
