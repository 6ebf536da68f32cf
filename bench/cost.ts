/**
 * The `cost` part of `npm run bench`: one workload (the ticket-triage items) run in
 * each mode of {@link COST_MODES}, one after the other on the same worker and
 * provider, and reported side by side: USD per 1,000 items, wall time, provider
 * calls and cache hits.
 *
 * A mode is one entry: how it changes the workload's pipeline, and whether it
 * exists on this code. Items carry a prefix of their own per bench run, so the
 * first cached mode starts from a cold cache and the re-run finds every answer.
 */
import { ProviderSpec } from '../src/shared/spec.ts';
import type { PipelineSpecInput, ProviderSpecInput } from '../src/shared/spec.ts';
import type { BatchSummary } from '../src/shared/types.ts';

/** One way of running the workload. */
export interface CostMode {
  name: string;
  /** What the row says. */
  label: string;
  /** Null when this code cannot run the mode (the reason is reported instead). */
  unavailable(): string | null;
  /** The pipeline of this mode, from the workload's and its number of items. */
  pipeline(base: PipelineSpecInput, items: number): PipelineSpecInput;
  /** Run on the items of this mode under a new batch id (a re-run), not on fresh items. */
  rerunOf?: string;
}

const withTier = (base: PipelineSpecInput, change: Partial<ProviderSpecInput> & Record<string, unknown>): PipelineSpecInput => ({
  ...base,
  providers: base.providers.map((p, i) => (i === 0 ? { ...p, ...change } : p)),
});

/** True when the spec schema knows a tier field (a mode another branch adds). */
function tierHasField(name: string): boolean {
  return name in ProviderSpec.shape;
}

/**
 * The modes, in the order they run. The Batch-API row runs when the tier schema has
 * `mode` (`mode: batch` tiers); without it the row says so and the other rows still run.
 */
export const COST_MODES: readonly CostMode[] = [
  { name: 'sync', label: 'synchronous, no cache', unavailable: () => null, pipeline: (b) => b },
  { name: 'syncCached', label: 'synchronous, cache on (cold: every lookup misses)', unavailable: () => null, pipeline: (b) => ({ ...b, cache: { enabled: true } }) },
  {
    name: 'batchApi',
    label: 'provider Batch API (mode: batch)',
    unavailable: () => (tierHasField('mode') ? null : 'no `mode` tier field in the spec schema on this code (provider Batch API mode not merged)'),
    // Every item in flight (up to the spec's 500), so one provider batch carries them; a short
    // grouping window and poll interval, because the fault-injecting provider ends a batch in 200 ms.
    pipeline: (b, n) => ({
      ...withTier(b, { mode: 'batch', batch: { window: '2s', pollInterval: '2s' } }),
      batch: { ...b.batch, concurrency: Math.min(500, Math.max(n, b.batch?.concurrency ?? 1)) },
    }),
  },
  {
    name: 'cachedRerun',
    label: 'cached re-run (same items, new batch id, cache on)',
    unavailable: () => null,
    pipeline: (b) => ({ ...b, cache: { enabled: true } }),
    rerunOf: 'syncCached',
  },
];

/** One mode's figures. */
export interface CostRow {
  mode: string;
  label: string;
  items: number;
  /** Why the mode did not run; the figures are absent then. */
  unavailable?: string;
  batchId?: string;
  wallMs?: number;
  costUsd?: number;
  costPer1kItemsUsd?: number;
  providerCalls?: number;
  cacheHits?: number;
  succeeded?: number;
  summary?: BatchSummary;
}

/** What the part needs from the bench runner. */
export interface CostRig {
  /** Runs one batch to its end; wall time from start to result. */
  runBatch(batchId: string, pipeline: PipelineSpecInput, prefix: string): Promise<{ wallMs: number; summary: BatchSummary }>;
  /** Provider requests so far. */
  providerCalls(): Promise<number>;
  nextId(what: string): string;
  log(msg: string): void;
}

/** Runs every mode on `n` items and returns their rows, in order. */
export async function runCostModes(rig: CostRig, base: PipelineSpecInput, n: number, modes: readonly CostMode[] = COST_MODES): Promise<CostRow[]> {
  const rows: CostRow[] = [];
  const prefixes: Record<string, string> = {};
  for (const [i, m] of modes.entries()) {
    const why = m.unavailable();
    if (why) {
      rig.log(`cost: ${m.name}: skipped: ${why}`);
      rows.push({ mode: m.name, label: m.label, items: n, unavailable: why });
      continue;
    }
    const prefix = (m.rerunOf && prefixes[m.rerunOf]) || `c${i}${Date.now().toString(36)}-`;
    prefixes[m.name] = prefix;
    const batchId = rig.nextId(`cost-${m.name}`);
    const calls0 = await rig.providerCalls();
    const { wallMs, summary } = await rig.runBatch(batchId, m.pipeline(base, n), prefix);
    const calls = (await rig.providerCalls()) - calls0;
    const row: CostRow = {
      mode: m.name,
      label: m.label,
      items: n,
      batchId,
      wallMs,
      costUsd: summary.costUsd,
      costPer1kItemsUsd: (summary.costUsd / Math.max(1, summary.total)) * 1000,
      providerCalls: calls,
      cacheHits: summary.cacheHits ?? 0,
      succeeded: summary.succeeded,
      summary,
    };
    rig.log(
      `cost: ${m.name}: ${summary.succeeded}/${n} ok in ${(wallMs / 1000).toFixed(1)} s, $${summary.costUsd.toFixed(6)}, ${calls} provider calls, ${row.cacheHits} cache hits`,
    );
    rows.push(row);
  }
  return rows;
}
