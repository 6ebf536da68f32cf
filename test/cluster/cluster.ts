/** Helpers for the cluster suite: drive scripts/cluster.sh and read what it knows. */
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

export const clusterScript = join(import.meta.dirname, '..', '..', 'scripts', 'cluster.sh');
const run = promisify(execFile);

/** The cluster's four services and their pids (`scripts/cluster.sh status`). */
export async function clusterStatus(): Promise<Record<string, number | null>> {
  const { stdout } = await run('bash', [clusterScript, 'status']).catch((err: { stdout?: string }) => ({ stdout: err.stdout ?? '' }));
  const out: Record<string, number | null> = {};
  for (const line of stdout.trim().split('\n')) {
    const m = /^(\S+) (running pid (\d+)|stopped)/.exec(line);
    if (m) out[m[1]!] = m[3] ? Number(m[3]) : null;
  }
  return out;
}

/** SIGKILL one service (no clean shutdown: its in-memory state is gone). */
export async function killService(service: string): Promise<void> {
  await run('bash', [clusterScript, 'kill', service]);
}

/** Starts one service again and waits until it serves its gRPC port. */
export async function startService(service: string): Promise<void> {
  await run('bash', [clusterScript, 'start-service', service], { timeout: 120_000 });
}

/** PostgreSQL port of the cluster's persistence. */
export const clusterPgPort = Number(process.env.STEADFAST_CLUSTER_PG_PORT ?? 54350);

/** Writes a run's figures to bench-results/<name>-<time>.json (ignored by git) for docs/benchmarks.md. */
export function writeFigures(name: string, figures: object): string {
  const dir = join(import.meta.dirname, '..', '..', 'bench-results');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(path, `${JSON.stringify(figures, null, 2)}\n`);
  return path;
}
