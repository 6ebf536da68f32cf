/**
 * A time-skipping test server with Steadfast's search attributes, the
 * fault-injecting provider and a SQLite store: for tests of timers (review
 * timeouts, circuit cool-downs) that must not cost real minutes.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker, WorkerOptions } from '@temporalio/worker';
import { inject } from 'vitest';
import { openStore } from '../../activities/index.ts';
import type { ResultStore } from '../../activities/index.ts';
import { registerSearchAttributes } from '../../src/client/client.ts';
import { loadConfig } from '../../src/common/config.ts';
import { startProvider } from '../../src/provider/index.ts';
import type { RunningProvider } from '../../src/provider/index.ts';
import { testServerExecutable } from '../../src/dev/temporal-tools.ts';
import { createWorker } from '../../src/worker/worker.ts';

export interface TimeSkipping {
  env: TestWorkflowEnvironment;
  provider: RunningProvider;
  store: ResultStore;
  /** A fresh worker on `taskQueue` (a Worker runs once); `overrides` go to its WorkerOptions. */
  worker(taskQueue: string, overrides?: Partial<WorkerOptions>): Promise<Worker>;
  close(): Promise<void>;
}

/** Options of {@link createTimeSkipping}. */
export interface TimeSkippingOptions {
  /**
   * The provider's clock follows the test server's skipped time: before each request an
   * activity sends, the clock is set to the server's current time, so a provider batch that
   * stays in progress for hours ends when the workflow's timers say hours have passed.
   */
  providerOnServerClock?: boolean;
}

export async function createTimeSkipping(opts: TimeSkippingOptions = {}): Promise<TimeSkipping> {
  const env = await TestWorkflowEnvironment.createTimeSkipping({ server: { executable: testServerExecutable() } });
  await registerSearchAttributes(env.connection, 'default');
  let serverNow = Date.now();
  const provider = await startProvider({ port: 0, profile: 'none', latencyScale: 0, ...(opts.providerOnServerClock ? { now: () => serverNow } : {}) });
  const syncedFetch: typeof fetch = async (input, init) => {
    serverNow = await env.currentTimeMs();
    return fetch(input, init);
  };
  const dir = mkdtempSync(join(tmpdir(), 'steadfast-ts-'));
  const store = await openStore({ dbPath: join(dir, 'r.db') });
  return {
    env,
    provider,
    store,
    worker: (taskQueue, overrides = {}) => {
      const config = loadConfig({ ...process.env, STEADFAST_TASK_QUEUE: taskQueue, STEADFAST_SIMULATED_PROVIDER_URL: provider.url, DATABASE_URL: '' });
      return createWorker({
        connection: env.nativeConnection,
        config,
        deps: { store, simulatedProviderUrl: provider.url, ...(opts.providerOnServerClock ? { fetch: syncedFetch } : {}) },
        workflowBundle: { codePath: inject('workflowBundlePath') },
        overrides: { shutdownGraceTime: '1 s', ...overrides },
      });
    },
    async close() {
      await store.close();
      await provider.close();
      await env.teardown();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
