/**
 * Once per test run: a real Temporal dev server (the binary from scripts/setup.sh,
 * never a mock), the workflows bundled once (a bad import in workflows/ fails here),
 * and a throwaway PostgreSQL when the machine has one (CI always does).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode } from '@temporalio/worker';
import type { TestProject } from 'vitest/node';
import { devServerExecutable } from '../src/dev/temporal-tools.ts';
import { WORKFLOWS_PATH } from '../src/worker/worker.ts';
import { ALL_SEARCH_ATTRIBUTES } from '../src/shared/search-attributes.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    temporalAddress: string;
    workflowBundlePath: string;
    databaseUrl: string;
  }
}

function startPostgres(): string {
  if (process.env.STEADFAST_TEST_DATABASE_URL) return process.env.STEADFAST_TEST_DATABASE_URL;
  const script = join(import.meta.dirname, '..', 'scripts', 'postgres.sh');
  if (!existsSync(script)) return '';
  try {
    return (
      execFileSync('bash', [script, 'start'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
        .trim()
        .split('\n')
        .pop() ?? ''
    );
  } catch (err) {
    if (process.env.CI) throw err;
    console.warn('global-setup: no PostgreSQL here; PostgreSQL tests are skipped');
    return '';
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const env = await TestWorkflowEnvironment.createLocal({
    server: {
      executable: devServerExecutable(),
      ip: '127.0.0.1',
      searchAttributes: ALL_SEARCH_ATTRIBUTES,
      // Small histories suggest continue-as-new early, so tests exercise it.
      extraArgs: ['--dynamic-config-value', 'limit.historyCount.suggestContinueAsNew=300', '--sqlite-pragma', 'journal_mode=wal', '--sqlite-pragma', 'synchronous=normal'],
    },
  });
  const { code } = await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: { info() {}, warn: console.warn, error: console.error, debug() {}, trace() {}, log() {} } });
  const dir = mkdtempSync(join(tmpdir(), 'steadfast-bundle-'));
  const bundlePath = join(dir, 'workflows.js');
  writeFileSync(bundlePath, code);

  project.provide('temporalAddress', env.address);
  project.provide('workflowBundlePath', bundlePath);
  project.provide('databaseUrl', startPostgres());
  return async () => {
    await env.teardown();
    // CI leaves no server behind; locally the throwaway cluster stays up for the next run.
    if (process.env.CI && !process.env.STEADFAST_TEST_DATABASE_URL) {
      execFileSync('bash', [join(import.meta.dirname, '..', 'scripts', 'postgres.sh'), 'stop'], { stdio: 'ignore' });
    }
  };
}
