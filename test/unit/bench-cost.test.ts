/**
 * The cost bench's modes: each runs on its own fresh items except the cached re-run,
 * which reuses the items of the cached synchronous mode under a new batch id; a mode
 * this code cannot run is reported with its reason, the others still run.
 */
import { describe, expect, it } from 'vitest';
import { COST_MODES, runCostModes } from '../../bench/cost.ts';
import type { CostMode } from '../../bench/cost.ts';
import type { PipelineSpecInput } from '../../src/shared/spec.ts';
import type { BatchSummary } from '../../src/shared/types.ts';

const base: PipelineSpecInput = { prompt: { template: 'x {{id}}' }, providers: [{ kind: 'openai', model: 'm' }] };

function rig() {
  const runs: { batchId: string; pipeline: PipelineSpecInput; prefix: string }[] = [];
  let calls = 0;
  return {
    runs,
    rig: {
      async runBatch(batchId: string, pipeline: PipelineSpecInput, prefix: string) {
        runs.push({ batchId, pipeline, prefix });
        const hits = pipeline.cache && runs.some((r) => r !== runs.at(-1) && r.prefix === prefix && r.pipeline.cache) ? 10 : 0;
        calls += 10 - hits;
        const summary = { total: 10, succeeded: 10, costUsd: hits ? 0 : 0.002, cacheHits: hits } as BatchSummary;
        return { wallMs: hits ? 100 : 1000, summary };
      },
      providerCalls: async () => calls,
      nextId: (w: string) => `${w}-${runs.length}`,
      log: () => undefined,
    },
  };
}

describe('bench cost modes', () => {
  it('runs sync, cached, Batch API and the cached re-run on the cached mode items; a mode this code lacks is reported, not run', async () => {
    const r = rig();
    const lacking: CostMode = { name: 'future', label: 'future', unavailable: () => 'not on this code', pipeline: (b) => b };
    const modes = [...COST_MODES.slice(0, 3), lacking, COST_MODES[3]!];
    const rows = await runCostModes(r.rig, base, 10, modes);
    expect(rows.map((x) => x.mode)).toEqual(['sync', 'syncCached', 'batchApi', 'future', 'cachedRerun']);
    // The tier schema has mode (provider Batch API mode is merged): its row runs.
    expect(rows[2]!.unavailable).toBeUndefined();
    expect(rows[3]).toMatchObject({ unavailable: 'not on this code' });
    expect(r.runs).toHaveLength(4);
    expect(r.runs[3]!.prefix).toBe(r.runs[1]!.prefix);
    expect(r.runs[2]!.prefix).not.toBe(r.runs[1]!.prefix);
    expect(r.runs[0]!.prefix).not.toBe(r.runs[1]!.prefix);
    expect(rows[4]).toMatchObject({ costUsd: 0, costPer1kItemsUsd: 0, providerCalls: 0, cacheHits: 10 });
    expect(rows[0]).toMatchObject({ costPer1kItemsUsd: 0.2, providerCalls: 10 });
  });

  it('a Batch API entry runs once it is available, with mode batch on the first tier and no cache', async () => {
    const batch = COST_MODES.find((m) => m.name === 'batchApi')!;
    const available: CostMode = { ...batch, unavailable: () => null };
    const r = rig();
    const rows = await runCostModes(r.rig, base, 10, [available]);
    expect(rows[0]!.unavailable).toBeUndefined();
    expect(r.runs[0]!.pipeline.providers[0]).toMatchObject({ mode: 'batch', batch: { pollInterval: '2s' } });
    expect(r.runs[0]!.pipeline.batch?.concurrency).toBe(10);
    expect(r.runs[0]!.pipeline.cache).toBeUndefined();
  });
});
