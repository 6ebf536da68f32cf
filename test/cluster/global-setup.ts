/**
 * Once per `npm run test:cluster`: the multi-service Temporal cluster of
 * scripts/cluster.sh (the server built from its Go module, PostgreSQL, frontend,
 * history, matching and worker as separate processes) and the workflows bundled
 * once. Provides the same keys as test/global-setup.ts, so test/support/harness.ts
 * runs unchanged against the cluster.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import type { TestProject } from 'vitest/node';
import { WORKFLOWS_PATH } from '../../src/worker/worker.ts';
import { clusterScript } from './cluster.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    temporalAddress: string;
    workflowBundlePath: string;
    databaseUrl: string;
    clusterStartMs: number;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const t0 = Date.now();
  const out = execFileSync('bash', [clusterScript, 'start'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const address = out.trim().split('\n').pop()!;
  const clusterStartMs = Date.now() - t0;
  console.log(`cluster: ${address} up in ${(clusterStartMs / 1000).toFixed(1)} s`);

  const { code } = await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: { info() {}, warn: console.warn, error: console.error, debug() {}, trace() {}, log() {} } });
  const bundlePath = join(mkdtempSync(join(tmpdir(), 'steadfast-bundle-')), 'workflows.js');
  writeFileSync(bundlePath, code);

  project.provide('temporalAddress', address);
  project.provide('workflowBundlePath', bundlePath);
  project.provide('databaseUrl', '');
  project.provide('clusterStartMs', clusterStartMs);
  return async () => {
    if (!process.env.STEADFAST_CLUSTER_KEEP) execFileSync('bash', [clusterScript, 'stop'], { stdio: 'inherit' });
  };
}
