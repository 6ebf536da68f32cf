/**
 * The Steadfast worker: stateless and interchangeable; run as many as you like.
 * `npm run worker` connects with TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE and polls
 * STEADFAST_TASK_QUEUE (default `steadfast`). SIGINT/SIGTERM drain gracefully.
 *
 * Observability (docs/observability.md): Prometheus `/metrics` on
 * STEADFAST_METRICS_PORT (the SDK's metrics and ours), `/livez` and `/readyz` on
 * STEADFAST_HEALTH_PORT, both on STEADFAST_LISTEN_HOST (loopback unless set), JSON
 * logs on stderr with secrets scrubbed.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Client } from '@temporalio/client';
import { NativeConnection, Runtime, Worker } from '@temporalio/worker';
import type { Logger, WorkerOptions } from '@temporalio/worker';
import { createActivities, createDefaultDeps } from '../../activities/index.ts';
import type { ActivityDeps } from '../../activities/index.ts';
import { cachedWorkflowBundle } from './bundle-cache.ts';
import { ClaimCheckCodec, storeName } from '../common/claim-check.ts';
import { loadConfig } from '../common/config.ts';
import { ConnectionConfigError, describeConnection, explainConnectError } from '../common/connection.ts';
import { CONNECTION_HELP, runEntry } from '../common/usage.ts';
import type { Config } from '../common/config.ts';
import { WorkerHealth, startHealthServer } from './health.ts';
import type { HealthServer } from './health.ts';
import { startBatchObserver } from './batch-observer.ts';
import { activityLogContext, installRuntime } from './logger.ts';
import { errorMessage } from '../shared/failures.ts';

export const WORKFLOWS_PATH = fileURLToPath(new URL('../../workflows/index.ts', import.meta.url));

export interface WorkerSetup {
  connection: NativeConnection;
  config: Config;
  deps: ActivityDeps;
  /** A pre-built bundle (tests bundle once per run); otherwise `workflowsPath` is bundled. */
  workflowBundle?: WorkerOptions['workflowBundle'];
  overrides?: Partial<WorkerOptions>;
}

/** The worker's data converter: payloads over STEADFAST_CLAIM_BYTES are claim-checked in its results store. */
export function workerDataConverter(config: Config, deps: Pick<ActivityDeps, 'store'>): { payloadCodecs: ClaimCheckCodec[] } {
  const store = deps.store;
  return { payloadCodecs: [new ClaimCheckCodec({ thresholdBytes: config.claimBytes, storeName: storeName(config), store: () => Promise.resolve(store) })] };
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
    dataConverter: workerDataConverter(config, deps),
    maxConcurrentActivityTaskExecutions: config.maxActivities,
    // In-flight LLM calls get this long to finish on SIGTERM before they are cancelled.
    shutdownGraceTime: '30 s',
    // Activity log lines carry the batch and item ids of their input.
    interceptors: { activity: [activityLogContext] },
    ...setup.overrides,
  });
}

/**
 * Connects to Temporal, retrying with capped backoff: a worker that starts before
 * the server (a cluster rollout, docker compose) waits, live but not ready,
 * instead of crash-looping. Gives up only when `signal` aborts (SIGTERM).
 */
async function connectWithRetry(config: Config, logger: Logger, health: WorkerHealth, signal: AbortSignal): Promise<NativeConnection | null> {
  for (let attempt = 1; !signal.aborted; attempt++) {
    try {
      return await NativeConnection.connect(config.temporal.connectionOptions);
    } catch (err: unknown) {
      const why = await explainConnectError(config.temporal, err);
      health.connectError = why.message;
      // A rejected certificate or API key does not heal by waiting: one line, and exit.
      if (why.credentials) throw new ConnectionConfigError(why.message);
      const delayMs = Math.min(500 * 2 ** (attempt - 1), 10_000);
      logger.warn('cannot connect to Temporal; retrying', { address: config.temporalAddress, attempt, delayMs, error: health.connectError });
      await sleep(delayMs, undefined, { signal }).catch(() => undefined);
    }
  }
  logger.info('stopped before connecting to Temporal', { address: config.temporalAddress });
  return null;
}

/**
 * Opens the results store (and the other activity deps), retrying with capped backoff
 * like the Temporal connection: a worker that starts while its database is down or
 * locked waits, live but not ready, instead of exiting. Gives up only when `signal` aborts.
 */
