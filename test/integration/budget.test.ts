/**
 * The batch budget on a real Temporal server: `pause` stops dispatch before the
 * next item would pass the budget, alerts at 80% and when it is reached, rejects
 * a lower budget, and finishes after `steadfast resume --budget` raises it;
 * `stop` writes every item it did not start (inline or from a JSONL source) as a
 * skipped row with `BudgetExceeded`, so nothing is lost.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { progressQuery, setBudgetUpdate } from '../../src/shared/messages.ts';
import type { PipelineSpecInput } from '../../src/shared/spec.ts';
import { harnessEnv, runCli } from '../support/cli.ts';
import { createHarness } from '../support/harness.ts';
import type { Harness } from '../support/harness.ts';
import { startWebhookSink, until } from '../support/wait.ts';
import type { WebhookSink } from '../support/wait.ts';

/** Input tokens only are priced, so an item's cost is close to its estimate from the prompt's length. */
const spec = (budget: PipelineSpecInput['budget'], webhookUrl: string): PipelineSpecInput => ({
  prompt: { template: 'Ticket {{id}}: please classify this support ticket about billing' },
  providers: [{ name: 'primary', kind: 'openai', model: 'gpt-4o-mini', maxOutputTokens: 256, pricing: { inputPerMTok: 1000, outputPerMTok: 0 } }],
  retry: { maxAttempts: 1 },
  batch: { concurrency: 1 },
  alerts: { webhookUrl },
  ...(budget ? { budget } : {}),
});
const items = (n: number, prefix: string) => Array.from({ length: n }, (_, i) => ({ id: `${prefix}${String(i).padStart(2, '0')}` }));

