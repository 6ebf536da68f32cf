/**
 * The steadfast CLI as users run it: `node src/client/cli.ts ...` in a child
 * process, asynchronously (a worker in the test process must keep polling).
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { Harness } from './harness.ts';

export const CLI = join(import.meta.dirname, '..', '..', 'src', 'client', 'cli.ts');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI with `env` added to this process's environment. */
export function runCli(args: readonly string[], env: Record<string, string>, cwd?: string): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The environment that points the CLI at a harness: its server, task queue and SQLite store. */
export function harnessEnv(h: Harness): Record<string, string> {
  return { TEMPORAL_ADDRESS: h.address, TEMPORAL_NAMESPACE: h.config.namespace, STEADFAST_TASK_QUEUE: h.taskQueue, STEADFAST_DB_PATH: h.config.dbPath, DATABASE_URL: '' };
}
