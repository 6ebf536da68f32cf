/**
 * Exactly once per (batch, item), whatever the operator does: duplicate ids in
 * a source are reported by line and never hang the batch; a batch id belongs to
 * one batch; a second run of a finished batch id and a reset never run a
 * finished item again nor replace its row.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { temporalCliPath } from '../../src/dev/temporal-tools.ts';
import { FailureType } from '../../src/shared/failures.ts';
import { progressQuery } from '../../src/shared/messages.ts';
import type { BatchInputRaw } from '../../src/shared/spec.ts';
import { createHarness } from '../support/harness.ts';
import type { Harness } from '../support/harness.ts';

const example = JSON.parse(readFileSync('examples/batch.json', 'utf8')) as BatchInputRaw;
/** Items that go to review are skipped at once, so a batch with bad lines finishes by itself. */
const pipeline = { ...example.pipeline, review: { timeout: '1s', defaultDecision: 'skip' } } as BatchInputRaw['pipeline'];
const items = example.items!;
const dir = mkdtempSync(join(tmpdir(), 'sf-once-'));

describe('exactly once per (batch, item)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness();
  });
  afterAll(async () => h?.close());

  it('reports duplicate ids of a source by line; the batch finishes and its counts match its rows', async () => {
    // Line 3 repeats line 1 (its first copy may still run); line 26 repeats line 5 (long finished).
    const lines = items.map((i) => JSON.stringify(i));
    lines.splice(2, 0, JSON.stringify(items[0]));
    lines.push(JSON.stringify({ ...items[4], text: 'a second copy' }));
    const path = join(dir, 'dups.jsonl');
    writeFileSync(path, `${lines.join('\n')}\n`);
    const { summary, early } = await h.run(async () => {
      const handle = await h.startBatch({ pipeline, source: { jsonl: path } }, 'once-dups');
      let first = await handle.query(progressQuery);
      for (let i = 0; i < 100 && first.total === null; i++) first = await handle.query(progressQuery);
      return { summary: await handle.result(), early: first };
    });
    expect(early.total).toBe(26);
    expect(summary).toMatchObject({ total: 26, succeeded: 24, skipped: 2, failed: 0 });
    const rows = await h.store.list('once-dups');
    expect(rows).toHaveLength(26);
    const dupRows = rows.filter((r) => r.itemId.startsWith('line-'));
    expect(dupRows.map((r) => [r.itemId, r.status, r.error?.type, r.error?.message])).toEqual([
      ['line-26', 'skipped', FailureType.InvalidItem, `line 26: duplicate item id "${items[4]!.id}" (first on line 6); this line is not run`],
      ['line-3', 'skipped', FailureType.InvalidItem, `line 3: duplicate item id "${items[0]!.id}" (first on line 1); this line is not run`],
    ]);
    // The first copy's row is untouched.
    const fifth = rows.find((r) => r.itemId === items[4]!.id)!;
    expect(await h.store.writeCount('once-dups', fifth.itemId)).toBe(1);
  });

  it('refuses a batch whose batchId is not its workflow id, with a clear error', async () => {
    const err = await h.run(async () => {
      const handle = await h.client.workflow.start('batchPipeline', {
        taskQueue: h.taskQueue,
        workflowId: 'once-wf-a',
        args: [{ batchId: 'once-shared', pipeline, items: items.slice(0, 2) }],
      });
      return handle.result().then(
        () => null,
        (e: unknown) => e,
      );
    });
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const cause = (err as WorkflowFailedError).cause;
    expect(cause).toBeInstanceOf(ApplicationFailure);
    expect((cause as ApplicationFailure).type).toBe(FailureType.BatchIdConflict);
    expect((cause as ApplicationFailure).nonRetryable).toBe(true);
    expect((cause as ApplicationFailure).message).toMatch(/batch id "once-shared" is not this workflow's id "once-wf-a"/);
    expect(await h.store.count('once-shared')).toBe(0);
  });

  it('a second run of a finished batch id and a reset run no finished item again and keep its row', async () => {
    const input: BatchInputRaw = { pipeline, items: items.slice(0, 6) };
    const { first, second, reset, callsAfterFirst, callsAfterAll } = await h.run(async () => {
      const first = await (await h.startBatch(input, 'once-rerun')).result();
      const callsAfterFirst = h.provider.stats().requests;
      const second = await (await h.startBatch(input, 'once-rerun')).result();
      const cli = temporalCliPath();
      expect(cli).toBeTruthy();
      await promisify(execFile)(cli!, ['workflow', 'reset', '--address', h.address, '--workflow-id', 'once-rerun', '--type', 'FirstWorkflowTask', '--reason', 'test']);
      const reset = await h.client.workflow.getHandle('once-rerun').result();
      return { first, second, reset, callsAfterFirst, callsAfterAll: h.provider.stats().requests };
    });
    expect(first).toMatchObject({ total: 6, succeeded: 6 });
    expect(first.attempts).toBeGreaterThanOrEqual(6);
    for (const s of [second, reset]) expect(s).toMatchObject({ total: 6, succeeded: 6, attempts: 0, costUsd: 0 });
    expect(callsAfterAll).toBe(callsAfterFirst);
    for (const item of items.slice(0, 6)) expect(await h.store.writeCount('once-rerun', item.id)).toBe(1);
  });
});
