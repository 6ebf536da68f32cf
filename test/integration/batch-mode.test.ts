/**
 * `mode: batch` tiers end to end on the time-skipping server: items travel through the
 * fault-injecting provider's Batch APIs (OpenAI files + batches, Anthropic message
 * batches) with the real SDK clients, the collector polls with durable timers, and the
 * provider's clock follows the server's skipped time, so a batch that stays in progress
 * for hours ends in seconds of wall time.
 */
import Anthropic from '@anthropic-ai/sdk';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { PipelineSpecInput, ProviderSpecInput } from '../../src/shared/spec.ts';
import type { BatchSummary, ResultRecord } from '../../src/shared/types.ts';
import type { batchPipeline } from '../../workflows/batch.ts';
import { providerBatchWorkflowId } from '../../src/shared/provider-batch.ts';
import { cancelUpdate } from '../../src/shared/messages.ts';
import OpenAI from 'openai';
import { createTimeSkipping } from '../support/timeskip.ts';
import type { TimeSkipping } from '../support/timeskip.ts';

const HOUR = 3_600_000;
const schema = {
  type: 'object',
  properties: { label: { type: 'string', enum: ['ok', 'broken'] }, summary: { type: 'string' } },
  required: ['label', 'summary'],
  additionalProperties: false,
};
const pricing = { inputPerMTok: 1, outputPerMTok: 2 };

function batchTier(over: Partial<ProviderSpecInput> = {}): ProviderSpecInput {
  return { name: 'bulk', kind: 'openai', model: 'gpt-4o-mini', mode: 'batch', pricing, batch: { window: '10m', pollInterval: '10m' }, ...over } as ProviderSpecInput;
}

function spec(providers: ProviderSpecInput[]): PipelineSpecInput {
  return {
    name: 'batchmode',
    prompt: { system: 'Classify the ticket as JSON.', template: 'Ticket {{id}}: {{text}}' },
    output: { format: 'json', schema },
    providers,
    retry: { maxAttempts: 3, initialInterval: '10ms', maxInterval: '50ms' },
    review: { timeout: '7d' },
  };
}

const items = (n: number, text = (i: number) => `the box arrived crushed, case ${i}`) => Array.from({ length: n }, (_, i) => ({ id: `t${i}`, text: text(i) }));

/** Half the synchronous price of the row's tokens under {@link pricing}. */
const batchPrice = (r: ResultRecord): number => ((r.inputTokens * pricing.inputPerMTok + r.outputTokens * pricing.outputPerMTok) / 1e6) * 0.5;

