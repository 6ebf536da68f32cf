/**
 * The walking skeleton end to end on a real Temporal dev server: a batch fans
 * out one `itemPipeline` child per item, each calls the model through the real
 * `openai` client against our provider and upserts exactly one row.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { temporalCliPath } from '../../src/dev/temporal-tools.ts';
import type { BatchInputRaw } from '../../src/shared/spec.ts';
import { createHarness } from '../support/harness.ts';
import type { Harness } from '../support/harness.ts';

const example = JSON.parse(readFileSync('examples/batch.json', 'utf8')) as BatchInputRaw;
const fiveItems: BatchInputRaw = { ...example, items: example.items!.slice(0, 5) };

describe('walking skeleton', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness();
  });
  afterAll(async () => h?.close());

  it('runs a batch: one child per item, one row per item, a summary', async () => {
    const summary = await h.run(async () => {
      const handle = await h.startBatch(fiveItems, 'skeleton-1');
      return handle.result();
    });
    expect(summary).toMatchObject({ batchId: 'skeleton-1', total: 5, succeeded: 5, failed: 0, successRate: 1, status: 'completed' });
    expect(summary.tierUse).toEqual({ primary: 5, secondary: 0, local: 0 });
    expect(summary.inputTokens).toBeGreaterThan(0);

    const rows = await h.store.list('skeleton-1');
    expect(rows.map((r) => r.itemId).sort()).toEqual(['t001', 't002', 't003', 't004', 't005']);
    for (const row of rows) {
      expect(row.status).toBe('succeeded');
      expect(row.provider).toBe('primary');
      expect(row.output).toMatchObject({ category: expect.any(String), urgency: expect.any(Number), summary: expect.any(String) });
    }
    // Each item got an answer derived from its own text.
    expect(new Set(rows.map((r) => JSON.stringify(r.output))).size).toBe(5);

    // An item reports to the batch just before it returns, so it completes a moment after the batch may have.
    const itemHandle = h.client.workflow.getHandle('skeleton-1/t003');
    await itemHandle.result();
    const child = await itemHandle.describe();
    expect(child.type).toBe('itemPipeline');
    expect(child.status.name).toBe('COMPLETED');
  });

  it('fails at once, non-retryable, naming the field, on an invalid spec', async () => {
    const bad = { ...fiveItems, pipeline: { ...fiveItems.pipeline, providers: [{ kind: 'gpt', model: 'x' }] } } as unknown as BatchInputRaw;
    const err = await h.run(async () => {
      const handle = await h.startBatch(bad, 'skeleton-bad');
      return handle.result().then(
        () => null,
        (e: unknown) => e,
      );
    });
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const cause = (err as WorkflowFailedError).cause;
    expect(cause).toBeInstanceOf(ApplicationFailure);
    expect((cause as ApplicationFailure).type).toBe('InvalidSpec');
    expect((cause as ApplicationFailure).nonRetryable).toBe(true);
    expect(cause?.message).toContain('pipeline.providers[0].kind');
    expect(await h.store.count('skeleton-bad')).toBe(0);
  });

  it('starts from the real Temporal CLI with --input-file examples/batch.json', async () => {
    const cli = temporalCliPath();
    expect(cli, 'the temporal CLI from scripts/setup.sh').toBeTruthy();
    const run = promisify(execFile);
    await h.run(async () => {
      await run(cli!, [
        'workflow',
        'start',
        '--address',
        h.address,
        '--type',
        'batchPipeline',
        '--task-queue',
        h.taskQueue,
        '--workflow-id',
        'skeleton-cli',
        '--input-file',
        'examples/batch.json',
      ]);
      const summary = await h.client.workflow.getHandle('skeleton-cli').result();
      expect(summary).toMatchObject({ total: 24, succeeded: 24 });
    });
    expect(await h.store.count('skeleton-cli')).toBe(24);
  });
});
