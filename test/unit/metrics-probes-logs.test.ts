/**
 * The probe server and readiness rules on a fake worker, and the JSON logger:
 * item context derived from workflow ids, the activity interceptor's ids, and
 * secrets scrubbed from messages and metadata.
 */
import { PassThrough } from 'node:stream';
import type { NativeConnection, Worker } from '@temporalio/worker';
import { afterEach, describe, expect, it } from 'vitest';
import { WorkerHealth, startHealthServer } from '../../src/worker/health.ts';
import type { HealthServer } from '../../src/worker/health.ts';
import { activityLogContext, pinoLogger, withItemContext } from '../../src/worker/logger.ts';

/** A stand-in for a Worker: only what the probes read. */
function fakeWorker(state: { run: string; wf?: string; act?: string }): Worker {
  return {
    getState: () => state.run,
    getStatus: () => ({ runState: state.run, workflowPollerState: state.wf ?? 'POLLING', activityPollerState: state.act ?? 'POLLING' }),
    options: { taskQueue: 'tq-1' },
  } as unknown as Worker;
}
function fakeConnection(answer: { ok: boolean }): NativeConnection {
  return {
    withDeadline: (_d: number, fn: () => Promise<unknown>) => fn(),
    workflowService: { getSystemInfo: async () => (answer.ok ? {} : Promise.reject(new Error('14 UNAVAILABLE: connection refused'))) },
  } as unknown as NativeConnection;
}

describe('WorkerHealth', () => {
  it('is live but not ready before the worker exists, with the connection error as reason', () => {
    const h = new WorkerHealth();
    expect(h.live()).toMatchObject({ ok: true, state: 'STARTING' });
    expect(h.ready()).toMatchObject({ ok: false, state: 'STARTING', reason: 'connecting to Temporal' });
    h.connectError = 'connection refused';
    expect(h.ready().reason).toBe('not connected to Temporal: connection refused');
  });

  it('is ready only while RUNNING with both pollers polling and the server answering', async () => {
    let now = 1_000_000;
    const h = new WorkerHealth({ now: () => now, staleAfterMs: 15_000 });
    const state = { run: 'INITIALIZED' };
    const server = { ok: true };
    h.attach(fakeWorker(state), fakeConnection(server));
    expect(h.ready()).toMatchObject({ ok: false, reason: 'worker is INITIALIZED' });
    state.run = 'RUNNING';
    expect(h.ready()).toEqual({ ok: true, state: 'RUNNING', reason: 'polling task queue tq-1' });

    // The server stops answering: ready until the last good answer is stale.
    server.ok = false;
    now += 10_000;
    await h.checkServer();
    expect(h.ready().ok).toBe(true);
    now += 6_000;
    expect(h.ready()).toMatchObject({ ok: false, reason: 'Temporal server unreachable: 14 UNAVAILABLE: connection refused' });
    server.ok = true;
    await h.checkServer();
    expect(h.ready().ok).toBe(true);

    h.markStopping('received SIGTERM; draining');
    expect(h.ready()).toMatchObject({ ok: false, state: 'RUNNING', reason: 'received SIGTERM; draining' });
    expect(h.live().ok).toBe(true);
    h.close();
  });

  it('is not ready when a poller failed, and not live when the worker failed', () => {
    const h = new WorkerHealth();
    const state = { run: 'RUNNING', act: 'FAILED' };
    h.attach(fakeWorker(state), fakeConnection({ ok: true }));
    expect(h.ready()).toMatchObject({ ok: false, reason: 'pollers: workflow POLLING, activity FAILED' });
    state.run = 'FAILED';
    expect(h.live()).toMatchObject({ ok: false, state: 'FAILED' });
    h.close();
  });
});

describe('health server', () => {
  let server: HealthServer | undefined;
  afterEach(async () => server?.close());

  it('serves /livez and /readyz with 200 or 503 and a JSON reason; 404 elsewhere', async () => {
    const probe = { live: { ok: true, state: 'RUNNING', reason: 'process up' }, ready: { ok: false, state: 'DRAINING', reason: 'received SIGTERM; draining' } };
    server = await startHealthServer({ port: 0, host: '127.0.0.1', health: { live: () => probe.live, ready: () => probe.ready } });
    const get = async (path: string) => {
      const r = await fetch(`http://127.0.0.1:${server!.port}${path}`);
      return { status: r.status, body: (await r.json()) as unknown };
    };
    expect(await get('/livez')).toEqual({ status: 200, body: { status: 'live', state: 'RUNNING', reason: 'process up' } });
    expect(await get('/healthz')).toMatchObject({ status: 200 });
    expect(await get('/readyz')).toEqual({ status: 503, body: { status: 'not_ready', state: 'DRAINING', reason: 'received SIGTERM; draining' } });
    probe.ready = { ok: true, state: 'RUNNING', reason: 'polling task queue q' };
    expect(await get('/readyz?verbose')).toEqual({ status: 200, body: { status: 'ready', state: 'RUNNING', reason: 'polling task queue q' } });
    expect((await get('/metrics')).status).toBe(404);
    expect((await fetch(`http://127.0.0.1:${server.port}/readyz`, { method: 'POST' })).status).toBe(405);
  });
});

