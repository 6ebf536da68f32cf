/**
 * Records the histories that test/replay replays: runs a small batch on a local
 * dev server with the fault-injecting provider and writes the batch's and one
 * item's history (the JSON of `temporal workflow show --output json`).
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
const input: BatchInputRaw = { ...example, batchId: 'replay', items: example.items!.slice(0, 3) };

await worker.runUntil(async () => {
  const handle = await env.client.workflow.start('batchPipeline', { taskQueue: 'record', workflowId: 'replay', args: [input] });
  await handle.result();
});
for (const [name, id] of [
  [`batch-${tag}`, 'replay'],
  [`item-${tag}`, 'replay/t001'],
] as const) {
  // The same JSON as `temporal workflow show --output json`, which users can record too.
  const json = execFileSync(temporalCliPath()!, ['workflow', 'show', '--address', env.address, '--workflow-id', id, '--output', 'json'], { encoding: 'utf8' });
  writeFileSync(join('test/replay/histories', `${name}.json`), json);
  console.log(`wrote test/replay/histories/${name}.json (${(JSON.parse(json) as { events: unknown[] }).events.length} events)`);
}
await deps.close();
await provider.close();
await env.teardown();
