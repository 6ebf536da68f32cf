/**
 * Liveness and readiness for Kubernetes probes, on a small node:http
 * server of the worker (`STEADFAST_HEALTH_PORT`, default 8081; 0 disables):
 *
 * - `GET /livez`: 200 while the process serves requests and the worker has not
 *   failed (a failed worker makes the process exit anyway); 503 otherwise.
 * - `GET /readyz`: 200 only while the worker polls its task queue: it is
 *   RUNNING, its workflow and activity pollers are POLLING, no shutdown has
 *   begun, and the Temporal server answered a health call recently. 503 (with
 *   the reason) before the worker connected, while Temporal is unreachable, and
 *   from the moment SIGTERM starts the drain.
 *
 * Bodies are JSON (`{ "status": "ready" | "not_ready" | "live" | "failed", "reason", "state" }`).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { NativeConnection, Worker } from '@temporalio/worker';
import { errorMessage } from '../shared/failures.ts';

/** What a probe reports. */
export interface ProbeResult {
  ok: boolean;
  /** The worker's state (`INITIALIZED`, `RUNNING`, `DRAINING`, ...), or `STARTING` before there is one. */
  state: string;
  reason: string;
}

/** Options of {@link WorkerHealth}. */
export interface WorkerHealthOptions {
  /** How often the Temporal server is asked for its system info. @default 5000 (ms) */
  checkIntervalMs?: number;
  /** Readiness is lost when the last successful server call is older than this. @default 15000 (ms) */
  staleAfterMs?: number;
  /** Deadline of each server call. @default 3000 (ms) */
  checkTimeoutMs?: number;
  /** @default Date.now */
  now?: () => number;
}

const HEALTH_DEFAULTS = { checkIntervalMs: 5_000, staleAfterMs: 15_000, checkTimeoutMs: 3_000 };

/** The worker's health, as the probes see it. */
export class WorkerHealth {
  private readonly o: typeof HEALTH_DEFAULTS & { now: () => number };
  private worker: Worker | null = null;
  private connection: NativeConnection | null = null;
  private stopping: string | null = null;
  private lastServerOk: number | null = null;
  private lastServerError: string | null = null;
  private timer: ReturnType<typeof setInterval> | null = null;
  /** Why the worker is not connected yet (the last connection error), for /readyz. */
  connectError: string | null = null;
  /** Why the results store did not open yet (the last error), for /readyz. */
  storeError: string | null = null;

  constructor(options: WorkerHealthOptions = {}) {
    this.o = { ...HEALTH_DEFAULTS, now: Date.now, ...options };
  }

  /** The worker exists and its connection just succeeded; from now on the server is checked in the background. */
  attach(worker: Worker, connection: NativeConnection): void {
    this.worker = worker;
    this.connection = connection;
    this.connectError = null;
    this.lastServerOk = this.o.now();
    this.timer = setInterval(() => void this.checkServer(), this.o.checkIntervalMs);
    this.timer.unref();
  }

  /** A shutdown began (SIGTERM): not ready from now on, even before the worker changes state. */
  markStopping(reason = 'shutting down'): void {
    this.stopping ??= reason;
  }

  /** One server call; its outcome feeds readiness. */
  async checkServer(): Promise<void> {
    const c = this.connection;
    if (!c) return;
    try {
      await c.withDeadline(this.o.now() + this.o.checkTimeoutMs, () => c.workflowService.getSystemInfo({}));
      this.lastServerOk = this.o.now();
      this.lastServerError = null;
    } catch (err: unknown) {
      this.lastServerError = errorMessage(err);
    }
  }

  live(): ProbeResult {
    const state = this.worker?.getState() ?? 'STARTING';
    if (state === 'FAILED') return { ok: false, state, reason: 'the worker failed' };
    return { ok: true, state, reason: 'process up' };
  }

  ready(): ProbeResult {
    const w = this.worker;
    if (!w) {
      if (this.connectError) return { ok: false, state: 'STARTING', reason: `not connected to Temporal: ${this.connectError}` };
      if (this.storeError) return { ok: false, state: 'STARTING', reason: `results store unavailable: ${this.storeError}` };
      return { ok: false, state: 'STARTING', reason: 'connecting to Temporal' };
    }
    const state = w.getState();
    if (this.stopping) return { ok: false, state, reason: this.stopping };
    if (state !== 'RUNNING') return { ok: false, state, reason: `worker is ${state}` };
    const status = w.getStatus();
    if (status.workflowPollerState !== 'POLLING' || status.activityPollerState !== 'POLLING') {
      return { ok: false, state, reason: `pollers: workflow ${status.workflowPollerState}, activity ${status.activityPollerState}` };
    }
    if (this.lastServerOk === null || this.o.now() - this.lastServerOk > this.o.staleAfterMs) {
      return { ok: false, state, reason: `Temporal server unreachable${this.lastServerError ? `: ${this.lastServerError}` : ''}` };
    }
    return { ok: true, state, reason: `polling task queue ${w.options.taskQueue}` };
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}

/** A started health server. */
export interface HealthServer {
  port: number;
  close(): Promise<void>;
}

/** Serves `/livez` and `/readyz` (and `/healthz` as an alias of `/livez`) for `health`, on `host` (default loopback). */
export async function startHealthServer(opts: { port: number; host?: string; health: Pick<WorkerHealth, 'live' | 'ready'> }): Promise<HealthServer> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const probe = path === '/livez' || path === '/healthz' ? opts.health.live() : path === '/readyz' ? opts.health.ready() : null;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (!probe) {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'not found; try /livez or /readyz' }));
      return;
    }
    const status = path === '/readyz' ? (probe.ok ? 'ready' : 'not_ready') : probe.ok ? 'live' : 'failed';
    const body = JSON.stringify({ status, state: probe.state, reason: probe.reason });
    res.writeHead(probe.ok ? 200 : 503, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  // Probes must never hold the process open or wait behind keep-alive sockets at shutdown.
  server.keepAliveTimeout = 1_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host ?? '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
