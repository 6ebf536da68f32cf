/**
 * One integration-test context: a fresh worker on a unique task queue against
 * the run's shared Temporal dev server (global-setup), our fault-injecting
 * provider on a random port, and a fresh SQLite results file.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import type { WorkflowHandle } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import type { Worker, WorkerOptions } from '@temporalio/worker';
import { inject } from 'vitest';
import { openStore } from '../../activities/index.ts';
import type { ActivityDeps, ResultStore } from '../../activities/index.ts';
import { loadConfig } from '../../src/common/config.ts';
import type { Config } from '../../src/common/config.ts';
import { startProvider } from '../../src/provider/index.ts';
import type { ProviderOptions, RunningProvider } from '../../src/provider/index.ts';
import type { BatchInputRaw } from '../../src/shared/spec.ts';
import { createWorker, workerDataConverter } from '../../src/worker/worker.ts';
import type { batchPipeline } from '../../workflows/batch.ts';

export interface Harness {
  address: string;
  client: Client;
  config: Config;
  taskQueue: string;
  provider: RunningProvider;
  store: ResultStore;
  /** Runs `fn` with a fresh worker polling this harness's task queue (a Worker runs once). */
  run<T>(fn: () => Promise<T>, overrides?: Partial<WorkerOptions>): Promise<T>;
  /** A fresh worker, for tests that start and stop workers themselves. */
  newWorker(overrides?: Partial<WorkerOptions>): Promise<Worker>;
  /** Starts a batch with a unique id on this harness's task queue. */
  startBatch(input: BatchInputRaw, batchId?: string): Promise<WorkflowHandle<typeof batchPipeline>>;
  close(): Promise<void>;
}

export interface HarnessOptions {
  provider?: ProviderOptions;
  worker?: Partial<WorkerOptions>;
  env?: Record<string, string>;
  deps?: Partial<ActivityDeps>;
}

export async function createHarness(opts: HarnessOptions = {}): Promise<Harness> {
  const address = inject('temporalAddress');
  const provider = await startProvider({ port: 0, profile: 'none', seed: 1, latencyScale: 0, ...opts.provider });
  const dir = mkdtempSync(join(tmpdir(), 'steadfast-test-'));
  const taskQueue = `test-${randomUUID()}`;
  const config = loadConfig({
    ...process.env,
    TEMPORAL_ADDRESS: address,
    STEADFAST_TASK_QUEUE: taskQueue,
    STEADFAST_DB_PATH: join(dir, 'results.db'),
    STEADFAST_SIMULATED_PROVIDER_URL: provider.url,
    DATABASE_URL: '',
    ...opts.env,
  });
  const store = await openStore({ databaseUrl: config.databaseUrl, dbPath: config.dbPath });
  const nativeConnection = await NativeConnection.connect({ address });
  const newWorker = (overrides: Partial<WorkerOptions> = {}) =>
    createWorker({
      connection: nativeConnection,
      config,
      deps: { store, simulatedProviderUrl: provider.url, ...opts.deps },
      workflowBundle: { codePath: inject('workflowBundlePath') },
      overrides: { shutdownGraceTime: '1 s', ...opts.worker, ...overrides },
    });
  const connection = await Connection.connect({ address });
  // The workers' claim-check codec: large results and query answers read back like small ones.
  const client = new Client({ connection, namespace: config.namespace, dataConverter: workerDataConverter(config, { store }) });
  return {
    address,
    client,
    config,
    taskQueue,
    provider,
    store,
    newWorker,
    run: async (fn, overrides) => (await newWorker(overrides)).runUntil(fn),
    startBatch: (input, batchId = `batch-${randomUUID().slice(0, 8)}`) =>
      client.workflow.start<typeof batchPipeline>('batchPipeline', { taskQueue, workflowId: batchId, args: [{ ...input, batchId }] }),
    async close() {
      await connection.close();
      await nativeConnection.close();
      await store.close();
      await provider.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
