/**
 * Reporting shared by the benchmark and the chaos run: the machine a figure was
 * measured on, a plain-text table, and the JSON file in bench-results/.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, freemem, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { temporalCliPath } from '../src/dev/temporal-tools.ts';

export const RESULTS_DIR = fileURLToPath(new URL('../bench-results/', import.meta.url));

export interface Machine {
  cpus: number;
  cpuModel: string;
  memTotalGiB: number;
  memFreeGiB: number;
  node: string;
  temporal: string;
  platform: string;
  /** Other busy processes at start (load average), so a slow figure can be read in context. */
  loadAvg1m: number;
}

export function machine(): Machine {
  let temporal = 'unknown';
  try {
    const cli = temporalCliPath();
    if (cli) temporal = execFileSync(cli, ['--version'], { encoding: 'utf8' }).trim();
  } catch {
    // keep 'unknown'
  }
  let loadAvg1m = 0;
  try {
    loadAvg1m = Number(execFileSync('cat', ['/proc/loadavg'], { encoding: 'utf8' }).split(' ')[0]);
  } catch {
    // not Linux
  }
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memTotalGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    memFreeGiB: Math.round((freemem() / 2 ** 30) * 10) / 10,
    node: process.version,
    temporal,
    platform: `${process.platform} ${process.arch}`,
    loadAvg1m,
  };
}

/** Formats rows as an aligned text table; the first row is the header. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  const line = (r: string[]) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ');
  return [line(rows[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n');
}

/** Writes `bench-results/<name>-<timestamp>.json` and returns its path. */
export function writeResults(name: string, data: unknown): string {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '');
  const path = join(RESULTS_DIR, `${name}-${stamp}.json`);
  writeFileSync(path, `${JSON.stringify(data, null, 2)}\n`);
  return path;
}

export const fmt = {
  n: (x: number, digits = 1): string => (Number.isFinite(x) ? x.toFixed(digits) : '-'),
  pct: (x: number, digits = 1): string => (Number.isFinite(x) ? `${(x * 100).toFixed(digits)}%` : '-'),
  s: (ms: number): string => `${(ms / 1000).toFixed(1)} s`,
  mib: (bytes: number | null): string => (bytes === null ? '-' : `${(bytes / 2 ** 20).toFixed(0)} MiB`),
};