describe('mode: batch tiers', () => {
  let ts: TimeSkipping;
  let n = 0;
  // A server per test: the time-skipping server's clock only moves forward, and each batch's
  // end leaves it far ahead (it skips to the next deadline it knows of once nothing runs).
  beforeEach(async () => {
    ts = await createTimeSkipping({ providerOnServerClock: true });
  });
  afterEach(async () => ts?.close());

  /**
   * Waits until the batch's collectors and items completed (an item's last task runs after its
   * report reached the batch), so no workflow task is left on a stopped worker's queue: the
   * time-skipping server would not skip time past it in the next test.
   */
  async function collectorsDone(batchId: string, pipeline: PipelineSpecInput, itemIds: string[], collectors = true): Promise<void> {
    for (const [tier, p] of pipeline.providers.entries()) {
      if (p.mode === 'batch' && collectors) await ts.env.client.workflow.getHandle(providerBatchWorkflowId(batchId, tier)).result();
    }
    // A first tier that is not `mode: batch` answers on the batch's fast path, when on: no item workflow.
    if (pipeline.providers[0]?.mode !== 'batch' && pipeline.batch?.fastPath === true) return;
    await Promise.all(itemIds.map((id) => ts.env.client.workflow.getHandle(`${batchId}/${id}`).result()));
  }

  type Run = (batchId: string, pipeline: PipelineSpecInput, input: Array<{ id: string; text: string }>, opts?: { collectors?: boolean }) => Promise<BatchSummary>;

  /**
   * Runs batches one after another on one worker (a stopped worker's sticky tasks would keep
   * the time-skipping server from skipping the next batch's timers). Each run waits for its
   * summary, its items and collectors; `collectors: false` when no request reaches a provider
   * batch (all cache hits).
   */
  async function onWorker<T>(fn: (run: Run) => Promise<T>): Promise<T> {
    const queue = `batchmode-${++n}`;
    const worker = await ts.worker(queue);
    return worker.runUntil(() =>
      fn(async (batchId, pipeline, input, { collectors = true } = {}) => {
        const handle = await ts.env.client.workflow.start<typeof batchPipeline>('batchPipeline', {
          taskQueue: queue,
          workflowId: batchId,
          args: [{ batchId, pipeline, items: input }],
        });
        const summary = await handle.result();
        await collectorsDone(
          batchId,
          pipeline,
          input.map((i) => i.id),
          collectors,
        );
        return summary;
      }),
    );
  }

  /** Runs one batch to its summary. */
  const runBatch: Run = (...args) => onWorker((run) => run(...args));

  it('submits one provider batch that stays in_progress for 3 hours, then books every answer at the batch price', async () => {
    ts.provider.setProfile({ name: 'slow-batch', batch: { latencyMs: 3 * HOUR } });
    ts.provider.reset();
    const started = Date.now();
    const summary = await runBatch('bm-slow', spec([batchTier({ batch: { maxRequests: 6, window: '1h', pollInterval: '10m' } })]), items(6));
    expect(summary).toMatchObject({ total: 6, succeeded: 6, failed: 0 });
    const stats = ts.provider.stats();
    expect(stats.batches).toMatchObject({ created: 1, requests: 6, results: { succeeded: 6 }, fileUploads: 1 });
    // No synchronous call: every answer came through the batch.
    expect(stats.byStatus['200']).toBe(6);
    const rows = await ts.store.list('bm-slow');
    expect(rows).toHaveLength(6);
    for (const r of rows) {
      expect(r).toMatchObject({ status: 'succeeded', tier: 0, provider: 'bulk', attempts: 1, endpoint: { vendor: 'simulated', simulated: true } });
      expect(r.output).toMatchObject({ label: expect.any(String) as string });
      expect(r.costUsd).toBeGreaterThan(0);
      expect(r.costUsd).toBeCloseTo(batchPrice(r), 12);
    }
    // The provider's own bill (at its batch discount) and ours agree.
    expect(summary.costUsd).toBeCloseTo(
      rows.reduce((s, r) => s + r.costUsd, 0),
      9,
    );
    // Three hours of provider time, far less of wall time: the polls' timers were skipped.
    expect(Date.now() - started).toBeLessThan(60_000);
    // The collector polled every 10 minutes of the 3 hours: 18 polls, the last one sees it ended.
    const history = await ts.env.client.workflow.getHandle(providerBatchWorkflowId('bm-slow', 0)).fetchHistory();
    const polls = history.events?.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'pollProviderBatch').length;
    expect(polls).toBe(18);
  }, 60_000);

  it('sends the requests an expired batch left unanswered on to the next tier; the answered ones stay on the batch tier', async () => {
    ts.provider.setProfile({ name: 'expire', batch: { latencyMs: 2 * HOUR, expireRate: 1, expireAnswered: 0.5 } });
    ts.provider.reset();
    const pipeline = spec([
      batchTier({ batch: { maxRequests: 6, window: '1h', pollInterval: '30m' } }),
      { name: 'sync', kind: 'anthropic', model: 'claude-3-5-haiku-latest', pricing },
    ]);
    const summary = await runBatch('bm-expire', pipeline, items(6));
    expect(summary).toMatchObject({ total: 6, succeeded: 6 });
    expect(summary.tierUse).toEqual({ bulk: 3, sync: 3 });
    const stats = ts.provider.stats();
    expect(stats.batches).toMatchObject({ created: 1, results: { succeeded: 3, expired: 3 } });
    const rows = await ts.store.list('bm-expire');
    const moved = rows.filter((r) => r.tier === 1);
    expect(moved).toHaveLength(3);
    for (const r of moved) {
      expect(r.provider).toBe('sync');
      // The expired request cost nothing; the synchronous answer is at the full price.
      expect(r.costUsd).toBeCloseTo((r.inputTokens * 1 + r.outputTokens * 2) / 1e6, 12);
    }
    for (const r of rows.filter((x) => x.tier === 0)) expect(r.costUsd).toBeCloseTo(batchPrice(r), 12);
  }, 60_000);

  it('treats per-request errors inside a completed batch like failed calls: a 500 moves on, invalid output is repaired through a second batch', async () => {
    ts.provider.setProfile({ name: 'per-request', batch: { latencyMs: HOUR } });
    ts.provider.reset();
    const input = [
      { id: 'fine', text: 'a plain ticket' },
      { id: 'server', text: 'a ticket [[fault:server_error,none]]' },
      { id: 'schema', text: 'a ticket [[fault:schema_violation]]' },
    ];
    const pipeline = spec([
      batchTier({ batch: { maxRequests: 3, window: '5m', pollInterval: '15m' } }),
      { name: 'sync', kind: 'anthropic', model: 'claude-3-5-haiku-latest', pricing },
    ]);
    const summary = await runBatch('bm-errors', pipeline, input);
    expect(summary).toMatchObject({ total: 3, succeeded: 3 });
    const rows = Object.fromEntries((await ts.store.list('bm-errors')).map((r) => [r.itemId, r]));
    expect(rows['fine']).toMatchObject({ tier: 0, status: 'succeeded' });
    // The errored request failed tier 0 as a ProviderUnavailable; the synchronous tier answered (after one retry).
    expect(rows['server']).toMatchObject({ tier: 1, provider: 'sync', status: 'succeeded' });
    // The invalid answer was billed, then repaired by a second provider batch on the same tier.
    expect(rows['schema']).toMatchObject({ tier: 0, provider: 'bulk', status: 'succeeded', attempts: 2 });
    const stats = ts.provider.stats();
    expect(stats.batches).toMatchObject({ created: 2, requests: 4, results: { succeeded: 3, errored: 1 } });
  }, 60_000);

  it('retries a 5xx on file upload and on batch creation (OpenAI); nothing is submitted twice', async () => {
    ts.provider.setProfile({ name: 'upload-5xx', batch: { latencyMs: HOUR, fileUploadErrors: 2, createErrors: 1 } });
    ts.provider.reset();
    const summary = await runBatch('bm-5xx', spec([batchTier({ batch: { maxRequests: 3, window: '5m', pollInterval: '20m' } })]), items(3));
    expect(summary).toMatchObject({ total: 3, succeeded: 3 });
    expect(ts.provider.stats().batches).toMatchObject({ created: 1, fileUploadErrors: 2, createErrors: 1, fileUploads: 2, byApi: { openai: 1 } });
  }, 60_000);

  it('retries 529 overloaded on message batch creation (Anthropic) and prices at the batch discount', async () => {
    ts.provider.setProfile({ name: 'anthropic-529', batch: { latencyMs: HOUR, createErrors: 2 } });
    ts.provider.reset();
    const anth = batchTier({ name: 'bulk-anthropic', kind: 'anthropic', model: 'claude-3-5-haiku-latest', batch: { maxRequests: 3, window: '5m', pollInterval: '20m' } });
    const summary = await runBatch('bm-529', spec([anth]), items(3));
    expect(summary).toMatchObject({ total: 3, succeeded: 3 });
    expect(ts.provider.stats().batches).toMatchObject({ created: 1, createErrors: 2, byApi: { anthropic: 1 } });
    for (const r of await ts.store.list('bm-529')) expect(r.costUsd).toBeCloseTo(batchPrice(r), 12);
  }, 60_000);

  it('sends every request of a group that cannot be submitted (creation failing for an hour) on to the next tier', async () => {
    ts.provider.setProfile({ name: 'create-down', batch: { createErrors: 100 } });
    ts.provider.reset();
    const pipeline = spec([
      batchTier({ batch: { maxRequests: 2, window: '5m', pollInterval: '10m' } }),
      { name: 'sync', kind: 'anthropic', model: 'claude-3-5-haiku-latest', pricing },
    ]);
    const summary = await runBatch('bm-nosubmit', pipeline, items(2));
    expect(summary).toMatchObject({ total: 2, succeeded: 2, tierUse: { sync: 2 } });
    // 15 attempts with backoff, then the group failed: nothing was created.
    expect(ts.provider.stats().batches).toMatchObject({ created: 0, createErrors: 15 });
    for (const r of await ts.store.list('bm-nosubmit')) expect(r).toMatchObject({ tier: 1, status: 'succeeded' });
  }, 60_000);

  it('runs two steps of a multi-step pipeline through their own provider batches (one collector per step and tier)', async () => {
    ts.provider.setProfile({ name: 'steps', batch: { latencyMs: HOUR } });
    ts.provider.reset();
    const tierOf = (name: string) => batchTier({ name, batch: { maxRequests: 2, window: '5m', pollInterval: '10m' } });
    const pipeline = {
      name: 'steps-batchmode',
      providers: [tierOf('bulk')],
      retry: { maxAttempts: 2, initialInterval: '10ms' },
      steps: [
        { name: 'classify', prompt: { template: 'Ticket {{id}}: {{text}}' }, output: { format: 'json', schema } },
        { name: 'summarise', prompt: { template: 'Summarise {{steps.classify.label}}: {{text}}' }, providers: [tierOf('bulk-summary')] },
      ],
    } as unknown as PipelineSpecInput;
    const queue = 'batchmode-steps';
    const worker = await ts.worker(queue);
    const summary = await worker.runUntil(async () => {
      const h = await ts.env.client.workflow.start<typeof batchPipeline>('batchPipeline', {
        taskQueue: queue,
        workflowId: 'bm-steps',
        args: [{ batchId: 'bm-steps', pipeline, items: items(2) }],
      });
      const s = await h.result();
      for (const step of ['classify', 'summarise']) await ts.env.client.workflow.getHandle(providerBatchWorkflowId('bm-steps', 0, step)).result();
      await Promise.all(['t0', 't1'].map((id) => ts.env.client.workflow.getHandle(`bm-steps/${id}`).result()));
      return s;
    });
    expect(summary).toMatchObject({ total: 2, succeeded: 2 });
    // One provider batch per step, each with both items.
    expect(ts.provider.stats().batches).toMatchObject({ created: 2, requests: 4, results: { succeeded: 4 } });
  }, 60_000);

  it('adopts the batch a lost create reply left behind (OpenAI metadata), and a worker restart mid-poll submits nothing again', async () => {
    ts.provider.setProfile({ name: 'lost-reply', batch: { latencyMs: 6 * HOUR, createLostReplies: 1 } });
    ts.provider.reset();
    const queue = `batchmode-restart`;
    const batchId = 'bm-restart';
    const pipeline = spec([batchTier({ batch: { maxRequests: 4, window: '1h', pollInterval: '30m' } })]);
    // Without a workflow cache the stopped worker leaves no sticky tasks behind, which the
    // time-skipping server would wait for (a real server moves them to the queue after 5 s).
    const first = await ts.worker(queue, { maxCachedWorkflows: 0 });
    const handle = await first.runUntil(async () => {
      const h = await ts.env.client.workflow.start<typeof batchPipeline>('batchPipeline', {
        taskQueue: queue,
        workflowId: batchId,
        args: [{ batchId, pipeline, items: items(4) }],
      });
      // Time is not skipped here (nobody waits for a result): wait until the provider batch is recorded.
      for (let i = 0; i < 300; i++) {
        const rec = await ts.store.execute('SELECT provider_batch_id FROM provider_batches WHERE group_key LIKE ?', [`${batchId}/%`]);
        if (rec.rows.length > 0) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      // Skip an hour on the first worker: it polls twice (every 30 minutes), the batch still runs.
      await ts.env.sleep(65 * 60_000);
      // A waiting item says where it waits in the Web UI's current details.
      const meta = await ts.env.client.workflow.getHandle(`${batchId}/t0`).query<{ currentDetails?: string }>('__temporal_workflow_metadata');
      expect(meta.currentDetails).toContain('**waiting in a provider batch** (bulk, request `r');
      expect(meta.currentDetails).toContain(providerBatchWorkflowId(batchId, 0));
      return h;
    });
    const collector = ts.env.client.workflow.getHandle(providerBatchWorkflowId(batchId, 0));
    const pollsOf = async (): Promise<number> =>
      (await collector.fetchHistory()).events?.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'pollProviderBatch').length ?? 0;
    expect(await pollsOf()).toBe(2);
    // The first create's reply was lost; the retry found the batch by its metadata instead of uploading and creating again.
    expect(ts.provider.stats().batches).toMatchObject({ created: 1, createLostReplies: 1, fileUploads: 1 });
    const recorded = await ts.store.execute('SELECT provider_batch_id FROM provider_batches WHERE group_key LIKE ?', [`${batchId}/%`]);
    expect(recorded.rows).toHaveLength(1);
    // A new worker takes over the polling (six hours of timers) and the items.
    const second = await ts.worker(queue);
    const summary = await second.runUntil(async () => {
      const s = await handle.result();
      await collectorsDone(batchId, pipeline, ['t0', 't1', 't2', 't3']);
      return s;
    });
    expect(summary).toMatchObject({ total: 4, succeeded: 4 });
    expect(ts.provider.stats().batches).toMatchObject({ created: 1, requests: 4, results: { succeeded: 4 } });
    // Six hours of polls in all, the rest by the second worker; one submission in the history.
    expect(await pollsOf()).toBe(12);
    const submits = (await collector.fetchHistory()).events?.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'submitProviderBatch').length;
    expect(submits).toBe(1);
  }, 60_000);

  it('serves a re-run under a new batch id from the response cache: no provider batch, cost 0; a synchronous tier shares the entries', async () => {
    ts.provider.setProfile({ name: 'cached-batch', batch: { latencyMs: HOUR } });
    ts.provider.reset();
    const pipeline = { ...spec([batchTier({ batch: { maxRequests: 4, window: '5m', pollInterval: '20m' } })]), cache: { enabled: true } };
    await onWorker(async (run) => {
      const first = await run('bm-cache-1', pipeline, items(4));
      expect(first).toMatchObject({ total: 4, succeeded: 4, cacheHits: 0 });
      expect(first.costUsd).toBeGreaterThan(0);
      expect(ts.provider.stats().batches).toMatchObject({ created: 1, requests: 4 });
      const before = ts.provider.stats();

      const again = await run('bm-cache-2', pipeline, items(4), { collectors: false });
      expect(again).toMatchObject({ total: 4, succeeded: 4, cacheHits: 4, costUsd: 0, attempts: 0 });
      const after = ts.provider.stats();
      expect(after.batches.created).toBe(before.batches.created);
      expect(after.batches.requests).toBe(before.batches.requests);
      expect(after.batches.fileUploads).toBe(before.batches.fileUploads);
      expect(after.requests).toBe(before.requests);
      await expect(ts.env.client.workflow.getHandle(providerBatchWorkflowId('bm-cache-2', 0)).describe()).rejects.toThrow(/not found/i);
      // Nothing was staged for the hits.
      expect((await ts.store.execute('SELECT COUNT(*) AS n FROM batch_requests WHERE batch_id = ?', ['bm-cache-2'])).rows[0]?.['n']).toBe(0);
      const rows = await ts.store.list('bm-cache-2');
      expect(rows.map((r) => [r.cacheHit, r.costUsd, r.attempts])).toEqual(rows.map(() => [true, 0, 0]));
      const paid = Object.fromEntries((await ts.store.list('bm-cache-1')).map((r) => [r.itemId, r.output]));
      for (const r of rows) expect(r.output).toEqual(paid[r.itemId]);

      // The same request on a synchronous tier of the same model and endpoint: the same key.
      const { mode: _m, batch: _b, ...sync } = batchTier();
      const viaSync = await run('bm-cache-3', { ...pipeline, providers: [sync as ProviderSpecInput] }, items(4));
      expect(viaSync).toMatchObject({ succeeded: 4, cacheHits: 4, costUsd: 0 });
      expect(ts.provider.stats().requests).toBe(before.requests);
    });
  }, 60_000);

  it('never caches an answer of a provider batch that failed validation; its valid repair is cached', async () => {
    ts.provider.setProfile({ name: 'cached-invalid', batch: { latencyMs: HOUR } });
    ts.provider.reset();
    const pipeline = { ...spec([batchTier({ batch: { maxRequests: 1, window: '5m', pollInterval: '20m' } })]), cache: { enabled: true } };
    const summary = await runBatch('bm-cache-bad', pipeline, [{ id: 'schema', text: 'a ticket [[fault:schema_violation]]' }]);
    expect(summary).toMatchObject({ succeeded: 1, cacheHits: 0 });
    // The invalid answer, then its repair: two provider batches, one cache entry (the repair's).
    expect(ts.provider.stats().batches).toMatchObject({ created: 2, requests: 2 });
    const entries = await ts.store.execute('SELECT answer FROM response_cache', []);
    expect(entries.rows).toHaveLength(1);
    const [row] = await ts.store.list('bm-cache-bad');
    expect(JSON.parse(String(entries.rows[0]!['answer']))).toMatchObject({ json: row!.output });
  }, 60_000);

  /** A tier on the Anthropic wire: message batches carry no metadata to find a lost batch by. */
  const anthropicTier = (over: Partial<ProviderSpecInput> = {}) =>
    batchTier({ name: 'bulk-anthropic', kind: 'anthropic', model: 'claude-3-5-haiku-latest', batch: { maxRequests: 4, window: '5m', pollInterval: '20m' }, ...over });

  it('adopts the message batch a lost create reply left behind (Anthropic, no metadata): one provider batch, every item answered once', async () => {
    ts.provider.setProfile({ name: 'anthropic-lost-reply', batch: { latencyMs: HOUR, createLostReplies: 1 } });
    ts.provider.reset();
    const summary = await runBatch('bm-ant-lost', spec([anthropicTier()]), items(4));
    expect(summary).toMatchObject({ total: 4, succeeded: 4, tierUse: { 'bulk-anthropic': 4 } });
    // The reply of the only create was lost; the retry found the batch in the list instead of creating another.
    expect(ts.provider.stats().batches).toMatchObject({ created: 1, createLostReplies: 1, requests: 4, results: { succeeded: 4 }, byApi: { anthropic: 1 } });
    for (const r of await ts.store.list('bm-ant-lost')) expect(r).toMatchObject({ status: 'succeeded', tier: 0, attempts: 1 });
    const recorded = await ts.store.execute('SELECT provider_batch_id, adopted FROM provider_batches WHERE group_key LIKE ?', ['bm-ant-lost/%']);
    // Adopted, then checked: its results were the group's four requests.
    expect(recorded.rows).toEqual([{ provider_batch_id: expect.stringMatching(/^msgbatch_/) as string, adopted: 2 }]);
    expect((await ts.store.execute('SELECT COUNT(*) AS n FROM provider_batch_submits', [])).rows[0]?.['n']).toBe(0);
  }, 60_000);

  it("rejects an adopted message batch whose results are not the group (another client's) and submits the group itself", async () => {
    ts.provider.setProfile({ name: 'anthropic-foreign', batch: { latencyMs: HOUR } });
    ts.provider.reset();
    // Another client's batch of the same size, created just before ours.
    const other = new Anthropic({ baseURL: ts.provider.url, apiKey: 'another-client', maxRetries: 0 });
    const foreign = await other.messages.batches.create({
      requests: [0, 1, 2, 3].map((i) => ({
        custom_id: `other-${i}`,
        params: { model: 'claude-3-5-haiku-latest', max_tokens: 64, messages: [{ role: 'user', content: `hello ${i}` }] },
      })),
    });
    // Our first create is refused (529) after the intent was recorded: the retry finds the foreign batch.
    ts.provider.setProfile({ name: 'anthropic-foreign', batch: { latencyMs: HOUR, createErrors: 1 } });
    const summary = await runBatch('bm-ant-foreign', spec([anthropicTier()]), items(4));
    expect(summary).toMatchObject({ total: 4, succeeded: 4, tierUse: { 'bulk-anthropic': 4 } });
    // The foreign batch and ours; our items answered once each, from our batch.
    expect(ts.provider.stats().batches).toMatchObject({ created: 2, createErrors: 1, requests: 8, results: { succeeded: 8 } });
    const rows = await ts.store.list('bm-ant-foreign');
    for (const r of rows) expect(r).toMatchObject({ status: 'succeeded', tier: 0, attempts: 1 });
    const rejected = await ts.store.execute('SELECT provider_batch_id, reason FROM provider_batch_rejects', []);
    expect(rejected.rows).toEqual([{ provider_batch_id: foreign.id, reason: expect.stringContaining('0 of them of this group') as string }]);
    const recorded = await ts.store.execute('SELECT provider_batch_id, adopted FROM provider_batches WHERE group_key LIKE ?', ['bm-ant-foreign/%']);
    expect(recorded.rows).toHaveLength(1);
    expect(recorded.rows[0]).toMatchObject({ adopted: null });
    expect(recorded.rows[0]!['provider_batch_id']).not.toBe(foreign.id);
    // One submission that adopted, one after the rejection.
    const history = await ts.env.client.workflow.getHandle(providerBatchWorkflowId('bm-ant-foreign', 0)).fetchHistory();
    expect(history.events?.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'submitProviderBatch').length).toBe(2);
  }, 60_000);

  it.each(['openai', 'anthropic'] as const)(
    'cancelling the batch cancels its submitted provider batch (%s): nothing more is answered or billed, rows say cancelled',
    async (kind) => {
      ts.provider.setProfile({ name: 'cancel-mid-poll', batch: { latencyMs: 6 * HOUR } });
      ts.provider.reset();
      const batchId = `bm-cancel-${kind}`;
      const tier =
        kind === 'anthropic'
          ? anthropicTier({ batch: { maxRequests: 4, window: '5m', pollInterval: '30m' } })
          : batchTier({ batch: { maxRequests: 4, window: '5m', pollInterval: '30m' } });
      const pipeline = spec([tier]);
      const queue = `batchmode-cancel-${kind}`;
      const worker = await ts.worker(queue);
      const summary = await worker.runUntil(async () => {
        const handle = await ts.env.client.workflow.start<typeof batchPipeline>('batchPipeline', {
          taskQueue: queue,
          workflowId: batchId,
          args: [{ batchId, pipeline, items: items(4) }],
        });
        // Time is not skipped here: wait until the provider batch is recorded, then skip an hour of polls.
        for (let i = 0; i < 300; i++) {
          if ((await ts.store.execute('SELECT 1 FROM provider_batches WHERE group_key LIKE ?', [`${batchId}/%`])).rows.length > 0) break;
          await new Promise((r) => setTimeout(r, 100));
        }
        await ts.env.sleep(65 * 60_000);
        const accepted = await handle.executeUpdate(cancelUpdate, { args: [{ reason: 'wrong prompt' }] });
        expect(accepted).toMatchObject({ stopping: 4 });
        const s = await handle.result();
        await ts.env.client.workflow.getHandle(providerBatchWorkflowId(batchId, 0)).result();
        await Promise.all(items(4).map((it) => ts.env.client.workflow.getHandle(`${batchId}/${it.id}`).result()));
        return s;
      });
      expect(summary).toMatchObject({ status: 'cancelled', cancelled: 4, succeeded: 0 });
      const [rec] = (await ts.store.execute('SELECT provider_batch_id, cancel_requested_at, cancel_status FROM provider_batches WHERE group_key LIKE ?', [`${batchId}/%`])).rows;
      expect(rec).toMatchObject({ cancel_requested_at: expect.any(String) as string, cancel_status: kind === 'anthropic' ? 'canceling' : 'cancelling' });
      const id = String(rec!['provider_batch_id']);
      // The provider shows the batch cancelled, none of its requests answered, nothing billed.
      if (kind === 'anthropic') {
        const b = await new Anthropic({ baseURL: ts.provider.url, apiKey: 'test', maxRetries: 0 }).messages.batches.retrieve(id);
        expect(b).toMatchObject({ processing_status: 'ended', request_counts: { canceled: 4, succeeded: 0, processing: 0 } });
        expect(b.cancel_initiated_at).not.toBeNull();
      } else {
        const b = await new OpenAI({ baseURL: `${ts.provider.url}/v1`, apiKey: 'test', maxRetries: 0 }).batches.retrieve(id);
        expect(b).toMatchObject({ status: 'cancelled', request_counts: { total: 4, completed: 0, failed: 4 } });
      }
      const stats = ts.provider.stats();
      expect(stats.batches).toMatchObject({ created: 1, results: { canceled: 4 } });
      expect(stats.batches.results['succeeded'] ?? 0).toBe(0);
      expect(stats.byStatus['200'] ?? 0).toBe(0);
      // Rows as the cancel path writes them; the collector wrote the requests' state (cancelled).
      const rows = await ts.store.list(batchId);
      expect(rows.map((r) => r.status)).toEqual(['cancelled', 'cancelled', 'cancelled', 'cancelled']);
      for (const r of rows) expect(r.costUsd).toBe(0);
      const states = await ts.store.execute('SELECT DISTINCT result_status FROM batch_requests WHERE batch_id = ?', [batchId]);
      expect(states.rows).toEqual([{ result_status: 'cancelled' }]);
    },
    60_000,
  );
});