async function depsWithRetry(config: Config, logger: Logger, health: WorkerHealth, signal: AbortSignal): Promise<Awaited<ReturnType<typeof createDefaultDeps>> | null> {
  health.connectError = null;
  for (let attempt = 1; !signal.aborted; attempt++) {
    try {
      const deps = await createDefaultDeps(config);
      health.storeError = null;
      return deps;
    } catch (err: unknown) {
      health.storeError = err instanceof Error ? err.message : String(err);
      const delayMs = Math.min(500 * 2 ** (attempt - 1), 10_000);
      logger.warn('cannot open the results store; retrying', { store: config.databaseUrl ? 'postgres' : config.dbPath, attempt, delayMs, error: health.storeError });
      await sleep(delayMs, undefined, { signal }).catch(() => undefined);
    }
  }
  logger.info('stopped before the results store opened');
  return null;
}

/**
 * Starts the probe server. A port already taken (several workers on one host,
 * where each pod of a cluster has its own) is logged and the worker runs without probes.
 */
async function startProbes(port: number, host: string, health: WorkerHealth, logger: Logger): Promise<HealthServer | null> {
  try {
    return await startHealthServer({ port, host, health });
  } catch (err: unknown) {
    logger.error('health probes disabled: cannot listen on STEADFAST_HEALTH_PORT', { port, error: errorMessage(err) });
    return null;
  }
}

async function main(): Promise<void> {
  const config = loadConfig();
  const logger = installRuntime(config);
  const health = new WorkerHealth();
  // The probes answer from the start: live at once, ready only once the worker polls.
  const probes = config.healthPort > 0 ? await startProbes(config.healthPort, config.listenHost, health, logger) : null;
  const stop = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => {
    health.markStopping(`received ${signal}; draining`);
    stop.abort();
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  let connection: NativeConnection | null = null;
  let deps: Awaited<ReturnType<typeof createDefaultDeps>> | null = null;
  let observer: ReturnType<typeof startBatchObserver> | null = null;
  try {
    connection = await connectWithRetry(config, logger, health, stop.signal);
    if (!connection) return;
    deps = await depsWithRetry(config, logger, health, stop.signal);
    if (!deps) return;
    const { code } = await cachedWorkflowBundle(WORKFLOWS_PATH, logger);
    // One codec (and its cache of recent payloads) for the worker and its observer's client.
    const dataConverter = workerDataConverter(config, deps);
    const worker = await createWorker({ connection, config, deps, workflowBundle: { code }, overrides: { dataConverter } });
    health.attach(worker, connection);
    if (config.metricsPort > 0) {
      // Workflow-held state (review queue, circuits) becomes gauges via the batches' progress query.
      const client = new Client({ connection, namespace: config.namespace, dataConverter });
      observer = startBatchObserver({
        client,
        taskQueue: config.taskQueue,
        meter: Runtime.instance().metricMeter,
        identity: worker.options.identity,
        onError: (err) => logger.debug('batch observer pass failed', { error: errorMessage(err) }),
      });
    }
    logger.info('worker polling', {
      taskQueue: config.taskQueue,
      address: config.temporalAddress,
      namespace: config.namespace,
      listenHost: config.listenHost,
      metricsPort: config.metricsPort,
      healthPort: probes?.port ?? 0,
    });
    console.log(`worker polling task queue "${config.taskQueue}" on ${describeConnection(config.temporal)}`);
    if (stop.signal.aborted) return; // stopped while starting: nothing to drain
    await worker.run(); // resolves after SIGINT/SIGTERM once in-flight work drained
  } finally {
    await observer?.stop();
    health.close();
    await deps?.close();
    await connection?.close();
    await probes?.close();
  }
}

const USAGE = `usage: npm run worker   (node src/worker/worker.ts)
  A Steadfast worker: polls task queue STEADFAST_TASK_QUEUE (default steadfast) until SIGINT/SIGTERM,
  then drains in-flight activities for up to 30 s. Configured by the environment (README "Configuration"):
  STEADFAST_METRICS_PORT (9464, /metrics), STEADFAST_HEALTH_PORT (8081, /livez and /readyz),
  DATABASE_URL or STEADFAST_DB_PATH (results), STEADFAST_SIMULATED_PROVIDER_URL (only to answer from the fault-injecting provider), OPENAI_API_KEY, ANTHROPIC_API_KEY.
${CONNECTION_HELP}`;

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) runEntry('worker', USAGE, main);
