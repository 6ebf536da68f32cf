/**
 * Determinism guard: committed histories of released workflow code must replay
 * against the current code. A change that alters the commands a workflow issues
 * (without `patched()`) fails here, before it breaks running batches.
 * Record new histories with `node scripts/record-histories.ts` when a workflow
 * version is released.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils.js';
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import { describe, expect, inject, it } from 'vitest';

const DIR = join(import.meta.dirname, 'histories');
const histories = readdirSync(DIR)
  .filter((f) => f.endsWith('.json'))
  .map((f) => ({ workflowId: f, history: historyFromJSON(JSON.parse(readFileSync(join(DIR, f), 'utf8'))) }));

async function replayAll(workflowBundle: { code: string } | { codePath: string }) {
  const errors: Record<string, string | undefined> = {};
  for await (const r of Worker.runReplayHistories({ workflowBundle }, histories)) errors[r.workflowId] = r.error?.message;
  return errors;
}

describe('replay', () => {
  it('has committed histories of both workflows', () => {
    expect(histories.map((h) => h.workflowId)).toEqual(expect.arrayContaining([expect.stringMatching(/^batch-/), expect.stringMatching(/^item-/)]));
  });

  it('replays every committed history against the current workflows', async () => {
    const errors = await replayAll({ codePath: inject('workflowBundlePath') });
    expect(errors).toEqual(Object.fromEntries(histories.map((h) => [h.workflowId, undefined])));
  });

  it('fails when the workflow code diverges from a history', async () => {
    const { code } = await bundleWorkflowCode({
      workflowsPath: join(import.meta.dirname, 'divergent', 'index.ts'),
      logger: { info() {}, warn() {}, error() {}, debug() {}, trace() {}, log() {} },
    });
    const errors = await replayAll({ code });
    for (const h of histories) expect(errors[h.workflowId], h.workflowId).toMatch(/[Nn]ondeterminism|[Dd]eterminism/);
  });
});
