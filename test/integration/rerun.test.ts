/**
 * Re-runs: a batch whose two items were skipped after review; `steadfast rerun`
 * with a fixed prompt starts a batch of just those two, linked by ParentBatch;
 * `steadfast export --merged` gives one clean output over both, row by row.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCsv } from '../../src/client/cli/csv.ts';
import { mergeRows } from '../../src/client/cli/rerun.ts';
import type { PipelineSpecInput } from '../../src/shared/spec.ts';
import type { BatchSummary, ResultRecord } from '../../src/shared/types.ts';
import { harnessEnv, runCli } from '../support/cli.ts';
import { createHarness } from '../support/harness.ts';
import type { Harness } from '../support/harness.ts';

const spec: PipelineSpecInput = {
  name: 'rerun',
  prompt: { template: 'Ticket {{id}}: {{text}}' },
  providers: [{ name: 'primary', kind: 'openai', model: 'gpt-4o-mini', timeout: '5s' }],
  retry: { maxAttempts: 1, initialInterval: '10ms' },
  review: { timeout: '1s', defaultDecision: 'skip' },
};

describe('rerun and merged export', () => {
  let h: Harness;
  let dir: string;
  beforeAll(async () => {
    h = await createHarness();
    dir = mkdtempSync(join(tmpdir(), 'steadfast-rerun-'));
  });
  afterAll(async () => {
    await h?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const cli = (...args: string[]) => runCli(args, harnessEnv(h), dir);

  it('re-runs the items that did not succeed with a fixed prompt, and merges the results', async () => {
    const items = [
      { id: 'a', text: 'fine' },
      { id: 'b', text: 'bad prompt [[fault:auth]]' },
      { id: 'c', text: 'fine' },
      { id: 'd', text: 'bad prompt [[fault:auth]]' },
    ];
    await h.run(async () => {
      const first = (await (await h.startBatch({ pipeline: spec, items }, 'rr')).result()) as BatchSummary;
      expect(first).toMatchObject({ succeeded: 2, skipped: 2 });

      const fixed = join(dir, 'fixed.json');
      writeFileSync(fixed, JSON.stringify({ ...spec, prompt: { template: 'Ticket {{id}}' } }));
      const bad = await cli('rerun', 'rr', '--failed', '--skipped');
      expect(bad.code).toBe(2);
      const r = await cli('rerun', 'rr', '--pipeline', fixed, '--batch-id', 'rr-fix');
      expect(r.stderr).toBe('');
      expect(r.stdout).toContain('batch rr-fix started: re-runs 2 items of rr (ParentBatch=rr)');
      const second = (await h.client.workflow.getHandle('rr-fix').result()) as BatchSummary;
      expect(second).toMatchObject({ total: 2, succeeded: 2 });
    });
    expect((await h.store.list('rr-fix', {})).map((x) => x.itemId)).toEqual(['b', 'd']);

    // Visibility is eventually consistent: the re-run shows up under ParentBatch within moments.
    let out = '';
    for (let i = 0; i < 50; i++) {
      const e = await cli('export', 'rr', '--merged', '--format', 'csv');
      expect(e.code).toBe(0);
      out = e.stdout;
      if (e.stderr.includes('merged 2 batches')) break;
      await new Promise((res) => setTimeout(res, 200));
    }
    const [header, ...rows] = parseCsv(out).records.map((r) => r.fields);
    const col = (name: string) => header!.indexOf(name);
    expect(rows.map((x) => [x[col('itemId')], x[col('status')], x[col('fromBatch')]])).toEqual([
      ['a', 'succeeded', 'rr'],
      ['b', 'succeeded', 'rr-fix'],
      ['c', 'succeeded', 'rr'],
      ['d', 'succeeded', 'rr-fix'],
    ]);
  });

  it('keeps a good result over a later failure, and the latest row when none is good', () => {
    const row = (itemId: string, status: ResultRecord['status'], batchId: string) => ({ itemId, status, batchId }) as ResultRecord;
    const merged = mergeRows([
      { batchId: 'b', rows: [row('x', 'succeeded', 'b'), row('y', 'skipped', 'b')] },
      { batchId: 'b-1', rows: [row('x', 'skipped', 'b-1'), row('y', 'cancelled', 'b-1')] },
    ]);
    expect(merged.map((m) => [m.itemId, m.status, m.fromBatch])).toEqual([
      ['x', 'succeeded', 'b'],
      ['y', 'cancelled', 'b-1'],
    ]);
  });
});