describe('JSON logs', () => {
  function capture(): { logger: ReturnType<typeof pinoLogger>; lines: () => Record<string, unknown>[] } {
    const out = new PassThrough();
    const chunks: string[] = [];
    out.on('data', (c: Buffer) => chunks.push(c.toString('utf8')));
    const logger = pinoLogger('debug', out);
    return {
      logger,
      lines: () =>
        chunks
          .join('')
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as Record<string, unknown>),
    };
  }

  it('adds batchId and itemId from the workflow context of item and batch workflows', () => {
    expect(withItemContext({ workflowId: 'b-1/item-7', workflowType: 'itemPipeline' })).toMatchObject({ batchId: 'b-1', itemId: 'item-7' });
    expect(withItemContext({ workflowId: 'b-1/x/y', workflowType: 'itemPipeline' })).toMatchObject({ batchId: 'b-1', itemId: 'x/y' });
    expect(withItemContext({ workflowId: 'b-1', workflowType: 'batchPipeline' })).toEqual({ workflowId: 'b-1', workflowType: 'batchPipeline', batchId: 'b-1' });
    // Ids given explicitly (by the activity interceptor) win.
    expect(withItemContext({ workflowId: 'wf', workflowType: 'batchPipeline', batchId: 'real', itemId: 'i' })).toMatchObject({ batchId: 'real', itemId: 'i' });
    expect(withItemContext({ message: 'no workflow' })).toEqual({ message: 'no workflow' });
  });

  it('writes one JSON object per line with level, message, workflow/activity context and the ids', () => {
    const { logger, lines } = capture();
    logger.warn('llm call failed', { sdkComponent: 'activity', workflowId: 'b9/i3', workflowType: 'itemPipeline', activityType: 'callLlm', attempt: 2, type: 'RateLimited' });
    logger.info('review timed out', { sdkComponent: 'workflow', workflowId: 'b9', workflowType: 'batchPipeline', runId: 'r' });
    const [a, b] = lines();
    expect(a).toMatchObject({
      level: 40,
      msg: 'llm call failed',
      service: 'steadfast',
      batchId: 'b9',
      itemId: 'i3',
      workflowId: 'b9/i3',
      activityType: 'callLlm',
      attempt: 2,
      type: 'RateLimited',
    });
    expect(b).toMatchObject({ level: 30, msg: 'review timed out', batchId: 'b9', workflowType: 'batchPipeline' });
    expect(typeof a!['time']).toBe('number');
  });

  it('scrubs API keys from environment variables, auth headers and errors', () => {
    const key = 'sk-test-SECRET-unit-0123456789';
    process.env['STEADFAST_UNIT_API_KEY'] = key;
    try {
      const { logger, lines } = capture();
      logger.error(`provider said: Incorrect API key provided: ${key}`, { error: new Error(`401 for key ${key}`), headers: { authorization: `Bearer ${key}` }, apiKey: key });
      logger.info('plain', { nested: { authorization: 'Bearer abcdefghijkl' } });
      const text = lines()
        .map((l) => JSON.stringify(l))
        .join('\n');
      expect(text).not.toContain(key);
      expect(text).not.toContain('abcdefghijkl');
      expect(text).toContain('[redacted]');
    } finally {
      delete process.env['STEADFAST_UNIT_API_KEY'];
    }
  });

  it("the activity interceptor puts the input's batchId and itemId on every activity log line", async () => {
    const interceptors = activityLogContext({} as never);
    let seen: Record<string, unknown> = {};
    await interceptors.inbound!.execute!({ args: [{ batchId: 'b7', itemId: 'i2', tier: 0 }], headers: {} }, async () => {
      seen = interceptors.outbound!.getLogAttributes!({ activityType: 'callLlm' }, (a) => a);
      return null;
    });
    expect(seen).toEqual({ activityType: 'callLlm', batchId: 'b7', itemId: 'i2' });
  });
});
