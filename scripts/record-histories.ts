/**
 * Records the histories that test/replay replays: runs a small batch on a local
 * dev server with the fault-injecting provider and writes the batch's and one
 * item's history (an item handed over by the batch's fast path after its first call failed) (the JSON of `temporal workflow show --output json`), plus a
 * batch by reference whose source repeats an id (`batch-source-<tag>`) and the
 * second run of a finished batch id (`batch-rerun-<tag>`), a batch whose failed items are
 * decided by one bulk `reviewMany` Update (`batch-bulk-<tag>`), a multi-step batch with one
 * of its items (`batch-steps-<tag>`, `item-steps-<tag>`, from examples/invoices-batch.json),
 * a batch whose first tier is `mode: batch` with one of its items and the tier's
 * collector (`batch-mode-<tag>`, `item-batch-mode-<tag>`, `provider-batch-<tag>`),
 * a batch whose answers come from the response cache (`batch-cached-<tag>`; its items are
 * answered on the fast path, without workflows of their own), and a batch paused at its budget and resumed by a raise
 * (`batch-budget-<tag>`),
 * and two batches on one rate-limited key (`batch-limited-<tag>` with adaptive concurrency,
 * its item `item-limited-<tag>`, whose retry and repair ask the batch for their slots) with their
 * shared limiter (`limiter-<tag>`, still running),
 * a batch-mode batch answered by the response cache (`batch-mode-cached-<tag>`,
 * `item-batch-mode-cached-<tag>`) and one cancelled while its provider batch runs
 * (`batch-mode-cancel-<tag>`, its collector `provider-batch-cancel-<tag>`).
 *   node scripts/record-histories.ts [version-tag]
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { createDefaultDeps } from '../activities/index.ts';
import { loadConfig } from '../src/common/config.ts';
import { startProvider } from '../src/provider/index.ts';
import type { BatchInputRaw } from '../src/shared/spec.ts';
import { devServerExecutable, temporalCliPath } from '../src/dev/temporal-tools.ts';
import { createWorker } from '../src/worker/worker.ts';
import { ALL_SEARCH_ATTRIBUTES } from '../src/shared/search-attributes.ts';
import { limiterIdOf } from '../src/shared/limiter.ts';
import { cancelUpdate, progressQuery, reviewManyUpdate, setBudgetUpdate } from '../src/shared/messages.ts';

const tag = process.argv[2] ?? 'v1';
const env = await TestWorkflowEnvironment.createLocal({ server: { executable: devServerExecutable(), searchAttributes: ALL_SEARCH_ATTRIBUTES } });
const provider = await startProvider({ port: 0, profile: 'none', seed: 1, latencyScale: 0 });
const dir = mkdtempSync(join(tmpdir(), 'steadfast-record-'));
const config = loadConfig({
  ...process.env,
  TEMPORAL_ADDRESS: env.address,
  STEADFAST_TASK_QUEUE: 'record',
  STEADFAST_DB_PATH: join(dir, 'r.db'),
  STEADFAST_SIMULATED_PROVIDER_URL: provider.url,
});
const deps = await createDefaultDeps(config);
const worker = await createWorker({ connection: env.nativeConnection, config, deps });
const example = JSON.parse(readFileSync('examples/batch.json', 'utf8')) as BatchInputRaw;
// Three items answered by their first call (the batch's fast path) and one whose first call fails, handed to its workflow.
const fast = { ...example.pipeline, batch: { ...example.pipeline.batch, fastPath: true } };
const input: BatchInputRaw = {
  ...example,
  pipeline: fast,
  batchId: 'replay',
  items: [...example.items!.slice(0, 3), { id: 'h1', customer: 'Initech', text: 'flaky [[fault:unavailable,none]]' }],
};

// The source's third line repeats the first line's id; its stub goes to review and is skipped after 1 s.
const jsonl = join(dir, 'source.jsonl');
writeFileSync(jsonl, [...example.items!.slice(0, 2), example.items![0]].map((i) => JSON.stringify(i)).join('\n') + '\n');
const sourceInput: BatchInputRaw = { batchId: 'replay-source', pipeline: { ...example.pipeline, review: { timeout: '1s', defaultDecision: 'skip' } }, source: { jsonl } };
const rerunInput: BatchInputRaw = { ...example, pipeline: fast, batchId: 'replay-rerun', items: example.items!.slice(0, 2) };
// Two items refused for good (no retry), one that succeeds; the two are skipped by one bulk Update.
const bulkInput: BatchInputRaw = {
  batchId: 'replay-bulk',
  pipeline: { ...example.pipeline, retry: { maxAttempts: 1 }, review: { timeout: '1h' } },
  items: [
    { id: 'b1', text: 'refused [[fault:refusal]]' },
    { id: 'b2', text: 'refused [[fault:refusal]]' },
    { id: 'b3', text: 'a fine ticket' },
  ],
};
const invoices = JSON.parse(readFileSync('examples/invoices-batch.json', 'utf8')) as BatchInputRaw;
const stepsInput: BatchInputRaw = { ...invoices, batchId: 'replay-steps', items: invoices.items!.slice(0, 3) };
// The first tier through the provider's Batch API: the batch, an item and the tier's collector (`providerBatch`).
const [firstTier, ...otherTiers] = example.pipeline.providers;
const batchModeInput: BatchInputRaw = {
  ...example,
  batchId: 'replay-batchmode',
  pipeline: { ...example.pipeline, providers: [{ ...firstTier!, mode: 'batch', batch: { window: '1s', pollInterval: '1s' } }, ...otherTiers] },
  items: example.items!.slice(0, 2),
};
// The same items twice with the cache on: the second batch's answers are cache hits.
const cachedPipeline = { ...fast, cache: { enabled: true } };
const cacheWarm: BatchInputRaw = { batchId: 'replay-cache-warm', pipeline: cachedPipeline, items: example.items!.slice(0, 2) };
const cached: BatchInputRaw = { batchId: 'replay-cached', pipeline: cachedPipeline, items: example.items!.slice(0, 2) };
// A budget that the first item passes: the batch pauses, a raise resumes it.
const budgetInput: BatchInputRaw = {
  batchId: 'replay-budget',
  pipeline: { ...example.pipeline, batch: { concurrency: 1 }, budget: { maxCostUsd: 0.000001, onExceeded: 'pause' } },
  items: example.items!.slice(0, 3),
};

// Two batches on one rate-limited key share its limiter (permits as send times); one adapts its concurrency.
const limitedTier = { ...example.pipeline.providers[0]!, rateLimit: { requestsPerMinute: 600 } };
const limitedInput = (batchId: string, adaptiveConcurrency: boolean): BatchInputRaw => ({
  batchId,
  pipeline: { ...example.pipeline, providers: [limitedTier], batch: { concurrency: 4, adaptiveConcurrency } },
  // The first item's first attempt fails (a retry) and its answer breaks the schema (a repair): both ask for their slot.
  // (The batch id in the text keeps the provider's per-prompt attempt counts of the two batches apart.)
  items: example.items!.slice(0, 3).map((it, i) => (i === 0 ? { ...it, text: `${String(it.text)} (${batchId}) [[fault:server_error,schema_violation]]` } : it)),
});
const limiterId = limiterIdOf(limitedTier, 'record');
// A batch tier with the cache on: its items are served from the cache without staging;
// and a batch-mode batch cancelled while its provider batch runs.
const batchModeCached = (batchId: string): BatchInputRaw => ({ ...batchModeInput, batchId, pipeline: { ...batchModeInput.pipeline, cache: { enabled: true } } });
const batchModeCancel: BatchInputRaw = { ...batchModeInput, batchId: 'replay-batchmode-cancel' };

await worker.runUntil(async () => {
  const run = async (workflowId: string, args: BatchInputRaw) => (await env.client.workflow.start('batchPipeline', { taskQueue: 'record', workflowId, args: [args] })).result();
  await run('replay', input);
  await run('replay-source', sourceInput);
  await run('replay-rerun', rerunInput);
  await run('replay-rerun', rerunInput);
  const bulk = await env.client.workflow.start('batchPipeline', { taskQueue: 'record', workflowId: 'replay-bulk', args: [bulkInput] });
  while ((await bulk.query(progressQuery)).awaitingReviewCount < 2) await new Promise((r) => setTimeout(r, 100));
  await bulk.executeUpdate(reviewManyUpdate, { args: [{ decision: 'skip' }] });
  await bulk.result();
  await run('replay-steps', stepsInput);
  await run('replay-batchmode', batchModeInput);
  await env.client.workflow.getHandle('provider-batch/replay-batchmode/tier0').result();
  await run('replay-cache-warm', cacheWarm);
  await run('replay-cached', cached);
  const budget = await env.client.workflow.start('batchPipeline', { taskQueue: 'record', workflowId: 'replay-budget', args: [budgetInput] });
  for (let i = 0; i < 200 && (await budget.query(progressQuery)).budget?.state !== 'paused'; i++) await new Promise((r) => setTimeout(r, 100));
  await budget.executeUpdate(setBudgetUpdate, { args: [{ maxCostUsd: 10 }] });
  await budget.result();
  await Promise.all([run('replay-limited', limitedInput('replay-limited', true)), run('replay-limited-2', limitedInput('replay-limited-2', false))]);
  // replay-cache-warm stored these items' answers (the synchronous path's key is the same).
  await run('replay-batchmode-cached', batchModeCached('replay-batchmode-cached'));
  provider.setProfile({ name: 'slow-batch', batch: { latencyMs: 3_600_000 } });
  const cancelled = await env.client.workflow.start('batchPipeline', { taskQueue: 'record', workflowId: 'replay-batchmode-cancel', args: [batchModeCancel] });
  for (let i = 0; i < 300; i++) {
    if ((await deps.store.execute('SELECT 1 FROM provider_batches WHERE group_key LIKE ?', ['replay-batchmode-cancel/%'])).rows.length > 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  await cancelled.executeUpdate(cancelUpdate, { args: [{ reason: 'recording' }] });
  await cancelled.result();
  await env.client.workflow.getHandle('provider-batch/replay-batchmode-cancel/tier0').result();
  provider.setProfile('none');
});
for (const [name, id] of [
  [`batch-${tag}`, 'replay'],
  [`item-${tag}`, 'replay/h1'],
  [`batch-source-${tag}`, 'replay-source'],
  [`batch-rerun-${tag}`, 'replay-rerun'],
  [`batch-bulk-${tag}`, 'replay-bulk'],
  [`batch-steps-${tag}`, 'replay-steps'],
  [`item-steps-${tag}`, 'replay-steps/inv-001'],
  [`batch-mode-${tag}`, 'replay-batchmode'],
  [`item-batch-mode-${tag}`, 'replay-batchmode/t001'],
  [`provider-batch-${tag}`, 'provider-batch/replay-batchmode/tier0'],
  [`batch-cached-${tag}`, 'replay-cached'],
  [`batch-budget-${tag}`, 'replay-budget'],
  [`batch-limited-${tag}`, 'replay-limited'],
  [`item-limited-${tag}`, 'replay-limited/t001'],
  [`limiter-${tag}`, limiterId],
  [`batch-mode-cached-${tag}`, 'replay-batchmode-cached'],
  [`item-batch-mode-cached-${tag}`, 'replay-batchmode-cached/t001'],
  [`batch-mode-cancel-${tag}`, 'replay-batchmode-cancel'],
  [`provider-batch-cancel-${tag}`, 'provider-batch/replay-batchmode-cancel/tier0'],
] as const) {
  // The same JSON as `temporal workflow show --output json`, which users can record too.
  const json = execFileSync(temporalCliPath()!, ['workflow', 'show', '--address', env.address, '--workflow-id', id, '--output', 'json'], { encoding: 'utf8' });
  writeFileSync(join('test/replay/histories', `${name}.json`), json);
  console.log(`wrote test/replay/histories/${name}.json (${(JSON.parse(json) as { events: unknown[] }).events.length} events)`);
}
await deps.close();
await provider.close();
await env.teardown();
