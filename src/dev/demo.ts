/**
 * `npm run demo` (or `./sf demo` on a fresh machine): one batch end to end on
 * the embedded defaults — the local Temporal dev server (started unless one
 * runs), the fault-injecting provider (`flaky` profile) as the worker's explicit
 * simulated endpoint (every row says `simulated`), a worker in this process, and
 * SQLite results in data/results.db. Real vendors: run `npm run worker` with the keys.
 */
import type { Connection } from '@temporalio/client';
import { batchPolicyMarkdown } from '../shared/batch-details.ts';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { NativeConnection } from '@temporalio/worker';
import { createDefaultDeps } from '../../activities/index.ts';
import { progressQuery } from '../shared/messages.ts';
import type { batchPipeline } from '../../workflows/batch.ts';
import { closeClient, connectClient, registerSearchAttributes, webUiUrl } from '../client/client.ts';
import { ensureDevServer } from './ensure-dev-server.ts';
import { loadConfig } from '../common/config.ts';
import { CONNECTION_HELP, runEntry } from '../common/usage.ts';
import { installRuntime } from '../worker/logger.ts';
import { startProvider } from '../provider/index.ts';
import type { RunningProvider } from '../provider/index.ts';
import { PipelineSpec } from '../shared/spec.ts';
import type { BatchInputRaw } from '../shared/spec.ts';
import { createWorker } from '../worker/worker.ts';

const say = (msg: string) => console.log(`demo: ${msg}`);

async function startLocalProvider(url: string, profile: string): Promise<RunningProvider | null> {
  try {
    const r = await fetch(`${url}/admin/stats`, { signal: AbortSignal.timeout(500) });
    if (r.ok) {
      say(`using the provider already running at ${url}`);
      return null;
    }
  } catch {
    // nothing there: start ours
  }
  const port = Number(new URL(url).port || 80);
  const p = await startProvider({ port, profile, seed: 7 });
  say(`fault-injecting provider on ${p.url} (profile ${profile}, seed 7)`);
  return p;
}

async function main(): Promise<void> {
  const config = loadConfig();
  // The demo prints its own progress; the SDK's logs only when something is wrong.
  installRuntime({ logLevel: process.env.STEADFAST_LOG_LEVEL ? config.logLevel : 'error', metricsPort: 0, listenHost: config.listenHost });
  const file = process.argv[2] ?? 'examples/batch.json';
  const input = JSON.parse(readFileSync(file, 'utf8')) as BatchInputRaw;
  const batchId = `demo-${new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '')}`;

  const server = await ensureDevServer(config, say);
  say(server === 'running' ? `Temporal server at ${config.temporalAddress}` : `Temporal dev server started at ${config.temporalAddress}`);
  // The demo is simulated on purpose: its worker is switched to the fault provider explicitly.
  const simulatedUrl = config.simulatedProviderUrl ?? 'http://127.0.0.1:8787';
  const provider = await startLocalProvider(simulatedUrl, process.env.STEADFAST_DEMO_PROFILE ?? 'flaky');

  const connection = await NativeConnection.connect(config.temporal.connectionOptions);
  const deps = await createDefaultDeps({ ...config, simulatedProviderUrl: simulatedUrl });
  const worker = await createWorker({ connection, config, deps });
  const client = await connectClient(config);
  // A dev server started by an older version may lack search attributes added since.
  const added = await registerSearchAttributes(client.connection as Connection, config.namespace);
  if (added.length) say(`registered search attributes ${added.join(', ')}`);
  const started = Date.now();

  const summary = await worker.runUntil(async () => {
    const handle = await client.workflow.start<typeof batchPipeline>('batchPipeline', {
      taskQueue: config.taskQueue,
      workflowId: batchId,
      args: [{ ...input, batchId }],
      staticSummary: `demo batch of ${input.items?.length ?? '?'} items`,
      staticDetails: batchPolicyMarkdown(PipelineSpec.parse(input.pipeline)),
    });
    say(`batch ${batchId} started: ${input.items?.length ?? '?'} items`);
    const ui = webUiUrl(config, batchId);
    if (ui) say(`watch it in the Web UI: ${ui}`);
    const timer = setInterval(() => {
      handle
        .query(progressQuery)
        .then((p) => {
          const done = p.succeeded + p.failed + p.skipped + p.approved;
          // A multi-step pipeline: where the running items are, step by step.
          const steps = p.steps
            ? `; steps: ${Object.entries(p.steps)
                .map(([n, c]) => `${n} ${c.running}${c.awaitingReview ? ` (review ${c.awaitingReview})` : ''}`)
                .join(', ')}`
            : '';
          say(
            `progress ${done}/${p.total ?? '?'} done (${p.succeeded} ok, ${p.failed} failed, ${p.awaitingReviewCount} awaiting review), ${p.running} running, ${p.ratePerMinute}/min${steps}`,
          );
        })
        .catch(() => undefined);
    }, 2_000);
    try {
      return await handle.result();
    } finally {
      clearInterval(timer);
    }
  });

  const rows = await deps.store.count(batchId);
  console.log('\nBatch summary');
  console.log(JSON.stringify(summary, null, 2));
  say(`${rows} result rows for ${batchId} in ${config.databaseUrl ? 'PostgreSQL' : config.dbPath}; ${((Date.now() - started) / 1000).toFixed(1)} s`);
  const ui = webUiUrl(config, batchId);
  if (ui) say(`Web UI: ${ui}`);
  say('the dev server keeps running for the Web UI; stop it with: pkill -f "temporal server start-dev"');
  await deps.close();
  await provider?.close();
  await closeClient(client);
  await connection.close();
}

const USAGE = `usage: npm run demo [-- batch.json]   (./sf demo on a fresh machine; npm run demo:steps for the multi-step example)
  One batch end to end: starts the local Temporal dev server unless one answers (on a local plaintext
  address), the fault-injecting provider (STEADFAST_DEMO_PROFILE, default flaky) unless one runs on
  STEADFAST_SIMULATED_PROVIDER_URL, and a worker in this process; results in STEADFAST_DB_PATH or DATABASE_URL.
${CONNECTION_HELP}`;

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) runEntry('demo', USAGE, main);
