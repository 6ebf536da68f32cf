/**
 * The Steadfast worker: stateless and interchangeable; run as many as you like.
 * `npm run worker` connects with TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE and polls
 * STEADFAST_TASK_QUEUE (default `steadfast`). SIGINT/SIGTERM drain gracefully.
 */
import { fileURLToPath } from 'node:url';
import { NativeConnection, Worker } from '@temporalio/worker';
import type { WorkerOptions } from '@temporalio/worker';
import { createActivities, createDefaultDeps } from '../activities/index.ts';
import type { ActivityDeps } from '../activities/index.ts';
import { loadConfig } from './config.ts';
import type { Config } from './config.ts';
import { installRuntime } from './runtime.ts';

export const WORKFLOWS_PATH = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));

export interface WorkerSetup {
  connection: NativeConnection;
  config: Config;
  deps: ActivityDeps;
  /** A pre-built bundle (tests bundle once per run); otherwise `workflowsPath` is bundled. */
  workflowBundle?: WorkerOptions['workflowBundle'];
  overrides?: Partial<WorkerOptions>;
}

/** Builds a worker on the configured task queue with the real activities. */
export async function createWorker(setup: WorkerSetup): Promise<Worker> {
  const { connection, config, deps } = setup;
  return Worker.create({
    connection,
    namespace: config.namespace,
    taskQueue: config.taskQueue,
    ...(setup.workflowBundle ? { workflowBundle: setup.workflowBundle } : { workflowsPath: WORKFLOWS_PATH }),
    activities: createActivities(deps),
    maxConcurrentActivityTaskExecutions: config.maxActivities,
    // In-flight LLM calls get this long to finish on SIGTERM before they are cancelled.
    shutdownGraceTime: '30 s',
    ...setup.overrides,
  });
}

async function main(): Promise<void> {
  const config = loadConfig();
  installRuntime(config);
  const connection = await NativeConnection.connect({ address: config.temporalAddress });
  const deps = await createDefaultDeps(config);
  const worker = await createWorker({ connection, config, deps });
  console.log(`worker polling task queue "${config.taskQueue}" on ${config.temporalAddress} (namespace ${config.namespace})`);
  try {
    await worker.run(); // resolves after SIGINT/SIGTERM once in-flight work drained
  } finally {
    await deps.close?.();
    await connection.close();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((err: unknown) => {
    console.error('worker failed:', err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
