/**
 * Observability end to end, with `node src/worker/worker.ts` as a child process (the Runtime
 * is a process singleton, so it is never installed inside vitest):
 *
 * - under the `flaky` profile, `/metrics` serves the SDK's metrics and ours, and
 *   our counters equal the provider's own admin counters (calls per model and per
 *   fault, tokens, cost);
 * - the review queue and circuit state come out as gauges;
 * - `/readyz` is 503 before the worker connects, 200 while it polls, 503 once
 *   SIGTERM starts the drain, while `/livez` stays 200;
 * - a key set in the worker's environment, echoed back by a provider, appears in
 *   no log line, history payload, error message or results row; the spec's
 *   secret field appears in no log line, error message or row (it is in the
 *   workflows' input, by design: docs/observability.md).
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { connect as connectNet, createServer as createNetServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { openStore } from '../../activities/index.ts';
import { METRICS } from '../../activities/metrics.ts';
import { parsePrometheus, sumBy } from '../../src/dev/prometheus-text.ts';
import type { Sample } from '../../src/dev/prometheus-text.ts';
import { startProvider } from '../../src/provider/index.ts';
import type { RunningProvider } from '../../src/provider/index.ts';
import type { BatchInputRaw, PipelineSpecInput } from '../../src/shared/spec.ts';
import type { batchPipeline } from '../../workflows/batch.ts';
import { testDatabaseUrl } from '../support/postgres.ts';

const example = JSON.parse(readFileSync('examples/batch.json', 'utf8')) as BatchInputRaw;
const dir = mkdtempSync(join(tmpdir(), 'steadfast-obs-'));
let connection: Connection;
let client: Client;

beforeAll(async () => {
  connection = await Connection.connect({ address: inject('temporalAddress') });
  client = new Client({ connection });
});
afterAll(async () => {
  await connection?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

/** `node src/worker/worker.ts` with its own task queue, SQLite file and ports; its output is kept. */
interface WorkerChild {
  proc: ChildProcess;
  taskQueue: string;
  dbPath: string;
  metricsPort: number;
  healthPort: number;
  output(): string;
  probe(path: '/livez' | '/readyz'): Promise<{ status: number; body: { status: string; state: string; reason: string } }>;
  scrape(): Promise<Sample[]>;
  waitReady(): Promise<void>;
  /** Sends `signal` and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  exited: Promise<number | null>;
}

async function spawnWorker(env: Record<string, string>): Promise<WorkerChild> {
  const taskQueue = `obs-${randomUUID()}`;
  const dbPath = join(dir, `${taskQueue}.db`);
  const metricsPort = await freePort();
  const healthPort = await freePort();
  const proc = spawn(process.execPath, ['src/worker/worker.ts'], {
    env: {
      ...process.env,
      TEMPORAL_ADDRESS: inject('temporalAddress'),
      STEADFAST_TASK_QUEUE: taskQueue,
      STEADFAST_DB_PATH: dbPath,
      DATABASE_URL: '',
      OPENAI_API_KEY: '',
      ANTHROPIC_API_KEY: '',
      STEADFAST_METRICS_PORT: String(metricsPort),
      STEADFAST_HEALTH_PORT: String(healthPort),
      STEADFAST_LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const chunks: string[] = [];
  proc.stdout!.on('data', (c: Buffer) => chunks.push(c.toString('utf8')));
  proc.stderr!.on('data', (c: Buffer) => chunks.push(c.toString('utf8')));
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  const base = `http://127.0.0.1:${healthPort}`;
  const child: WorkerChild = {
    proc,
    taskQueue,
    dbPath,
    metricsPort,
    healthPort,
    exited,
    output: () => chunks.join(''),
    async probe(path) {
      const r = await fetch(`${base}${path}`);
      return { status: r.status, body: (await r.json()) as { status: string; state: string; reason: string } };
    },
    scrape: async () => parsePrometheus(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()),
    async waitReady() {
      await until('the worker to be ready', async () => ((await child.probe('/readyz')).status === 200 ? true : undefined), 90_000);
    },
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode !== null) return proc.exitCode;
      proc.kill(signal);
      const timer = setTimeout(() => proc.kill('SIGKILL'), 45_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
  return child;
}

/** The example pipeline on the given tiers, with short timeouts and retries so faults heal fast. */
function pipelineWith(providers: PipelineSpecInput['providers'], over: Partial<PipelineSpecInput> = {}): PipelineSpecInput {
  return { ...example.pipeline, providers, retry: { maxAttempts: 4, initialInterval: '100ms', maxInterval: '500ms' }, batch: { concurrency: 50 }, ...over };
}

function startBatch(taskQueue: string, input: BatchInputRaw) {
  const batchId = `obs-${randomUUID().slice(0, 8)}`;
  return client.workflow.start<typeof batchPipeline>('batchPipeline', { taskQueue, workflowId: batchId, args: [{ ...input, batchId }] });
}

describe('a worker process under the flaky profile', () => {
  let provider: RunningProvider;
  let worker: WorkerChild;

  beforeAll(async () => {
    provider = await startProvider({ port: 0, profile: 'flaky', seed: 7, latencyScale: 0 });
    worker = await spawnWorker({ STEADFAST_SIMULATED_PROVIDER_URL: provider.url });
    await worker.waitReady();
  }, 120_000);
  afterAll(async () => {
    await worker?.stop('SIGKILL');
    await provider?.close();
  });

  it("serves /metrics whose counters equal the provider's own counters", async () => {
    const items = Array.from({ length: 200 }, (_, i) => ({ id: `t${i}`, customer: `Customer ${i}`, text: `Ticket ${i}: the export fails with code ${i * 7}.` }));
    // The tiers are priced like the provider's models, so our cost must equal its cost.
    const pipeline = pipelineWith(
      [
        // A hang costs the whole timeout; 3 s keeps a merely slow answer on a busy 2-core machine from timing out too.
        { name: 'primary', kind: 'openai', model: 'gpt-4o-mini', timeout: '3s', pricing: { inputPerMTok: 0.15, outputPerMTok: 0.6 } },
        { name: 'secondary', kind: 'anthropic', model: 'claude-haiku-4-5', timeout: '3s', pricing: { inputPerMTok: 1, outputPerMTok: 5 } },
      ],
      // On the fast path: a first call's fault is handed to the item's workflow, and the counters still add up.
      { batch: { concurrency: 50, fastPath: true } },
    );
    const handle = await startBatch(worker.taskQueue, { pipeline, items });

    // During the run: our count never runs ahead of the provider's (it counts requests on arrival).
    await until('80 provider requests', async () => (provider.stats().requests >= 80 ? true : undefined), 60_000);
    const during = sumBy(await worker.scrape(), METRICS.llmCalls.name)[''] ?? 0;
    expect(during).toBeGreaterThan(0);
    expect(during).toBeLessThanOrEqual(provider.stats().requests);

    const summary = await handle.result();
    expect(summary).toMatchObject({ total: 200, succeeded: 200, status: 'completed' });
    const stats = provider.stats();
    expect(stats.openHangs).toBe(0);
    const s = await worker.scrape();
    const calls = (where: Record<string, string> = {}) => sumBy(s, METRICS.llmCalls.name, undefined, where)[''] ?? 0;
    const fault = (k: string) => stats.byFault[k] ?? 0;

    // Every HTTP request the provider saw is one call in our counter, per model.
    expect(sumBy(s, METRICS.llmCalls.name, 'model')).toEqual(stats.byModel);
    expect(calls()).toBe(stats.requests);
    // The batch's attempts are the same calls (a failed tier's retries included).
    expect(summary.attempts).toBe(stats.requests);
    // The flaky profile injected each kind of fault: each maps to one outcome.
    for (const k of ['hang', 'rate_limit', 'overloaded']) expect(fault(k), k).toBeGreaterThan(0);
    expect(calls({ outcome: 'RateLimited' })).toBe(fault('rate_limit'));
    expect(calls({ outcome: 'Timeout' }) + calls({ outcome: 'Cancelled' })).toBe(fault('hang'));
    expect(calls({ outcome: 'ProviderUnavailable' }) + calls({ outcome: 'ProviderOverloaded' })).toBe(fault('overloaded'));
    expect(calls({ outcome: 'InvalidOutput' })).toBe(fault('bad_json') + fault('schema_violation'));
    expect(calls({ outcome: 'ok' })).toBe(stats.successes - fault('bad_json') - fault('schema_violation'));
    expect(stats.byStatus['429'] ?? 0).toBe(fault('rate_limit'));
    // Each transient failure was retried once (the third attempt never faults), and every retry counted.
    expect(sumBy(s, METRICS.llmRetries.name)['']).toBe(
      calls({ outcome: 'RateLimited' }) + calls({ outcome: 'Timeout' }) + calls({ outcome: 'ProviderUnavailable' }) + calls({ outcome: 'ProviderOverloaded' }),
    );
    // Tokens and money of every answered call, invalid answers included.
    expect(sumBy(s, METRICS.tokens.name, 'direction')).toEqual({ in: stats.tokens.input, out: stats.tokens.output });
    expect(sumBy(s, `${METRICS.llmCost.name}_sum`)['']).toBeCloseTo(stats.costUsd, 5);
    expect(sumBy(s, `${METRICS.llmCost.name}_count`)['']).toBe(stats.successes);

    // Items: one row each; what they cost; which recovered after an item-level failure.
    expect(sumBy(s, METRICS.items.name, 'status')).toEqual({ succeeded: 200 });
    expect(sumBy(s, METRICS.items.name, 'tier')).toEqual({ '0': 200 });
    expect(sumBy(s, `${METRICS.itemCost.name}_count`)['']).toBe(200);
    expect(sumBy(s, `${METRICS.itemCost.name}_sum`)['']).toBeCloseTo(summary.costUsd, 5);
    const recovered = sumBy(s, `${METRICS.itemRecovery.name}_count`)[''] ?? 0;
    expect(recovered).toBeGreaterThan(0);
    expect(recovered).toBeLessThanOrEqual(calls({ outcome: 'InvalidOutput' }));
    expect(s.filter((x) => x.name === `${METRICS.itemRecovery.name}_bucket`).length).toBeGreaterThan(5);

    // The SDK's own metrics share the endpoint, including every one the dashboard charts.
    const names = new Set(s.map((x) => x.name));
    for (const n of ['temporal_worker_task_slots_available', 'temporal_activity_execution_latency_bucket', 'temporal_workflow_completed', 'temporal_request'])
      expect(names, n).toContain(n);
    const dashboard = readFileSync('deploy/grafana/dashboards/steadfast.json', 'utf8');
    for (const m of dashboard.matchAll(/\b(temporal_[a-z_]+)/g)) expect(names, `dashboard metric ${m[1]}`).toContain(m[1]);
    const slots = s.find((x) => x.name === 'temporal_worker_task_slots_available' && x.labels['worker_type'] === 'ActivityWorker');
    expect(slots?.labels['task_queue']).toBe(worker.taskQueue);
    expect(s.some((x) => x.name === 'temporal_activity_schedule_to_start_latency_bucket' && x.labels['task_queue'] === worker.taskQueue)).toBe(true);
  }, 120_000);

  it('publishes the review queue and circuit state per provider as gauges', async () => {
    provider.setProfile('none');
    // Three items whose key is refused: AuthFailed feeds the breaker (threshold 2) and sends them to review.
    const items = ['a', 'b', 'c'].map((id) => ({ id, customer: 'Initech', text: `Ticket ${id} [[fault:auth]]` }));
    const pipeline = pipelineWith([{ name: 'guarded', kind: 'openai', model: 'gpt-4o', timeout: '2s' }], {
      circuitBreaker: { failureThreshold: 2, cooldown: '1h' },
      review: { timeout: '1h', defaultDecision: 'skip' },
    });
    const handle = await startBatch(worker.taskQueue, { pipeline, items });
    try {
      const gauges = await until('review queue 3 and an open circuit', async () => {
        const s = await worker.scrape();
        const queue = s.find((x) => x.name === METRICS.reviewQueue.name && x.labels['taskQueue'] === worker.taskQueue)?.value;
        const circuit = s.find((x) => x.name === METRICS.circuitState.name && x.labels['provider'] === 'guarded')?.value;
        const running = s.find((x) => x.name === METRICS.batchesRunning.name)?.value;
        return queue === 3 && circuit === 2 ? { queue, circuit, running } : undefined;
      });
      expect(gauges).toEqual({ queue: 3, circuit: 2, running: 1 });
      const s = await worker.scrape();
      expect(sumBy(s, METRICS.items.name, 'status', { provider: 'none' })['awaiting_review']).toBe(3);
      expect(sumBy(s, METRICS.llmCalls.name, 'outcome', { provider: 'guarded' })).toEqual({ AuthFailed: 3 });
    } finally {
      await handle.terminate('test done');
      for (const id of ['a', 'b', 'c'])
        await client.workflow
          .getHandle(`${handle.workflowId}/${id}`)
          .terminate('test done')
          .catch(() => undefined);
    }
    await until('the gauges to drop', async () => {
      const s = await worker.scrape();
      return s.find((x) => x.name === METRICS.reviewQueue.name)?.value === 0 &&
        s.find((x) => x.name === METRICS.circuitState.name && x.labels['provider'] === 'guarded')?.value === 0
        ? true
        : undefined;
    });
  }, 60_000);

  it("binds metrics and probes to loopback by default: not reachable on the host's other addresses", async () => {
    expect((await fetch(`http://127.0.0.1:${worker.metricsPort}/metrics`)).status).toBe(200);
    expect((await worker.probe('/livez')).status).toBe(200);
    const external = Object.values(networkInterfaces())
      .flat()
      .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;
    if (!external) return; // a host with loopback only: nothing more to show
    for (const port of [worker.metricsPort, worker.healthPort]) {
      const reached = await fetch(`http://${external}:${port}/`, { signal: AbortSignal.timeout(3_000) }).then(
        () => true,
        () => false,
      );
      expect(reached, `port ${port} on ${external}`).toBe(false);
    }
  });

  it('is ready while polling, and not ready (but live) from SIGTERM while it drains', async () => {
    expect(await worker.probe('/readyz')).toMatchObject({ status: 200, body: { status: 'ready', state: 'RUNNING' } });
    expect(await worker.probe('/livez')).toMatchObject({ status: 200, body: { status: 'live' } });
    // One call that hangs for its whole 3 s timeout keeps the drain going while we probe.
    const pipeline = pipelineWith([{ name: 'slow', kind: 'openai', model: 'gpt-4o', timeout: '3s' }]);
    const handle = await startBatch(worker.taskQueue, { pipeline, items: [{ id: 'h', customer: 'Hooli', text: 'Ticket h [[fault:hang,none]]' }] });
    try {
      await until('the hanging call', async () => (provider.stats().openHangs > 0 ? true : undefined));
      worker.proc.kill('SIGTERM');
      const draining = await until(
        'readyz 503',
        async () => {
          const r = await worker.probe('/readyz');
          return r.status === 503 ? r : undefined;
        },
        5_000,
      );
      expect(draining.body).toMatchObject({ status: 'not_ready', reason: 'received SIGTERM; draining' });
      expect(['RUNNING', 'STOPPING', 'DRAINING', 'DRAINED']).toContain(draining.body.state);
      expect((await worker.probe('/livez')).status).toBe(200);
      expect(await worker.exited).toBe(0);
    } finally {
      await handle.terminate('test done').catch(() => undefined);
      await client.workflow
        .getHandle(`${handle.workflowId}/h`)
        .terminate('test done')
        .catch(() => undefined);
    }
  }, 60_000);
});

describe('a worker process that cannot reach Temporal', () => {
  it('is live but not ready, says why, and stops on SIGTERM', async () => {
    const worker = await spawnWorker({ TEMPORAL_ADDRESS: `127.0.0.1:${await freePort()}`, STEADFAST_METRICS_PORT: '0' });
    try {
      const r = await until('the probe server', () => worker.probe('/readyz'), 30_000);
      expect(r.status).toBe(503);
      expect(r.body).toMatchObject({ status: 'not_ready', state: 'STARTING' });
      await until('a connection error in the reason', async () => ((await worker.probe('/readyz')).body.reason.startsWith('not connected to Temporal:') ? true : undefined));
      expect(await worker.probe('/livez')).toMatchObject({ status: 200, body: { status: 'live', state: 'STARTING' } });
      expect(await worker.stop('SIGTERM')).toBe(0);
      expect(worker.output()).toContain('cannot connect to Temporal; retrying');
    } finally {
      await worker.stop('SIGKILL');
    }
  }, 60_000);
});

describe.skipIf(!testDatabaseUrl())('a worker process whose results store is down at start', () => {
  it('waits, not ready, and starts polling once the database answers', async () => {
    const real = new URL(testDatabaseUrl()!);
    const port = await freePort();
    const viaProxy = new URL(real);
    viaProxy.host = `127.0.0.1:${port}`;
    const worker = await spawnWorker({ DATABASE_URL: viaProxy.toString(), STEADFAST_METRICS_PORT: '0' });
    // The "database" comes up after a while: a TCP proxy to the real one opens on the worker's port.
    const proxy = createNetServer((sock) => {
      const up = connectNet(Number(real.port || 5432), real.hostname);
      sock.on('error', () => up.destroy());
      up.on('error', () => sock.destroy());
      sock.pipe(up).pipe(sock);
    });
    try {
      const down = await until('a store error in the readiness reason', async () => {
        const r = await worker.probe('/readyz').catch(() => undefined);
        return r?.body.reason.startsWith('results store unavailable:') ? r : undefined;
      });
      expect(down).toMatchObject({ status: 503, body: { status: 'not_ready', state: 'STARTING' } });
      await sleep(3_000);
      expect(worker.proc.exitCode).toBeNull();
      expect(worker.output()).toContain('cannot open the results store; retrying');
      await new Promise<void>((r) => proxy.listen(port, '127.0.0.1', r));
      await worker.waitReady();
    } finally {
      expect(await worker.stop('SIGTERM')).toBe(0);
      proxy.close();
    }
  }, 120_000);
});

describe('secrets in a worker process', () => {
  // A canary in a custom apiKeyEnv whose name and value match no secret pattern: only the
  // worker's key allow-list (STEADFAST_KEY_HOSTS) tells the scrubber it is a secret.
  const KEY = 'canary-7f3e9d1c-llmkey-value-0042';
  const webhookBodies: string[] = [];
  const keysSeen: string[] = [];
  const hook = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      webhookBodies.push(Buffer.concat(chunks).toString('utf8'));
      res.writeHead(200).end('ok');
    });
  });
  let hookUrl = '';
  const SSN = '078-05-1120';
  let provider: RunningProvider;
  /** An OpenAI-compatible endpoint that, like some proxies, echoes the key it got and the prompt into its 401. */
  const echo = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString('utf8')));
    req.on('end', () => {
      const auth = String(req.headers['authorization'] ?? '');
      const prompt = (JSON.parse(body) as { messages: { content: string }[] }).messages.at(-1)?.content ?? '';
      keysSeen.push(auth);
      res.writeHead(401, { 'content-type': 'application/json', 'x-request-id': 'req_echo' });
      res.end(
        JSON.stringify({
          error: {
            message: `Incorrect API key provided: ${auth.replace(/^Bearer /, '')}. Header was: ${auth}. Request was: ${prompt}`,
            type: 'invalid_request_error',
            param: null,
            code: 'invalid_api_key',
          },
        }),
      );
    });
  });
  let echoUrl = '';

  beforeAll(async () => {
    provider = await startProvider({ port: 0, profile: 'none', seed: 1, latencyScale: 0, apiKey: 'the-provider-wants-another-key' });
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    echoUrl = `http://127.0.0.1:${(echo.address() as AddressInfo).port}/v1`;
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
    hookUrl = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook`;
  });
  afterAll(async () => {
    await provider?.close();
    echo.close();
    echo.closeAllConnections();
    hook.close();
    hook.closeAllConnections();
  });

  it("keeps an API key from the environment and the spec's secret fields out of logs, histories, errors and rows", async () => {
    const worker = await spawnWorker({ STEADFAST_SIMULATED_PROVIDER_URL: provider.url, LLM_KEY: KEY, STEADFAST_KEY_HOSTS: 'LLM_KEY=127.0.0.1', STEADFAST_LOG_LEVEL: 'debug' });
    try {
      await worker.waitReady();
      const pipeline = pipelineWith(
        [
          { name: 'echoing', kind: 'openai-compatible', model: 'gpt-4o-mini', baseURL: echoUrl, apiKeyEnv: 'LLM_KEY', timeout: '2s' },
          { name: 'refusing', kind: 'openai', model: 'gpt-4o-mini', baseURL: `${provider.url}/v1`, apiKeyEnv: 'LLM_KEY', timeout: '2s' },
        ],
        {
          prompt: { template: 'Customer {{customer}} (ssn {{ssn}}) writes: {{text}}' },
          input: { required: ['ssn'] },
          secretFields: ['ssn'],
          review: { timeout: '1s', defaultDecision: 'skip' },
          alerts: { webhookUrl: hookUrl, errorRateThreshold: 0.05 },
        },
      );
      const handle = await startBatch(worker.taskQueue, { pipeline, items: [{ id: 's1', customer: 'Ann', ssn: SSN, text: 'Where is my refund?' }] });
      const summary = await handle.result();
      expect(summary).toMatchObject({ total: 1, skipped: 1 });
      // The key really was sent and refused on both tiers.
      expect(provider.stats().byStatus['401']).toBeGreaterThan(0);
      expect(keysSeen).toContain(`Bearer ${KEY}`);
      // Alerts went out (the review digest).
      expect(webhookBodies.some((b) => b.includes('entered review'))).toBe(true);

      const store = await openStore({ dbPath: worker.dbPath });
      const rows = await store.list(handle.workflowId);
      await store.close();
      expect(rows).toHaveLength(1);
      expect(rows[0]!.error).toMatchObject({ type: 'AuthFailed', provider: 'refusing' });
      // The reviewer reads every tier's own failure: the provider's message, status and type.
      expect(rows[0]!.error!.tiers).toEqual([
        {
          provider: 'echoing',
          type: 'AuthFailed',
          message: expect.stringMatching(/^echoing gpt-4o-mini: Incorrect API key provided: \[redacted\]\..*\(HTTP 401, invalid_request_error, invalid_api_key\)$/),
        },
        { provider: 'refusing', type: 'AuthFailed', message: expect.stringContaining('(HTTP 401, invalid_request_error, invalid_api_key)') },
      ]);

      /** History as text: payload bytes (base64 `data`) decoded, failure messages and stack traces as they are. */
      const historyText = async (workflowId: string) =>
        JSON.stringify(await client.workflow.getHandle(workflowId).fetchHistory(), (k, v: unknown) =>
          v instanceof Uint8Array ? Buffer.from(v).toString('utf8') : k === 'data' && typeof v === 'string' ? Buffer.from(v, 'base64').toString('utf8') : v,
        );
      const batchHistory = await historyText(handle.workflowId);
      const itemHistory = await historyText(`${handle.workflowId}/s1`);
      // Positive controls: the decoder sees payloads (the item's input, and the prompt rendered from it, are in its
      // history), and the echoed failure text is there, redacted.
      expect(itemHistory).toContain(SSN);
      expect(itemHistory).toContain('Incorrect API key provided: [redacted]');

      const logs = worker.output();
      expect(logs.split('\n').filter((l) => l.startsWith('{')).length).toBeGreaterThan(20);
      expect(logs).toContain('AuthFailed');
      for (const [where, text] of [
        ['logs', logs],
        ['batch history', batchHistory],
        ['item history', itemHistory],
        ['results rows', JSON.stringify(rows)],
        ['webhook bodies', webhookBodies.join('\n')],
      ] as const) {
        expect(text.includes(KEY), `key in ${where}`).toBe(false);
        expect(text.includes(KEY.slice(0, 20)), `key prefix in ${where}`).toBe(false);
      }
      // The item's fields are the workflows' input, so they are in both histories; nowhere else.
      expect(batchHistory).toContain(SSN);
      for (const [where, text] of [
        ['logs', logs],
        ['results rows', JSON.stringify(rows)],
        ['error message', rows[0]!.error!.message],
      ] as const) {
        expect(text.includes(SSN), `ssn in ${where}`).toBe(false);
      }
    } finally {
      await worker.stop('SIGKILL');
    }
  }, 120_000);

  /** History as text: payload bytes (base64 `data`) decoded, failure messages and stack traces as they are. */
  const decode = (v: unknown): string =>
    JSON.stringify(v, (k, x: unknown) =>
      x instanceof Uint8Array ? Buffer.from(x).toString('utf8') : k === 'data' && typeof x === 'string' ? Buffer.from(x, 'base64').toString('utf8') : x,
    );
  /** The kinds of events (their attributes' names) whose text contains `needle`. */
  const eventsWith = async (workflowId: string, needle: string): Promise<string[]> => {
    const history = await client.workflow.getHandle(workflowId).fetchHistory();
    return (history.events ?? [])
      .filter((e) => decode(e).includes(needle))
      .map((e) => Object.keys(e).find((k) => k.endsWith('EventAttributes') && (e as Record<string, unknown>)[k]) ?? 'unknown');
  };

  it('keeps secret field values quoted back by a model or echoed by a provider out of rows, export, metrics, webhooks and history', async () => {
    const QUOTE_KEY = 'the-provider-wants-another-key';
    const worker = await spawnWorker({
      STEADFAST_SIMULATED_PROVIDER_URL: provider.url,
      LLM_KEY: KEY,
      QUOTE_KEY,
      STEADFAST_KEY_HOSTS: 'LLM_KEY=127.0.0.1;QUOTE_KEY=127.0.0.1',
      STEADFAST_LOG_LEVEL: 'debug',
    });
    webhookBodies.length = 0;
    try {
      await worker.waitReady();
      const common = {
        prompt: { template: 'Customer {{customer}} (ssn {{ssn}}) writes: {{text}}' },
        input: { required: ['ssn'] },
        secretFields: ['ssn'],
        review: { timeout: '1s', defaultDecision: 'skip' as const },
        alerts: { webhookUrl: hookUrl, errorRateThreshold: 0.05 },
      };
      // Batch 1: a provider that echoes the prompt (and the key) into its error; the item waits for review, then is skipped.
      const echoed = pipelineWith([{ name: 'echoing', kind: 'openai-compatible', model: 'gpt-4o-mini', baseURL: echoUrl, apiKeyEnv: 'LLM_KEY', timeout: '2s' }], common);
      // Batch 2: a model that quotes its input (the provider's plain-text answer starts with the prompt).
      const quoted = pipelineWith([{ name: 'quoting', kind: 'openai', model: 'gpt-4o-mini', baseURL: `${provider.url}/v1`, apiKeyEnv: 'QUOTE_KEY', timeout: '2s' }], {
        ...common,
        output: { format: 'text' },
      });
      const h1 = await startBatch(worker.taskQueue, { pipeline: echoed, items: [{ id: 's1', customer: 'Ann', ssn: SSN, text: 'Where is my refund?' }] });
      const h2 = await startBatch(worker.taskQueue, { pipeline: quoted, items: [{ id: 's2', customer: 'Bob', ssn: SSN, text: 'Change my address.' }] });
      expect(await h1.result()).toMatchObject({ total: 1, skipped: 1 });
      expect(await h2.result()).toMatchObject({ total: 1, succeeded: 1 });

      const store = await openStore({ dbPath: worker.dbPath });
      const rows = [...(await store.list(h1.workflowId)), ...(await store.list(h2.workflowId))];
      await store.close();
      expect(rows).toHaveLength(2);
      // Positive controls: the provider did echo the prompt and the model did quote it; both redacted.
      expect(rows[0]!.error!.message).toContain('Request was: Customer Ann (ssn [redacted])');
      expect(rows[1]!.output).toEqual(expect.stringContaining('Answer for: Customer Bob (ssn [redacted]) writes'));
      expect(webhookBodies.some((b) => b.includes('entered review'))).toBe(true);

      const exported = await new Promise<string>((resolve, reject) => {
        const child = spawn(process.execPath, ['src/client/cli.ts', 'export', h1.workflowId, '--failed', '--format', 'jsonl'], {
          env: { ...process.env, TEMPORAL_ADDRESS: inject('temporalAddress'), STEADFAST_DB_PATH: worker.dbPath, DATABASE_URL: '' },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let out = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        child.on('error', reject);
        child.on('close', () => resolve(out));
      });
      expect(exported).toContain('"itemId":"s1"');
      const metrics = await (await fetch(`http://127.0.0.1:${worker.metricsPort}/metrics`)).text();
      expect(metrics).toContain('steadfast_llm_calls_total');
      const histories = (await Promise.all([h1.workflowId, `${h1.workflowId}/s1`, h2.workflowId, `${h2.workflowId}/s2`].map((id) => client.workflow.getHandle(id).fetchHistory())))
        .map(decode)
        .join('\n');
      expect(histories).toContain(SSN);

      for (const [where, text] of [
        ['logs', worker.output()],
        ['histories', histories],
        ['results rows', JSON.stringify(rows)],
        ['export', exported],
        ['metrics', metrics],
        ['webhooks', webhookBodies.join('\n')],
      ] as const) {
        for (const key of [KEY, QUOTE_KEY]) expect(text.includes(key.slice(0, 20)), `key in ${where}`).toBe(false);
        if (where !== 'histories') expect(text.includes(SSN), `ssn in ${where}`).toBe(false);
      }
      // The items' fields are the workflows' input: in history they are where the input put them (the start
      // events, the children's start and the call's input), in no answer, failure, signal or marker.
      for (const id of [h1.workflowId, h2.workflowId]) {
        for (const kind of await eventsWith(id, SSN))
          expect(['workflowExecutionStartedEventAttributes', 'startChildWorkflowExecutionInitiatedEventAttributes'], `${id}: ${kind}`).toContain(kind);
      }
      for (const id of [`${h1.workflowId}/s1`, `${h2.workflowId}/s2`]) {
        for (const kind of await eventsWith(id, SSN)) expect(['workflowExecutionStartedEventAttributes', 'activityTaskScheduledEventAttributes'], `${id}: ${kind}`).toContain(kind);
      }
    } finally {
      await worker.stop('SIGKILL');
    }
  }, 120_000);
});
