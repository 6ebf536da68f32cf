/**
 * Text the CLI prints: the progress bar and its plain-text twin, the batch
 * summary, and small aligned tables. Pure functions, so tests pin the output.
 */
import type { BatchSummary } from '../../shared/types.ts';
import type { PendingReview, Progress } from '../../shared/messages.ts';

/** Items finished one way or another. */
export function doneCount(p: Progress): number {
  return p.succeeded + p.failed + p.skipped + p.approved;
}

/** `45s`, `4m10s`, `2h05m`, `3d04h`; `?` when unknown. */
export function formatDuration(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3_600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  if (s < 86_400) return `${Math.floor(s / 3_600)}h${String(Math.floor((s % 3_600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86_400)}d${String(Math.floor((s % 86_400) / 3_600)).padStart(2, '0')}h`;
}

/** How long ago an ISO time was, e.g. `4m10s ago`. */
export function formatAge(iso: string, nowMs: number): string {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return iso;
  return `${formatDuration(Math.max(0, (nowMs - t) / 1_000))} ago`;
}

/** Items awaiting review. */
export function awaitingCount(p: Progress): number {
  return p.awaitingReviewCount;
}

/** `AuthFailed 2, InvalidItem 1`: the review queue by error type, largest first. */
export function byTypeText(p: Progress): string {
  return Object.entries(p.awaitingByType)
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([t, n]) => `${t} ${n}`)
    .join(', ');
}

/**
 * The counters after the bar: `45/100 45% | ok 40 | failed 3 | review 2 | running 8 | 12.3/min | ETA 4m10s`;
 * when only reviews are left: `37/40 92% | ok 37 | failed 0 | waiting for 3 reviews (AuthFailed 2, InvalidItem 1)`.
 */
export function progressCounts(p: Progress): string {
  const done = doneCount(p);
  const total = p.total === null ? '?' : String(p.total);
  const pct = p.total ? ` ${Math.floor((done / p.total) * 100)}%` : '';
  const awaiting = awaitingCount(p);
  const head = [`${done}/${total}${pct}`, `ok ${p.succeeded + p.approved}`, `failed ${p.failed}`, ...(p.skipped > 0 ? [`skipped ${p.skipped}`] : [])];
  const parts = p.waitingOnReviews
    ? [...head, `waiting for ${awaiting} review${awaiting === 1 ? '' : 's'} (${byTypeText(p)})`]
    : [...head, `review ${awaiting}`, `running ${p.running}`, `${p.ratePerMinute}/min`, `ETA ${formatDuration(p.etaSeconds)}`];
  const steps = stepsText(p);
  if (steps !== null && !p.waitingOnReviews) parts.push(`steps: ${steps}`);
  if (p.budget) parts.push(`spent ${usd(p.budget.spentUsd)} of ${usd(p.budget.maxCostUsd)}`);
  if (p.paused) parts.push(`PAUSED${p.pausedReason ? `: ${p.pausedReason}` : ''}`);
  return parts.join(' | ');
}

/** A bar of `width` cells; unknown totals (a source still being read) show an empty bar. */
export function bar(done: number, total: number | null, width: number): string {
  const w = Math.max(width, 1);
  const filled = total ? Math.min(w, Math.floor((done / total) * w)) : 0;
  return `[${'#'.repeat(filled)}${'-'.repeat(w - filled)}]`;
}

/** One TTY line: the bar sized so the whole line fits in `columns`. */
export function progressBarLine(p: Progress, columns: number): string {
  const counts = progressCounts(p);
  const width = Math.min(30, columns - counts.length - 3);
  if (width < 10) return counts.slice(0, Math.max(columns - 1, 10));
  return `${bar(doneCount(p), p.total, width)} ${counts}`;
}

/** One plain line for logs and pipes. */
export function progressPlainLine(p: Progress, batchId: string): string {
  return `${batchId}: ${progressCounts(p)}`;
}

/** Rows with aligned columns; the last column is not padded. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const all = [header, ...rows];
  const widths = header.map((_, c) => Math.max(...all.map((r) => (r[c] ?? '').length)));
  return all
    .map((r) =>
      r
        .map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c] ?? 0)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** Two columns: name and value. */
