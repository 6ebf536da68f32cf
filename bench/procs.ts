/**
 * The processes a benchmark or chaos run needs, each a child of the harness so
 * it can be measured (RSS from /proc) and killed by pid: a Temporal dev server
 * with persisted state, the fault-injecting provider, and Steadfast workers
 * running `src/worker/worker.ts` exactly as `npm run worker` does.
 */
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { cpSync, createWriteStream, mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { WriteStream } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Connection } from '@temporalio/client';
import { devServerArgs } from '../src/dev/dev-server.ts';
import { temporalCliPath } from '../src/dev/temporal-tools.ts';
import type { ProviderStats } from '../src/provider/index.ts';
import { CONNECTION_VARIABLES } from '../src/common/connection.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A free TCP port on 127.0.0.1 (never 7233/8233/8787: those belong to the demo). */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = createServer();
      srv.once('error', reject);
      srv.listen(0, '127.0.0.1', () => {
        const p = (srv.address() as { port: number }).port;
        srv.close(() => resolve(p));
      });
    });
    if (![7233, 8233, 8787].includes(port)) return port;
  }
}

/** A child process whose output goes to a log file, with a promise of its exit. */
export interface Proc {
  child: ChildProcess;
  pid: number;
  exited: Promise<number | null>;
  /** Sends the signal and waits for the exit (SIGKILL after `graceMs`). */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
}

interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  log: WriteStream;
  /** Resolves once a line of stdout or stderr matches; the match is returned. */
  ready?: RegExp;
  readyTimeoutMs?: number;
}

/** Every child still running when this process exits is killed, so a failed run leaves nothing behind. */
const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});
// A signal would end this process without 'exit' handlers: turn it into an exit.
for (const sig of ['SIGTERM', 'SIGHUP'] as const) process.once(sig, () => process.exit(128 + (sig === 'SIGTERM' ? 15 : 1)));

