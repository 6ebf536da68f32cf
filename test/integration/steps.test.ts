/**
 * Multi-step pipelines on a real Temporal server and the fault-injecting provider:
 * each step's output feeds the next, `when` skips a step, a failure at step 2 waits
 * for review there and goes on by approve or by retry (the step before is not called
 * again), and a worker lost between steps costs no call of a finished step. Each
 * step uses its own model, so the provider's per-model counters are per-step call counts.
 */
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { itemStateQuery, progressQuery, reviewDetailsQuery, reviewUpdate } from '../../src/shared/messages.ts';
import type { Progress } from '../../src/shared/messages.ts';
import type { PipelineSpecInput } from '../../src/shared/spec.ts';
import type { StepResult } from '../../src/shared/pipeline-steps.ts';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportBatch } from '../../src/client/cli/export.ts';
import { parseCsv } from '../../src/client/cli/csv.ts';
import { harnessEnv, runCli } from '../support/cli.ts';
import { createHarness } from '../support/harness.ts';
import type { Harness } from '../support/harness.ts';

const tier = (model: string) => [{ name: model, kind: 'openai' as const, model, timeout: '3s', pricing: { inputPerMTok: 1, outputPerMTok: 2 } }];

/** extract (gpt-4o-mini) -> classify (gpt-4o) -> note (claude-haiku-4-5, only for totals >= 100). */
const spec: PipelineSpecInput = {
  name: 'steps-test',
  steps: [
    {
      name: 'extract',
      prompt: { template: 'Extract the fields of invoice id {{id}}: {{text}}' },
      output: {
        format: 'json',
        schema: {
          type: 'object',
          properties: { vendor: { type: 'string' }, total: { type: 'number', minimum: 0, maximum: 500 } },
          required: ['vendor', 'total'],
          additionalProperties: false,
        },
      },
      providers: tier('gpt-4o-mini'),
    },
    {
      name: 'classify',
      prompt: { template: 'Classify the expense of invoice id {{id}} from {{steps.extract.vendor}} ({{steps.extract.total}}) {{hint}}' },
      output: {
        format: 'json',
        schema: {
          type: 'object',
          properties: { category: { type: 'string', enum: ['travel', 'software', 'office'] } },
          required: ['category'],
          additionalProperties: false,
        },
      },
      providers: tier('gpt-4o'),
    },
    {
      name: 'note',
      when: 'steps.extract.total >= 100',
      prompt: { template: 'Write a one-line note for invoice id {{id}}: {{steps.classify.category}} expense of {{steps.extract.total}}' },
      providers: [{ name: 'writer', kind: 'anthropic', model: 'claude-haiku-4-5', timeout: '3s' }],
    },
  ],
  providers: tier('gpt-4o-mini'),
  retry: { maxAttempts: 2, initialInterval: '50ms', maxInterval: '50ms' },
  review: { timeout: '1h', defaultDecision: 'skip' },
};