describe('batch budget', () => {
  let h: Harness;
  let hook: WebhookSink;
  let webhookUrl: string;
  let posts: { text: string }[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'steadfast-budget-'));
  /** The cost of one item, measured on a batch without a budget. */
  let perItem: number;
  beforeAll(async () => {
    h = await createHarness();
    hook = await startWebhookSink();
    ({ url: webhookUrl, posts } = hook);
    const probe = await h.run(async () => (await h.startBatch({ pipeline: spec(undefined, webhookUrl), items: items(3, 'x') }, 'budget-probe')).result());
    perItem = probe.costUsd / 3;
    expect(perItem).toBeGreaterThan(0);
  });
  afterAll(async () => {
    await h?.close();
    hook?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('pause: stops before passing the budget, alerts at 80% and at the limit, rejects a lower budget, finishes after a raise', async () => {
    const maxCostUsd = 6.5 * perItem;
    posts.length = 0;
    const summary = await h.run(async () => {
      const handle = await h.startBatch({ pipeline: spec({ maxCostUsd, onExceeded: 'pause' }, webhookUrl), items: items(12, 'p') }, 'budget-pause');
      const read = () => handle.query(progressQuery);
      const paused = await until(read, (p) => p.budget?.state === 'paused');
      expect(paused).toMatchObject({ started: 6, succeeded: 6, running: 0, queued: 6, paused: true, budget: { state: 'paused', maxCostUsd, reservedUsd: 0 } });
      expect(paused.budget!.spentUsd).toBeLessThanOrEqual(maxCostUsd);
      expect(paused.pausedReason).toContain('steadfast resume budget-pause --budget');
      // Nothing more starts while paused.
      await new Promise((r) => setTimeout(r, 500));
      expect((await read()).started).toBe(6);
      // A lower (or equal) budget is rejected with the reason; the batch stays paused.
      const lower = await handle.executeUpdate(setBudgetUpdate, { args: [{ maxCostUsd: maxCostUsd / 2 }] }).catch((e: unknown) => e);
      expect(lower).toBeInstanceOf(WorkflowUpdateFailedError);
      expect(String((lower as WorkflowUpdateFailedError).cause?.message)).toMatch(/is not above the current .* a budget can only be raised/);
      const bad = await handle.executeUpdate(setBudgetUpdate, { args: [{ maxCostUsd: Number.NaN }] }).catch((e: unknown) => e);
      expect(String((bad as WorkflowUpdateFailedError).cause?.message)).toContain('maxCostUsd must be a positive number of USD');
      expect((await read()).budget?.state).toBe('paused');
      // The CLI raises it; the batch resumes and finishes.
      const out = await runCli(['resume', 'budget-pause', '--budget', String(100 * perItem)], harnessEnv(h));
      expect(out.code, out.stderr).toBe(0);
      expect(out.stdout).toContain('budget of batch budget-pause is now');
      return handle.result();
    });
    expect(summary).toMatchObject({ total: 12, succeeded: 12, status: 'completed', budget: { state: 'ok', skipped: 0 } });
    const texts = posts.map((p) => p.text);
    expect(texts.filter((t) => t.includes('Budget 80% spent'))).toHaveLength(1);
    expect(texts.filter((t) => t.includes('Budget reached'))).toHaveLength(1);
    expect(texts.find((t) => t.includes('Budget reached'))).toContain('steadfast resume budget-pause --budget');
  }, 60_000);

  it('stop: the items not started end as skipped rows with BudgetExceeded; the summary says stopped', async () => {
    const maxCostUsd = 4.5 * perItem;
    const summary = await h.run(async () =>
      (await h.startBatch({ pipeline: spec({ maxCostUsd, onExceeded: 'stop' }, webhookUrl), items: items(10, 's') }, 'budget-stop')).result(),
    );
    expect(summary).toMatchObject({ total: 10, succeeded: 4, skipped: 6, status: 'stopped', budget: { state: 'stopped', skipped: 6 } });
    expect(summary.costUsd).toBeLessThanOrEqual(maxCostUsd);
    const rows = await h.store.list('budget-stop');
    expect(rows).toHaveLength(10);
    const skipped = rows.filter((r) => r.status === 'skipped');
    expect(skipped.map((r) => r.itemId)).toEqual(['s04', 's05', 's06', 's07', 's08', 's09']);
    expect(skipped[0]).toMatchObject({ attempts: 0, costUsd: 0, error: { type: 'BudgetExceeded', message: expect.stringContaining('budget') } });
  }, 60_000);

  it('holds across continue-as-new: the budget, its spend and its alerts carry into the next run', async () => {
    const maxCostUsd = 80.5 * perItem;
    posts.length = 0;
    const summary = await h.run(async () => {
      const handle = await h.startBatch(
        { pipeline: { ...spec({ maxCostUsd, onExceeded: 'pause' }, webhookUrl), batch: { concurrency: 4 } }, items: items(120, 'n') },
        'budget-can',
      );
      const read = () => handle.query(progressQuery);
      const paused = await until(read, (p) => p.budget?.state === 'paused');
      // The dev server suggests continue-as-new at 300 events: 80 items take the batch past it
      // however many reports share a workflow task (each item adds at least 5 events).
      expect(paused.runs).toBeGreaterThan(1);
      expect(paused).toMatchObject({ started: 80, succeeded: 80, running: 0, budget: { state: 'paused', reservedUsd: 0 } });
      expect(paused.budget!.spentUsd).toBeLessThanOrEqual(maxCostUsd);
      await handle.executeUpdate(setBudgetUpdate, { args: [{ maxCostUsd: 200 * perItem }] });
      return handle.result();
    });
    expect(summary).toMatchObject({ total: 120, succeeded: 120, status: 'completed' });
    // Each alert once, whatever run of the batch it fell in.
    expect(posts.filter((p) => p.text.includes('Budget 80% spent'))).toHaveLength(1);
    expect(posts.filter((p) => p.text.includes('Budget reached'))).toHaveLength(1);
  }, 90_000);

  it('stop on a JSONL source: the rest of the source is read and written as skipped rows', async () => {
    const path = join(dir, 'items.jsonl');
    writeFileSync(
      path,
      items(450, 'j')
        .map((i) => JSON.stringify(i))
        .join('\n') + '\n',
    );
    const maxCostUsd = 3.5 * perItem;
    const summary = await h.run(async () =>
      (await h.startBatch({ pipeline: spec({ maxCostUsd, onExceeded: 'stop' }, webhookUrl), source: { jsonl: path } }, 'budget-src')).result(),
    );
    expect(summary).toMatchObject({ total: 450, succeeded: 3, skipped: 447, status: 'stopped', budget: { skipped: 447 } });
    expect(await h.store.count('budget-src')).toBe(450);
  }, 60_000);
});