function spawnProc(cmd: string, args: string[], o: SpawnOptions): { proc: Proc; ready: Promise<RegExpExecArray | null> } {
  const child = spawn(cmd, args, { cwd: o.cwd ?? ROOT, env: o.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code, sig) => resolve(code ?? (sig ? -1 : null))));
  let seen = '';
  const ready = new Promise<RegExpExecArray | null>((resolve, reject) => {
    if (!o.ready) return resolve(null);
    const timer = setTimeout(() => reject(new Error(`${cmd} ${args.slice(0, 2).join(' ')}: not ready within ${o.readyTimeoutMs ?? 120_000} ms`)), o.readyTimeoutMs ?? 120_000);
    const onData = (c: Buffer): void => {
      if (seen.length < 65_536) seen += c.toString();
      const m = o.ready!.exec(seen);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${cmd} ${args.slice(0, 2).join(' ')} exited (${code}) before it was ready:\n${seen.slice(-2000)}`));
    });
  });
  ready.catch(() => undefined);
  child.stdout?.pipe(o.log, { end: false });
  child.stderr?.pipe(o.log, { end: false });
  const proc: Proc = {
    child,
    pid: child.pid ?? -1,
    exited,
    async stop(signal = 'SIGTERM', graceMs = 15_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(t);
    },
  };
  return { proc, ready };
}

export function openLog(path: string): WriteStream {
  return createWriteStream(path, { flags: 'a' });
}

/** True when a Temporal frontend answers at `address`. */
export async function temporalUp(address: string, timeoutMs = 1_000): Promise<boolean> {
  try {
    const c = await Connection.connect({ address, connectTimeout: timeoutMs });
    try {
      await c.healthService.check({});
      return true;
    } finally {
      await c.close();
    }
  } catch {
    return false;
  }
}

export interface DevServer {
  address: string;
  port: number;
  dbFile: string;
  proc: Proc;
  /** Stops the server (SIGTERM or SIGKILL) and starts it again on the same port and database file. */
  restart(signal?: NodeJS.Signals): Promise<{ downMs: number }>;
  stop(): Promise<void>;
}

export interface DevServerOptions {
  dbFile: string;
  logFile: string;
  port?: number;
  /** `--dynamic-config-value` entries, e.g. `limit.historyCount.suggestContinueAsNew=4096`. */
  dynamicConfig?: string[];
  /** More arguments for `temporal server start-dev` (experiments, e.g. other SQLite pragmas). */
  extraArgs?: string[];
}

/** Starts `temporal server start-dev` with Steadfast's arguments (WAL pragmas, search attributes), headless. */
export async function startDevServer(o: DevServerOptions): Promise<DevServer> {
  const cli = temporalCliPath();
  if (!cli) throw new Error('no `temporal` CLI: source .tools/env.sh (or run scripts/setup.sh) first');
  const port = o.port ?? (await freePort());
  const uiPort = await freePort();
  const args = [...devServerArgs({ port, uiPort, dbFile: o.dbFile, logLevel: 'error' }), '--headless'];
  for (const d of o.dynamicConfig ?? []) args.push('--dynamic-config-value', d);
  args.push(...(o.extraArgs ?? []));
  const log = openLog(o.logFile);
  const address = `127.0.0.1:${port}`;
  const launch = async (): Promise<Proc> => {
    const { proc } = spawnProc(cli, args, { log });
    const deadline = Date.now() + 90_000;
    while (!(await temporalUp(address))) {
      if (proc.child.exitCode !== null) throw new Error(`the dev server exited with ${proc.child.exitCode}; see ${o.logFile}`);
      if (Date.now() > deadline) throw new Error(`the dev server did not answer within 90 s; see ${o.logFile}`);
      await sleep(250);
    }
    return proc;
  };
  const server: DevServer = {
    address,
    port,
    dbFile: o.dbFile,
    proc: await launch(),
    async restart(signal = 'SIGTERM') {
      const t0 = Date.now();
      await server.proc.stop(signal, 20_000);
      server.proc = await launch();
      return { downMs: Date.now() - t0 };
    },
    stop: () => server.proc.stop('SIGTERM', 10_000),
  };
  return server;
}

export interface ProviderProc {
  url: string;
  proc: Proc;
  stats(): Promise<ProviderStats>;
  reset(): Promise<void>;
  setProfile(profile: string | object): Promise<void>;
  stop(): Promise<void>;
}

export interface ProviderProcOptions {
  profile?: string;
  seed?: number;
  latencyMs?: number;
  jitterMs?: number;
  logFile: string;
}

async function admin(url: string, path: string, body?: string): Promise<unknown> {
  const res = await fetch(`${url}${path}`, body === undefined ? {} : { method: 'POST', body });
  const out: unknown = await res.json();
  if (!res.ok) throw new Error(`provider ${path}: ${res.status} ${JSON.stringify(out)}`);
  return out;
}

/** Starts the fault-injecting provider in its own process (bench/provider-child.ts). */
export async function startProviderProc(o: ProviderProcOptions): Promise<ProviderProc> {
  const args = [
    fileURLToPath(new URL('./provider-child.ts', import.meta.url)),
    '--profile',
    o.profile ?? 'none',
    '--seed',
    String(o.seed ?? 1),
    '--latency-ms',
    String(o.latencyMs ?? 0),
    '--jitter-ms',
    String(o.jitterMs ?? 0),
  ];
  const { proc, ready } = spawnProc(process.execPath, args, { log: openLog(o.logFile), ready: /listening on (\S+)/, readyTimeoutMs: 30_000 });
  const url = (await ready)?.[1] ?? '';
  return {
    url,
    proc,
    stats: async () => (await admin(url, '/admin/stats')) as ProviderStats,
    reset: async () => void (await admin(url, '/admin/reset', '')),
    setProfile: async (p) => void (await admin(url, '/admin/profile', typeof p === 'string' ? p : JSON.stringify(p))),
    stop: () => proc.stop('SIGTERM', 5_000),
  };
}

export interface WorkerProc {
  proc: Proc;
  pid: number;
  startedAt: number;
  /** From spawn to polling (connect, bundle the workflows, create the worker), in ms. */
  readyMs: number;
  /** Peak resident set size so far (VmHWM), in bytes; null once the process is gone. */
  rssPeak(): number | null;
  /** Current resident set size (VmRSS), in bytes. */
  rss(): number | null;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export interface WorkerProcOptions {
  address: string;
  taskQueue: string;
  dbPath: string;
  providerUrl: string;
  logFile: string;
  maxActivities?: number;
  env?: NodeJS.ProcessEnv;
  /** Script to run instead of src/worker/worker.ts (experiments only). */
  entry?: string;
  /** Run the worker from this copy of the code ({@link snapshotCode}) instead of the working tree. */
  codeRoot?: string;
}

/** A size field of /proc/<pid>/status in bytes (VmHWM = peak RSS); null when unreadable. */
export function procStatusBytes(pid: number, field: 'VmHWM' | 'VmRSS'): number | null {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m?.[1] ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** Starts `node src/worker/worker.ts` (what `npm run worker` runs) and waits until it polls. */
export async function startWorkerProc(o: WorkerProcOptions): Promise<WorkerProc> {
  // The workers talk to the bench's own plaintext dev server: none of the user's Temporal
  // connection settings (API key, TLS, a temporal.toml profile) may reach them.
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !(CONNECTION_VARIABLES as readonly string[]).includes(k)));
  const env: NodeJS.ProcessEnv = {
    ...inherited,
    TEMPORAL_CONFIG_FILE: '/dev/null',
    TEMPORAL_ADDRESS: o.address,
    STEADFAST_TASK_QUEUE: o.taskQueue,
    STEADFAST_DB_PATH: o.dbPath,
    DATABASE_URL: '',
    STEADFAST_SIMULATED_PROVIDER_URL: o.providerUrl,
    STEADFAST_METRICS_PORT: '0',
    // Several workers share this host: no fixed probe port.
    STEADFAST_HEALTH_PORT: '0',
    STEADFAST_LOG_LEVEL: process.env.STEADFAST_LOG_LEVEL ?? 'warn',
    STEADFAST_MAX_ACTIVITIES: String(o.maxActivities ?? 200),
    ...o.env,
  };
  const log = openLog(o.logFile);
  const root = o.codeRoot ?? ROOT;
  const spawnedAt = Date.now();
  const { proc, ready } = spawnProc(process.execPath, [o.entry ?? join(root, 'src', 'worker', 'worker.ts')], {
    env,
    cwd: root,
    log,
    ready: /worker polling task queue/,
    readyTimeoutMs: 120_000,
  });
  await ready;
  return {
    proc,
    pid: proc.pid,
    startedAt: Date.now(),
    readyMs: Date.now() - spawnedAt,
    rssPeak: () => procStatusBytes(proc.pid, 'VmHWM'),
    rss: () => procStatusBytes(proc.pid, 'VmRSS'),
    stop: (signal = 'SIGTERM') => proc.stop(signal, 15_000),
  };
}

/** The code a run measures: the commit, and whether the working tree differed from it. */
export interface CodeSnapshot {
  root: string;
  commit: string;
  dirty: string[];
}

/**
 * Copies the worker's code (src, workflows, activities, migrations) to `dest`,
 * with node_modules linked, so that workers restarted during a long run keep
 * running the code the run started with even while the working tree changes
 * (a changed workflow would otherwise fail replay with a nondeterminism error).
 */
export function snapshotCode(dest: string): CodeSnapshot {
  mkdirSync(dest, { recursive: true });
  for (const d of ['src', 'workflows', 'activities', 'migrations']) cpSync(join(ROOT, d), join(dest, d), { recursive: true });
  for (const f of ['package.json', 'tsconfig.json']) cpSync(join(ROOT, f), join(dest, f));
  symlinkSync(join(ROOT, 'node_modules'), join(dest, 'node_modules'), 'dir');
  const git = (...a: string[]): string => {
    try {
      return execFileSync('git', a, { cwd: ROOT, encoding: 'utf8' }).trim();
    } catch {
      return '';
    }
  };
  const dirty = git('status', '--porcelain', '--', 'src', 'workflows', 'activities', 'migrations').split('\n').filter(Boolean);
  return { root: dest, commit: git('rev-parse', '--short', 'HEAD') || 'unknown', dirty };
}

/** CPU time (user + system) a process has used so far, in seconds; null when it is gone. */
export function procCpuSeconds(pid: number): number | null {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    // utime and stime are fields 14 and 15 of stat (11 and 12 after the command), in clock ticks (100/s on Linux).
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return null;
  }
}