export function keyValues(pairs: readonly (readonly [string, string])[]): string {
  const width = Math.max(...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n');
}

const int = (n: number) => n.toLocaleString('en-US');
/** USD with cents, or four decimals under a dollar (budgets of test batches are small). */
const usd = (n: number) => `$${n.toFixed(Math.abs(n) < 1 ? 4 : 2)}`;

/** The summary of a finished batch as a small table. */
export function summaryTable(s: BatchSummary): string {
  const seconds = (Date.parse(s.finishedAt) - Date.parse(s.startedAt)) / 1_000;
  const tiers = Object.entries(s.tierUse);
  return keyValues([
    ['batch', s.batchId],
    ['status', s.status],
    ['total', int(s.total)],
    ['succeeded', int(s.succeeded)],
    ['approved', int(s.approved)],
    ['failed', int(s.failed)],
    ['skipped', int(s.skipped)],
    ...(s.cancelled !== undefined ? ([['cancelled', int(s.cancelled)]] as [string, string][]) : []),
    ...(s.notStarted !== undefined ? ([['not started', s.notStarted === null ? 'the rest of the source' : int(s.notStarted)]] as [string, string][]) : []),
    ...(s.cancel
      ? ([
          [
            'cancel',
            `${s.cancel.reason}; rows ${s.cancel.rollback === 'none' ? 'kept' : `${s.cancel.rollback === 'mark' ? 'marked rolled_back' : 'deleted'} (${s.cancel.rowsRolledBack})`}`,
          ],
        ] as [string, string][])
      : []),
    ['success rate', `${(s.successRate * 100).toFixed(1)}%`],
    ['attempts', int(s.attempts)],
    ['review retries', int(s.retried ?? 0)],
    ['tokens', `${int(s.inputTokens)} in, ${int(s.outputTokens)} out`],
    ['cost', `$${s.costUsd.toFixed(4)}`],
    ...(s.budget
      ? ([['budget', `${usd(s.budget.maxCostUsd)} (${s.budget.state}${s.budget.skipped ? `; ${int(s.budget.skipped)} items not started, skipped` : ''})`]] as [string, string][])
      : []),
    ...((s.cacheHits ?? 0) > 0 ? [['cache hits', `${int(s.cacheHits ?? 0)} calls answered by the response cache (no provider request, no cost)`] as [string, string]] : []),
    ['truncated', int(s.truncated)],
    ['tier use', tiers.length ? tiers.map(([t, n]) => `${t} ${int(n)}`).join(', ') : '-'],
    [
      'endpoints',
      Object.entries(s.endpoints ?? {})
        .map(([e, n]) => `${e} ${int(n)}`)
        .join(', ') || '-',
    ],
    ...((s.simulated ?? 0) > 0 ? [['simulated', `${int(s.simulated)} answers from the fault-injecting provider`] as [string, string]] : []),
    ['duration', formatDuration(seconds)],
    ...Object.entries(s.steps ?? {}).map(
      ([n, st]) =>
        [
          `step ${n}`,
          `${int(st.succeeded)} ok, ${int(st.approved)} approved, ${int(st.skipped)} skipped, ${int(st.reviewed)} reviewed, ${int(st.failed)} failed; ${int(st.attempts)} attempts, ${int(st.inputTokens)}/${int(st.outputTokens)} tokens, $${st.costUsd.toFixed(4)}, ${int(st.fallbacks)} fallbacks`,
        ] as [string, string],
    ),
  ]);
}

/** A running batch's progress as a small table. */
export function progressTable(p: Progress): string {
  const pairs: [string, string][] = [
    ['batch', p.batchId],
    ['status', p.paused ? `paused${p.pausedReason ? ` (${p.pausedReason})` : ''}` : p.waitingOnReviews ? 'waiting for reviews' : 'running'],
    ['done', `${int(doneCount(p))} of ${p.total === null ? '? (still reading the source)' : int(p.total)}`],
    ['succeeded', int(p.succeeded)],
    ['approved', int(p.approved)],
    ['failed', int(p.failed)],
    ['skipped', int(p.skipped)],
    ['awaiting review', awaitingCount(p) ? `${int(awaitingCount(p))} (${byTypeText(p)})` : '0'],
    ['running', int(p.running)],
    ...(p.steps ? ([['by step', stepsText(p) ?? '']] as [string, string][]) : []),
    ['queued', int(p.queued)],
    ['rate', `${p.ratePerMinute}/min`],
    ['ETA', p.waitingOnReviews ? 'waiting for reviews' : formatDuration(p.etaSeconds)],
    ...(p.budget
      ? ([['budget', `${usd(p.budget.spentUsd)} spent of ${usd(p.budget.maxCostUsd)}, ${usd(p.budget.reservedUsd)} in flight (${p.budget.state})`]] as [string, string][])
      : []),
  ];
  const open = Object.entries(p.circuits).filter(([, c]) => c.state !== 'closed');
  if (open.length) pairs.push(['circuits', open.map(([t, c]) => `${t} ${c.state}${c.openUntil ? ` until ${c.openUntil}` : ''}`).join(', ')]);
  return keyValues(pairs);
}

/** Shortens text to `max` characters on one line. */
export function clip(text: string, max: number): string {
  const one = text.replace(/\s+/g, ' ').trim();
  return one.length <= max ? one : `${one.slice(0, Math.max(max - 3, 1))}...`;
}

/** The review queue as a table: item, error type, waiting since, reason (last, clipped to `reasonWidth`). */
export function reviewTable(pending: readonly PendingReview[], nowMs: number, reasonWidth = 80): string {
  // A multi-step pipeline's items wait at a step: the table names it.
  if (pending.some((r) => r.step !== undefined)) {
    return table(
      ['ITEM', 'STEP', 'ERROR', 'WAITING', 'REASON'],
      pending.map((r) => [r.itemId, r.step ?? '-', r.errorType, formatAge(r.since, nowMs), clip(r.reason, reasonWidth)]),
    );
  }
  return table(
    ['ITEM', 'ERROR', 'WAITING', 'REASON'],
    pending.map((r) => [r.itemId, r.errorType, formatAge(r.since, nowMs), clip(r.reason, reasonWidth)]),
  );
}

/** Multi-step pipelines: `extract 3, classify 2 (review 1), note 0`: items working on each step, and waiting at it. */
export function stepsText(p: Progress): string | null {
  if (!p.steps) return null;
  return Object.entries(p.steps)
    .map(([n, c]) => `${n} ${c.running}${c.awaitingReview ? ` (review ${c.awaitingReview})` : ''}`)
    .join(', ');
}
