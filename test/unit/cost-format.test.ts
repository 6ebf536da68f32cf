/**
 * The CLI shows a batch's spend against its budget (progress line and table) and
 * the cache hits and budget in the summary.
 */
import { describe, expect, it } from 'vitest';
import { progressCounts, progressTable, summaryTable } from '../../src/client/cli/format.ts';
import type { Progress } from '../../src/shared/messages.ts';
import type { BatchSummary } from '../../src/shared/types.ts';

const progress: Progress = {
  batchId: 'b',
  total: 10,
  started: 6,
  running: 0,
  awaitingReviewCount: 0,
  awaitingByType: {},
  queued: 4,
  waitingOnReviews: false,
  succeeded: 6,
  failed: 0,
  skipped: 0,
  approved: 0,
  awaitingReview: [],
  ratePerMinute: 12,
  etaSeconds: 20,
  paused: true,
  pausedReason: 'budget reached: $0.0600 of $0.0650; raise it: steadfast resume b --budget <usd>',
  circuits: {},
  runs: 1,
  budget: { maxCostUsd: 0.065, spentUsd: 0.06, reservedUsd: 0, state: 'paused', skipped: 0 },
};

describe('cost in the CLI', () => {
  it('progress shows spent of budget and the budget pause', () => {
    expect(progressCounts(progress)).toContain('spent $0.0600 of $0.0650 | PAUSED: budget reached');
    expect(progressTable(progress)).toMatch(/budget\s+\$0\.0600 spent of \$0\.0650, \$0\.0000 in flight \(paused\)/);
    const { budget: _b, ...none } = progress;
    expect(progressCounts({ ...none, paused: false, pausedReason: null })).not.toContain('spent');
  });

  it('the summary names cache hits and a budget stop', () => {
    const s = {
      batchId: 'b',
      total: 10,
      succeeded: 4,
      failed: 0,
      skipped: 6,
      approved: 0,
      retried: 0,
      successRate: 0.4,
      attempts: 2,
      inputTokens: 1,
      outputTokens: 1,
      costUsd: 0.04,
      truncated: 0,
      tierUse: {},
      endpoints: {},
      simulated: 0,
      cacheHits: 2,
      startedAt: '2026-01-01T00:00:00Z',
      finishedAt: '2026-01-01T00:00:10Z',
      status: 'stopped',
      budget: { maxCostUsd: 0.045, spentUsd: 0.04, reservedUsd: 0, state: 'stopped', skipped: 6 },
    } satisfies BatchSummary;
    const t = summaryTable(s);
    expect(t).toMatch(/cache hits\s+2 calls answered by the response cache/);
    expect(t).toMatch(/budget\s+\$0\.0450 \(stopped; 6 items not started, skipped\)/);
    expect(summaryTable({ ...s, cacheHits: 0 })).not.toContain('cache hits');
  });
});