async function until(what: string, check: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const dir = mkdtempSync(join(tmpdir(), 'sf-steps-'));
const stepOf = (steps: StepResult[] | null | undefined, name: string) => steps?.find((s) => s.name === name);

describe('multi-step pipelines', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness();
  });
  afterAll(async () => {
    await h?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('feeds each output into the next step, skips by when, and stores every step', async () => {
    h.provider.reset();
    const items = Array.from({ length: 8 }, (_, i) => ({ id: `i${i + 1}`, text: `invoice number ${i + 1}`, hint: 'plain' }));
    const handle = await h.startBatch({ pipeline: spec, items });
    const summary = await h.run(() => handle.result());
    expect(summary).toMatchObject({ total: 8, succeeded: 8, failed: 0, skipped: 0 });
    const rows = await h.store.list(handle.workflowId);
    expect(rows).toHaveLength(8);
    let notes = 0;
    for (const r of rows) {
      const [extract, classify, note] = r.steps!;
      expect(r.steps!.map((s) => s.name)).toEqual(['extract', 'classify', 'note']);
      expect(extract).toMatchObject({ status: 'succeeded', provider: 'gpt-4o-mini', model: 'gpt-4o-mini', attempts: 1 });
      expect(classify).toMatchObject({ status: 'succeeded', provider: 'gpt-4o', attempts: 1 });
      const total = (extract!.output as { total: number }).total;
      const category = (classify!.output as { category: string }).category;
      if (total >= 100) {
        notes += 1;
        // The note's prompt was rendered from the earlier outputs; the provider's text answer quotes it.
        expect(note).toMatchObject({ status: 'succeeded', provider: 'writer' });
        expect(String(note!.output)).toContain(`: ${category}`.slice(0, 12));
        expect(r.output).toBe(note!.output);
      } else {
        expect(note).toMatchObject({ status: 'skipped', output: null, attempts: 0 });
        expect(r.output).toEqual(classify!.output);
      }
      expect(r.attempts).toBe(r.steps!.reduce((n, s) => n + s.attempts, 0));
      expect(r.inputTokens).toBe(r.steps!.reduce((n, s) => n + s.inputTokens, 0));
    }
    expect(notes).toBeGreaterThan(0);
    expect(notes).toBeLessThan(8);
    const stats = h.provider.stats();
    expect(stats.byModel).toEqual({ 'gpt-4o-mini': 8, 'gpt-4o': 8, 'claude-haiku-4-5': notes });
    expect(summary.steps).toMatchObject({
      extract: { succeeded: 8, skipped: 0, attempts: 8 },
      classify: { succeeded: 8, attempts: 8 },
      note: { succeeded: notes, skipped: 8 - notes },
    });
    expect(summary.steps!['extract']!.inputTokens).toBeGreaterThan(0);
    expect(summary.steps!['note']!.tierUse).toEqual({ writer: notes });

    // The export flattens the steps: CSV columns per step, or one step per line with --step.
    const csvFile = join(dir, 'all.csv');
    expect(await exportBatch(h.config, handle.workflowId, { format: 'csv', failed: false, out: csvFile }, () => undefined)).toBe(8);
    const [header, ...lines] = parseCsv(readFileSync(csvFile, 'utf8')).records.map((r) => r.fields);
    expect(header).toEqual(expect.arrayContaining(['extract.output', 'classify.model', 'note.status', 'note.costUsd']));
    expect(lines).toHaveLength(8);
    const first = rows[0]!;
    expect(JSON.parse(lines[0]![header!.indexOf('extract.output')]!)).toEqual(stepOf(first.steps, 'extract')!.output);
    const stepFile = join(dir, 'classify.jsonl');
    await exportBatch(h.config, handle.workflowId, { format: 'jsonl', failed: false, out: stepFile, step: 'classify' }, () => undefined);
    const perStep = readFileSync(stepFile, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { step: string; model: string; output: unknown });
    expect(perStep).toHaveLength(8);
    expect(perStep.every((l) => l.step === 'classify' && l.model === 'gpt-4o')).toBe(true);
    // Every item's answer came from the simulated endpoint, also when its last step was skipped.
    expect(summary.simulated).toBe(8);
    expect(summary.tierUse).toEqual({ 'gpt-4o-mini': 0, 'gpt-4o': 8 - notes, writer: notes });
  }, 90_000);

  it('waits for review at the failed step; approve supplies its output, retry reruns it without calling the step before', async () => {
    h.provider.reset();
    // The directive is only in the classify step's prompt (its template is the only one with {{hint}}).
    const items = [
      { id: 'a', text: 'taxi to the airport', hint: '[[fault:auth]]' },
      { id: 'b', text: 'laptop stand', hint: '[[fault:auth]]' },
      { id: 'c', text: 'pens', hint: 'plain' },
    ];
    const handle = await h.startBatch({ pipeline: spec, items });
    const summary = await h.run(async () => {
      let p: Progress = await handle.query(progressQuery);
      await until('two items awaiting review', async () => (p = await handle.query(progressQuery)).awaitingReviewCount === 2);
      expect(p.awaitingReview.map((r) => [r.itemId, r.step, r.errorType]).sort()).toEqual([
        ['a', 'classify', 'AuthFailed'],
        ['b', 'classify', 'AuthFailed'],
      ]);
      expect(p.steps?.['classify']).toMatchObject({ awaitingReview: 2 });
      const item = h.client.workflow.getHandle(`${handle.workflowId}/a`);
      expect(await item.query(itemStateQuery)).toMatchObject({ status: 'awaiting_review', step: 'classify', errorType: 'AuthFailed' });
      // The Web UI's current details of the waiting item (the SDK's metadata query) name the step.
      const meta = await item.query<{ currentDetails?: string }, []>('__temporal_workflow_metadata');
      expect(meta.currentDetails).toMatch(/waiting for review\*\* at step \*\*classify\*\* \(approve supplies this step's output/);
      const batchMeta = await handle.query<{ currentDetails?: string }, []>('__temporal_workflow_metadata');
      expect(batchMeta.currentDetails).toContain('classify 0 running, 2 awaiting review');
      const details = await item.query(reviewDetailsQuery);
      expect(details.step).toMatchObject({ name: 'classify', index: 1, of: 3, earlier: [{ name: 'extract', status: 'succeeded' }] });
      expect(details.output.schema).toMatchObject({ properties: { category: { enum: ['travel', 'software', 'office'] } } });
      const row = (await h.store.list(handle.workflowId, { itemId: 'a' }))[0]!;
      expect(row.status).toBe('awaiting_review');
      expect(row.steps?.map((s) => [s.name, s.status])).toEqual([
        ['extract', 'succeeded'],
        ['classify', 'failed'],
      ]);

      // The approved output is checked against the classify step's schema, not the pipeline's.
      const bad = await handle.executeUpdate(reviewUpdate, { args: [{ itemId: 'a', decision: 'approve', output: { category: 'food' } }] }).catch((e: unknown) => e);
      expect(bad).toBeInstanceOf(WorkflowUpdateFailedError);
      expect(String((bad as WorkflowUpdateFailedError).cause?.message)).toContain('(step classify)');
      await handle.executeUpdate(reviewUpdate, { args: [{ itemId: 'a', decision: 'approve', output: { category: 'travel' }, reviewer: 'ana' }] });
      await handle.executeUpdate(reviewUpdate, { args: [{ itemId: 'b', decision: 'retry', input: { hint: 'now fine' } }] });
      return handle.result();
    });
    expect(summary).toMatchObject({ total: 3, succeeded: 2, approved: 1, retried: 1 });
    const rows = Object.fromEntries((await h.store.list(handle.workflowId)).map((r) => [r.itemId, r]));
    const a = rows['a']!;
    expect(a.status).toBe('approved');
    expect(stepOf(a.steps, 'classify')).toMatchObject({ status: 'approved', output: { category: 'travel' }, reviewed: true, errorType: 'AuthFailed' });
    expect(a.review).toMatchObject({ decision: 'approve', reviewer: 'ana' });
    const aTotal = (stepOf(a.steps, 'extract')!.output as { total: number }).total;
    // The approved output fed the next step.
    if (aTotal >= 100) expect(String(stepOf(a.steps, 'note')!.output)).toContain('travel');
    else expect(stepOf(a.steps, 'note')!.status).toBe('skipped');
    const b = rows['b']!;
    expect(b.status).toBe('succeeded');
    expect(stepOf(b.steps, 'classify')).toMatchObject({ status: 'succeeded', reviewed: true, provider: 'gpt-4o' });
    // Step 1 ran once per item: neither the review nor the retry called it again.
    const stats = h.provider.stats();
    expect(stats.byModel['gpt-4o-mini']).toBe(3);
    // classify: a and b failed once (auth is not retried), b's retry once, c once.
    expect(stats.byModel['gpt-4o']).toBe(4);
    expect(summary.steps?.['classify']).toMatchObject({ reviewed: 2, approved: 1, succeeded: 2 });
  }, 90_000);

  it('retry at the failed step from another of its tiers', async () => {
    h.provider.reset();
    // classify has two tiers of its own, both down: the item waits at classify after trying both.
    const twoTiers: PipelineSpecInput = {
      ...spec,
      steps: spec.steps!.map((st) =>
        st.name === 'classify' ? { ...st, providers: [...tier('gpt-4o'), { name: 'backup', kind: 'anthropic' as const, model: 'claude-sonnet-4-6', timeout: '3s' }] } : st,
      ),
    };
    h.provider.setModelDown('gpt-4o', true);
    h.provider.setModelDown('claude-sonnet-4-6', true);
    const handle = await h.startBatch({ pipeline: twoTiers, items: [{ id: 't', text: 'hotel', hint: 'plain' }] });
    const summary = await h.run(async () => {
      await until('the item awaiting review', async () => (await handle.query(progressQuery)).awaitingReviewCount === 1);
      const unknown = await handle.executeUpdate(reviewUpdate, { args: [{ itemId: 't', decision: 'retry', provider: 'nope' }] }).catch((e: unknown) => e);
      // The tiers a retry may name are the step's own.
      expect(String((unknown as WorkflowUpdateFailedError).cause?.message)).toContain('is not a tier of this pipeline (gpt-4o, backup)');
      h.provider.setModelDown('claude-sonnet-4-6', false);
      await handle.executeUpdate(reviewUpdate, { args: [{ itemId: 't', decision: 'retry', provider: 'backup' }] });
      return handle.result();
    });
    h.provider.setModelDown('gpt-4o', false);
    expect(summary).toMatchObject({ succeeded: 1, retried: 1 });
    const row = (await h.store.list(handle.workflowId))[0]!;
    expect(stepOf(row.steps, 'classify')).toMatchObject({ status: 'succeeded', provider: 'backup', tier: 1, reviewed: true });
    expect(h.provider.stats().byModel['gpt-4o-mini']).toBe(1);
    expect(summary.steps?.['classify']).toMatchObject({ fallbacks: 1, tierUse: { backup: 1 } });
  }, 60_000);

  it('skips the item at the failed step on skip: the steps after it never run', async () => {
    h.provider.reset();
    const handle = await h.startBatch({ pipeline: spec, items: [{ id: 's', text: 'chair', hint: '[[fault:auth]]' }] });
    const summary = await h.run(async () => {
      await until('the item awaiting review', async () => (await handle.query(progressQuery)).awaitingReviewCount === 1);
      // The CLI as users run it: the review list names the step, a bulk decision can be limited to it.
      const cli = (...args: string[]) => runCli(args, harnessEnv(h));
      const list = await cli('review', 'list', handle.workflowId);
      expect(list.stdout).toMatch(/^ITEM\s+STEP\s+ERROR\s+WAITING\s+REASON$/m);
      expect(list.stdout).toMatch(/^s\s+classify\s+AuthFailed\s/m);
      const wrong = await cli('review', 'skip', handle.workflowId, '--all', '--step', 'nope');
      expect(wrong.code).toBe(1);
      expect(wrong.stderr).toContain('filter.step "nope" is not a step of this pipeline (extract, classify, note)');
      const skip = await cli('review', 'skip', handle.workflowId, '--all', '--step', 'classify', '--note', 'not ours');
      expect(skip.stdout + skip.stderr).toContain('at step classify');
      return handle.result();
    });
    expect(summary).toMatchObject({ skipped: 1 });
    const row = (await h.store.list(handle.workflowId))[0]!;
    expect(row).toMatchObject({ status: 'skipped', output: null, error: { type: 'AuthFailed' } });
    expect(row.steps?.map((s) => [s.name, s.status])).toEqual([
      ['extract', 'succeeded'],
      ['classify', 'failed'],
    ]);
    expect(h.provider.stats().byModel['claude-haiku-4-5']).toBeUndefined();
  }, 60_000);

  it('a cancel stops an item at its step: the row keeps the finished steps and names the one it stopped at', async () => {
    h.provider.reset();
    const handle = await h.startBatch({ pipeline: spec, items: [{ id: 'x', text: 'desk', hint: '[[fault:auth]]' }] });
    const summary = await h.run(async () => {
      await until('the item awaiting review', async () => (await handle.query(progressQuery)).awaitingReviewCount === 1);
      await handle.cancel();
      return handle.result();
    });
    expect(summary).toMatchObject({ status: 'cancelled', cancelled: 1 });
    const row = (await h.store.list(handle.workflowId))[0]!;
    expect(row.status).toBe('cancelled');
    expect(row.steps?.map((s) => [s.name, s.status])).toEqual([
      ['extract', 'succeeded'],
      ['classify', 'failed'],
    ]);
    expect(stepOf(row.steps, 'extract')!.output).toMatchObject({ vendor: expect.any(String) });
  }, 60_000);

  it('a worker lost between steps: the next worker replays the finished step and calls only the rest', async () => {
    h.provider.reset();
    // classify's model is down: every item finishes extract, then retries classify until it heals.
    h.provider.setModelDown('gpt-4o', true);
    const slow: PipelineSpecInput = { ...spec, retry: { maxAttempts: 100, initialInterval: '200ms', maxInterval: '200ms' } };
    const items = Array.from({ length: 5 }, (_, i) => ({ id: `k${i + 1}`, text: `receipt ${i + 1}`, hint: 'plain' }));
    const handle = await h.startBatch({ pipeline: slow, items });
    const first = await h.newWorker();
    await first.runUntil(until('every item past extract', async () => (h.provider.stats().byModel['gpt-4o'] ?? 0) >= 5));
    expect(h.provider.stats().byModel['gpt-4o-mini']).toBe(5);
    // The first worker is gone (its cache with it); the second replays each item from history.
    h.provider.setModelDown('gpt-4o', false);
    const summary = await h.run(() => handle.result(), { maxCachedWorkflows: 0 });
    expect(summary).toMatchObject({ total: 5, succeeded: 5 });
    const stats = h.provider.stats();
    expect(stats.byModel['gpt-4o-mini']).toBe(5);
    expect(stats.identities.succeededMoreThanOnce).toBe(0);
    for (const r of await h.store.list(handle.workflowId)) {
      expect(stepOf(r.steps, 'extract')).toMatchObject({ status: 'succeeded', attempts: 1 });
      expect(stepOf(r.steps, 'classify')!.attempts).toBeGreaterThanOrEqual(2);
    }
  }, 90_000);
});
