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

/**
 * The workflow id the recorded workflow ran under (the code may read it): a batch's is its
 * `batchId`, an item's `<batchId>/<itemId>`, both from the first event's input.
 */
function recordedWorkflowId(json: { events: { workflowExecutionStartedEventAttributes?: { input?: { payloads?: { data?: string }[] } } }[] }, file: string): string {
  const data = json.events[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0]?.data;
  const input = data ? (JSON.parse(Buffer.from(data, 'base64').toString('utf8')) as { batchId?: string; item?: { id: string } }) : {};
  if (input.batchId && input.item) return `${input.batchId}/${input.item.id}`;
  return input.batchId ?? file;
}

const histories = readdirSync(DIR)
  .filter((f) => f.endsWith('.json'))
  .map((f) => {
    const json = JSON.parse(readFileSync(join(DIR, f), 'utf8')) as Parameters<typeof recordedWorkflowId>[0];
    return { file: f, workflowId: recordedWorkflowId(json, f), history: historyFromJSON(json) };
  });

/** Replays every history; errors by file name (histories are replayed in order, one at a time). */
async function replayAll(workflowBundle: { code: string } | { codePath: string }) {
  const errors: Record<string, string | undefined> = {};
  let i = 0;
  for await (const r of Worker.runReplayHistories(
    { workflowBundle },
    histories.map(({ workflowId, history }) => ({ workflowId, history })),
  ))
    errors[histories[i++]!.file] = r.error?.message;
  return errors;
}

describe('replay', () => {
  it('has committed histories of both workflows', () => {
    expect(histories.map((h) => h.file)).toEqual(expect.arrayContaining([expect.stringMatching(/^batch-/), expect.stringMatching(/^item-/)]));
  });

  it('replays every committed history against the current workflows', async () => {
    const errors = await replayAll({ codePath: inject('workflowBundlePath') });
    expect(errors).toEqual(Object.fromEntries(histories.map((h) => [h.file, undefined])));
  });

  it('fails when the workflow code diverges from a history', async () => {
    const { code } = await bundleWorkflowCode({
      workflowsPath: join(import.meta.dirname, 'divergent', 'index.ts'),
      logger: { info() {}, warn() {}, error() {}, debug() {}, trace() {}, log() {} },
    });
    const errors = await replayAll({ code });
    for (const h of histories) expect(errors[h.file], h.file).toMatch(/[Nn]ondeterminism|[Dd]eterminism/);
  });
});
