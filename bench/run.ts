/**
 * `npm run bench`: Steadfast against plain baselines, all measured in one run,
 * printed as a table and written to bench-results/bench-<time>.json.
 *
 *   a. throughput: items/s of a batch against a plain in-process promise pool
 *      (same client, prompt, schema, concurrency and SQLite upsert) at provider
 *      latency 0 ms and 1 s;
 *   b. goodput under `flaky`: wall time against the fault-free run, LLM calls
 *      per item, share of faulted items healed without a human;
 *   c. rate-limit efficiency under `ratelimit`: achieved requests/min as a share
 *      of the limit and 429s as a share of calls, against a naive retry-on-429 loop;
 *   d. `--large`: a 100,000-item batch from a JSONL file: worker RSS peak, the
 *      largest history of any workflow, items/s;
 *   e. cost: the same workload synchronously (without and with the response cache),
 *      through the provider Batch API (`mode: batch` tiers, when the code has them) and
 *      as a cached re-run: USD per 1,000 items and wall time side by side (bench/cost.ts).
 *
 * Everything runs on 127.0.0.1 in processes of its own: a Temporal dev server
 * (fresh SQLite file, WAL), the fault-injecting provider, and `src/worker/worker.ts`.
 *
 *   npm run bench                          # a, b, c, e (about 6 minutes on 2 cores)
 *   npm run bench -- --only cost           # e only (about a minute)
 *   npm run bench -- --large               # d only (see --large-items; takes long)
 *   npm run bench -- --only throughput1s,ratelimit
 *   npm run bench -- --help
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { openStore } from '../activities/store.ts';
import type { ProviderStats } from '../src/provider/index.ts';
import { progressQuery } from '../src/shared/messages.ts';
import type { batchPipeline } from '../workflows/batch.ts';
import { naive429Loop, promisePool } from './baseline.ts';
import { COST_MODES, runCostModes } from './cost.ts';
import { procCpuSeconds, procStatusBytes, sleep, snapshotCode, startDevServer, startProviderProc, startWorkerProc } from './procs.ts';
import type { DevServer, ProviderProc, WorkerProc } from './procs.ts';
import { fmt, machine, table, writeResults } from './report.ts';
import { eventsPerItem, historyStats, latencyBreakdown, rowStats, runBatch, terminateBatch } from './steadfast.ts';
import { adaptive, sharedLimit } from './limits.ts';
import type { LimitsBench } from './limits.ts';
import { benchPipeline, makeItems, parsePipeline, writeItemsJsonl } from './workload.ts';
import type { WorkloadOptions } from './workload.ts';

const { values: args } = parseArgs({
  options: {
    help: { type: 'boolean', default: false },
    large: { type: 'boolean', default: false },
    only: { type: 'string' },
    items: { type: 'string', default: '300' },
    concurrency: { type: 'string', default: '50' },
    'slow-latency-ms': { type: 'string', default: '1000' },
    'slow-items': { type: 'string', default: '200' },
    'slow-concurrency': { type: 'string', default: '10' },
    'wide-items': { type: 'string', default: '500' },
    'wide-concurrency': { type: 'string', default: '100' },
    'flaky-items': { type: 'string', default: '300' },
    'flaky-concurrency': { type: 'string', default: '50' },
    'flaky-latency-ms': { type: 'string', default: '0' },
    'flaky-timeout-ms': { type: 'string', default: '2000' },
    rpm: { type: 'string', default: '300' },
    tpm: { type: 'string', default: '1000000' },
    'burst-seconds': { type: 'string', default: '1' },
    'rl-concurrency': { type: 'string', default: '50' },
    warmup: { type: 'string', default: '10' },
    window: { type: 'string', default: '45' },
    'shared-batches': { type: 'string', default: '3' },
    'shared-items': { type: 'string', default: '150' },
    'shared-tpm': { type: 'string', default: '100000' },
    'shared-window': { type: 'string', default: '45' },
    'adaptive-capacity': { type: 'string', default: '12' },
    'adaptive-concurrency': { type: 'string', default: '20' },
    'adaptive-latency-ms': { type: 'string', default: '2000' },
    'adaptive-items': { type: 'string', default: '600' },
    'adaptive-phases': { type: 'string', default: '30,60,40' },
    'adaptive-settle': { type: 'string', default: '15' },
    'large-items': { type: 'string', default: '100000' },
    'large-concurrency': { type: 'string', default: '100' },
    'large-child-path': { type: 'boolean', default: false },
    'cost-items': { type: 'string', default: '200' },
    'cost-concurrency': { type: 'string', default: '20' },
    'cost-latency-ms': { type: 'string', default: '1000' },
    keep: { type: 'boolean', default: false },
  },
});

if (args.help) {
  console.log(`usage: npm run bench -- [--large] [--only throughput0,throughput1s,throughput1sWide,flaky,ratelimit,shared,sharedTpm,adaptive,adaptiveOff,large,cost] [--keep]
  throughput0:      --items 300 --concurrency 50                (provider latency 0 ms)
  throughput1s:     --slow-items 200 --slow-concurrency 10      (latency --slow-latency-ms 1000)
  throughput1sWide: --wide-items 500 --wide-concurrency 100     (same latency)
  flaky:            --flaky-items 300 --flaky-concurrency 50 --flaky-latency-ms 0 --flaky-timeout-ms 2000
  ratelimit:        --rpm 300 --tpm 1000000 --burst-seconds 1 --rl-concurrency 50 --warmup 10 --window 45 (seconds)
  shared:           --shared-batches 3 --shared-items 150 (per batch) --rpm 300 --warmup 10 --shared-window 45 (one key, requests/min bind)
  sharedTpm:        the same with --shared-tpm 100000 tokens/min binding
  adaptive:         --adaptive-capacity 12 --adaptive-concurrency 20 --adaptive-latency-ms 2000 --adaptive-items 600
                    --adaptive-phases 30,60,40 --adaptive-settle 15 (capacity full, halved, restored; adaptiveOff: the same without AIMD)
  large:            --large-items 100000 --large-concurrency 100 [--large-child-path] (fast path unless --large-child-path)
  cost:             --cost-items 200 --cost-concurrency 20 --cost-latency-ms 1000  (modes: ${COST_MODES.map((m) => m.name).join(', ')})
  --keep keeps the temp directory (server db, results db, logs).`);
  process.exit(0);
}

const num = (k: keyof typeof args): number => Number(args[k]);
const SCENARIOS = ['throughput0', 'throughput1s', 'throughput1sWide', 'flaky', 'ratelimit', 'shared', 'sharedTpm', 'adaptive', 'adaptiveOff', 'large', 'cost'] as const;
type Scenario = (typeof SCENARIOS)[number];
const selected = new Set<Scenario>(
  args.only
    ? (args.only.split(',').map((s) => s.trim()) as Scenario[])
    : args.large
      ? ['large']
      : ['throughput0', 'throughput1s', 'throughput1sWide', 'flaky', 'ratelimit', 'shared', 'sharedTpm', 'adaptive', 'cost'],
);
for (const s of selected) if (!SCENARIOS.includes(s)) throw new Error(`--only: unknown scenario ${s}; one of ${SCENARIOS.join(', ')}`);

const log = (msg: string): void => console.error(`bench: ${msg}`);
const dir = mkdtempSync(join(tmpdir(), 'steadfast-bench-'));
const resultsDb = join(dir, 'results.db');
const stamp = Date.now().toString(36);
let seq = 0;
const nextId = (what: string): string => `bench-${what}-${stamp}-${++seq}`;

const cleanups: (() => Promise<void>)[] = [];
async function cleanup(): Promise<void> {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  if (!args.keep) rmSync(dir, { recursive: true, force: true });
}
process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));

const code = snapshotCode(join(dir, 'code'));
let server: DevServer;
let client: Client;
let shared: { w: WorkerProc; taskQueue: string } | undefined;

async function provider(what: string, o: { profile?: string; latencyMs?: number; seed?: number }): Promise<ProviderProc> {
  const p = await startProviderProc({ ...o, logFile: join(dir, `provider-${what}.log`) });
  cleanups.push(() => p.stop());
  return p;
}

/**
 * A worker (`src/worker/worker.ts` in a child process), warmed up with a 5-item batch so
 * bundling and tokenizer loading are not measured. Specs name their provider by
 * baseURL, so one worker serves every default scenario; `--large` gets its own,
 * so its RSS peak is that batch's.
 */
async function startWorker(what: string, providerUrl: string): Promise<{ w: WorkerProc; taskQueue: string }> {
  const taskQueue = `bench-${what}-${stamp}`;
  const w = await startWorkerProc({ address: server.address, taskQueue, dbPath: resultsDb, providerUrl, logFile: join(dir, `worker-${what}.log`), codeRoot: code.root });
  cleanups.push(() => w.stop());
  await runBatch(client, taskQueue, { batchId: nextId(`${what}-warmup`), pipeline: benchPipeline({ providerUrl, concurrency: 5 }), items: makeItems(5, 'w') });
  return { w, taskQueue };
}

async function sharedWorker(providerUrl: string): Promise<{ w: WorkerProc; taskQueue: string }> {
  shared ??= await startWorker('shared', providerUrl);
  return shared;
}

/** CPU seconds used by a set of processes between two calls. */
function cpuMeter(pids: Record<string, number>): () => Record<string, number> {
  const before = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, procCpuSeconds(pid) ?? 0]));
  return () => Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, Math.round(((procCpuSeconds(pid) ?? 0) - before[k]!) * 100) / 100]));
}

function delta(a: ProviderStats, b: ProviderStats) {
  const s429 = (b.byStatus['429'] ?? 0) - (a.byStatus['429'] ?? 0);
  return { requests: b.requests - a.requests, successes: b.successes - a.successes, rateLimited: s429 };
}

/** Logs the batch's progress every `everyMs`; returns the stop function. */
function watch(batchId: string, everyMs: number, extra: () => string = () => ''): () => void {
  const t = setInterval(() => {
    client.workflow
      .getHandle<typeof batchPipeline>(batchId)
      .query(progressQuery)
      .then((p) =>
        log(`${batchId}: ${p.succeeded + p.failed + p.skipped + p.approved}/${p.total ?? '?'} done, ${p.running} running, ${p.ratePerMinute}/min, run ${p.runs}${extra()}`),
      )
      .catch(() => undefined);
  }, everyMs);
  return () => clearInterval(t);
}

async function throughput(what: string, latencyMs: number, n: number, concurrency: number) {
  log(`${what}: provider latency ${latencyMs} ms, ${n} items, concurrency ${concurrency}`);
  const p = await provider(what, { latencyMs });
  const spec: WorkloadOptions = { providerUrl: p.url, concurrency };
  const { w, taskQueue } = await sharedWorker(p.url);
  const items = makeItems(n);
  const store = await openStore({ dbPath: join(dir, 'baseline.db') });
  await p.reset();
  const cpu = cpuMeter({ bench: process.pid, provider: p.proc.pid });
  const base = await promisePool({ spec: parsePipeline(benchPipeline(spec)), items, concurrency, batchId: nextId(`${what}-baseline`), store });
  const baseCpu = cpu();
  await store.close();
  const baseStats = await p.stats();
  log(`${what}: baseline ${fmt.n(base.itemsPerSec)} items/s (${fmt.s(base.wallMs)})`);
  const perItemMs = (c: Record<string, number>) => Math.round((Object.values(c).reduce((a, b) => a + b, 0) / n) * 1000 * 10) / 10;
  /** One Steadfast run of the same items: the fast path (`fastPath: true`), or a workflow per item (the default). */
  const steadfast = async (fastPath: boolean) => {
    await p.reset();
    const batchId = nextId(fastPath ? what : `${what}-childpath`);
    const label = fastPath ? 'steadfast' : 'steadfast, fastPath: false';
    const stop = watch(batchId, 10_000);
    const meter = cpuMeter({ server: server.proc.pid, worker: w.pid, provider: p.proc.pid });
    const run = await runBatch(client, taskQueue, { batchId, pipeline: benchPipeline({ ...spec, fastPath }), items }).finally(stop);
    const sfCpu = meter();
    const stats = await p.stats();
    const rows = rowStats(resultsDb, batchId);
    log(`${what}: ${label} ${fmt.n(run.itemsPerSec)} items/s (${fmt.s(run.wallMs)}), ${rows.rows} rows, ${stats.requests} calls, CPU ${JSON.stringify(sfCpu)}`);
    const breakdown = await latencyBreakdown(client, batchId, 30);
    log(`${what}: ${label}: per item (ms): ${JSON.stringify(breakdown)}`);
    const events = await eventsPerItem(client, batchId, n);
    log(`${what}: ${label}: history events per item: ${JSON.stringify(events)}`);
    return {
      batchId,
      fastPath,
      wallMs: run.wallMs,
      itemsPerSec: run.itemsPerSec,
      ratio: run.itemsPerSec / base.itemsPerSec,
      summary: run.summary,
      rows,
      calls: stats.requests,
      cpuSeconds: sfCpu,
      cpuMsPerItem: perItemMs(sfCpu),
      breakdown,
      events,
    };
  };
  const fast = await steadfast(true);
  // Side by side in the same run: every item in its own workflow, as before the fast path.
  const childPath = await steadfast(false);
  await p.stop();
  return {
    latencyMs,
    items: n,
    concurrency,
    baseline: { ...base, calls: baseStats.requests, writes: 'same SQLite upsert (openStore), own file', cpuSeconds: baseCpu, cpuMsPerItem: perItemMs(baseCpu) },
    steadfast: fast,
    childPath,
    ratio: fast.ratio,
    /** Orchestration CPU per item of the fast path against the child path, same items, same run. */
    cpuRatio: fast.cpuMsPerItem / childPath.cpuMsPerItem,
  };
}

async function flaky(n: number, concurrency: number, latencyMs: number, timeoutMs: number) {
  log(`flaky: ${n} items, concurrency ${concurrency}, latency ${latencyMs} ms, per-attempt timeout ${timeoutMs} ms`);
  const p = await provider('flaky', { latencyMs, seed: 42 });
  const spec: WorkloadOptions = { providerUrl: p.url, concurrency, timeoutMs };
  const { taskQueue } = await sharedWorker(p.url);
  const items = makeItems(n);
  await p.reset();
  const cleanId = nextId('fault-free');
  const clean = await runBatch(client, taskQueue, { batchId: cleanId, pipeline: benchPipeline(spec), items });
  const cleanStats = await p.stats();
  log(`flaky: fault-free run ${fmt.s(clean.wallMs)}`);
  await p.setProfile('flaky');
  await p.reset();
  const batchId = nextId('flaky');
  const stop = watch(batchId, 10_000);
  const run = await runBatch(client, taskQueue, { batchId, pipeline: benchPipeline(spec), items }).finally(stop);
  const stats = await p.stats();
  const rows = rowStats(resultsDb, batchId);
  const faults = Object.values(stats.byFault).reduce((a, b) => a + b, 0);
  log(`flaky: run ${fmt.s(run.wallMs)}, ${stats.requests} calls, ${faults} faults injected, ${rows.faulted} items faulted, ${rows.healed} healed`);
  await p.stop();
  return {
    items: n,
    concurrency,
    latencyMs,
    timeoutMs,
    profile: 'flaky',
    seed: 42,
    faultFree: { batchId: cleanId, wallMs: clean.wallMs, calls: cleanStats.requests, summary: clean.summary },
    flaky: { batchId, wallMs: run.wallMs, calls: stats.requests, byFault: stats.byFault, byStatus: stats.byStatus, summary: run.summary, rows },
    wallRatio: run.wallMs / clean.wallMs,
    callsPerItem: stats.requests / n,
    attemptsPerItem: rows.attemptsSum / Math.max(1, rows.rows),
    faultedItems: rows.faulted,
    healedItems: rows.healed,
    healedShare: rows.faulted === 0 ? 1 : rows.healed / rows.faulted,
  };
}

async function ratelimit(rpm: number, tpm: number, burstSeconds: number, concurrency: number, warmupS: number, windowS: number) {
  const profile = `ratelimit:rpm=${rpm},tpm=${tpm},burstSeconds=${burstSeconds}`;
  log(`ratelimit: provider ${profile}; warm-up ${warmupS} s, window ${windowS} s, concurrency ${concurrency}`);
  const p = await provider('ratelimit', { latencyMs: 0 });
  const spec: WorkloadOptions = { providerUrl: p.url, concurrency, rateLimit: { requestsPerMinute: rpm, tokensPerMinute: tpm } };
  const { taskQueue } = await sharedWorker(p.url);
  await p.setProfile(profile); // activating the profile starts fresh buckets
  await p.reset();

  // Steadfast: a batch longer than the window; measured between two snapshots, then terminated.
  const n = Math.ceil((rpm / 60) * (warmupS + windowS + 30));
  const batchId = nextId('ratelimit');
  const handle = await client.workflow.start<typeof batchPipeline>('batchPipeline', {
    taskQueue,
    workflowId: batchId,
    args: [{ batchId, pipeline: benchPipeline(spec), items: makeItems(n) }],
  });
  const stop = watch(batchId, 15_000);
  await sleep(warmupS * 1000);
  const a0 = await p.stats();
  await sleep(windowS * 1000);
  const a1 = await p.stats();
  stop();
  const sf = delta(a0, a1);
  const progress = await handle.query(progressQuery).catch(() => null);
  await terminateBatch(client, batchId);
  log(`ratelimit: steadfast ${sf.successes} ok / ${sf.requests} calls, ${sf.rateLimited} 429s in ${windowS} s`);

  // Naive loop: same provider (fresh buckets), same concurrency, same window.
  await p.setProfile(profile);
  await p.reset();
  const spec2 = parsePipeline(benchPipeline(spec));
  const naive = naive429Loop({ spec: spec2, concurrency, untilMs: Date.now() + (warmupS + windowS) * 1000 + 500 });
  await sleep(warmupS * 1000);
  const b0 = await p.stats();
  await sleep(windowS * 1000);
  const b1 = await p.stats();
  const nv = delta(b0, b1);
  const naiveTotals = await naive;
  log(`ratelimit: naive ${nv.successes} ok / ${nv.requests} calls, ${nv.rateLimited} 429s in ${windowS} s`);
  await p.stop();
  const perMin = (x: number) => x / (windowS / 60);
  return {
    profile,
    rpm,
    tpm,
    burstSeconds,
    concurrency,
    warmupS,
    windowS,
    steadfast: { batchId, ...sf, achievedRpm: perMin(sf.successes), shareOfLimit: perMin(sf.successes) / rpm, share429: sf.rateLimited / Math.max(1, sf.requests), progress },
    naive: { ...nv, achievedRpm: perMin(nv.successes), shareOfLimit: perMin(nv.successes) / rpm, share429: nv.rateLimited / Math.max(1, nv.requests), totals: naiveTotals },
  };
}

async function large(n: number, concurrency: number) {
  const path = join(dir, 'items.jsonl');
  log(`large: writing ${n} items to ${path}`);
  await writeItemsJsonl(path, n);
  const p = await provider('large', { latencyMs: 0 });
  const spec: WorkloadOptions = { providerUrl: p.url, concurrency };
  if (shared) await shared.w.stop();
  const { w, taskQueue } = await startWorker('large', p.url);
  await p.reset();
  const batchId = nextId('large');
  let rssMax = 0;
  const sampler = setInterval(() => (rssMax = Math.max(rssMax, w.rss() ?? 0)), 1_000);
  const cpu = cpuMeter({ server: server.proc.pid, worker: w.pid, provider: p.proc.pid });
  const stop = watch(batchId, 30_000, () => `, worker RSS ${fmt.mib(w.rss())} (peak ${fmt.mib(w.rssPeak())})`);
  // The large batch runs on the fast path (`--large-child-path`: a workflow per item, as before it).
  const run = await runBatch(client, taskQueue, { batchId, pipeline: benchPipeline({ ...spec, fastPath: !args['large-child-path'] }), source: { jsonl: path } }).finally(() => {
    stop();
    clearInterval(sampler);
  });
  const rssPeak = w.rssPeak();
  const cpuSeconds = cpu();
  const serverRssPeak = procStatusBytes(server.proc.pid, 'VmHWM');
  const stats = await p.stats();
  const rows = rowStats(resultsDb, batchId);
  log(`large: ${fmt.s(run.wallMs)}, ${fmt.n(run.itemsPerSec)} items/s, worker RSS peak ${fmt.mib(rssPeak)}; reading histories...`);
  const hist = await historyStats(client, batchId, 1000);
  await w.stop();
  await p.stop();
  return {
    items: n,
    concurrency,
    source: 'jsonl by reference',
    steadfast: { batchId, wallMs: run.wallMs, itemsPerSec: run.itemsPerSec, summary: run.summary, rows, calls: stats.requests },
    workerRssPeak: rssPeak,
    workerRssSampledMax: rssMax,
    serverRssPeak,
    history: hist,
    cpuSeconds,
  };
}

/** The cost modes side by side on one workload (bench/cost.ts); provider latency as a real API's. */
async function cost(n: number, concurrency: number, latencyMs: number) {
  log(`cost: ${n} items per mode, concurrency ${concurrency}, provider latency ${latencyMs} ms`);
  const p = await provider('cost', { latencyMs });
  const { taskQueue } = await sharedWorker(p.url);
  const rows = await runCostModes(
    {
      runBatch: async (batchId, pipeline, prefix) => runBatch(client, taskQueue, { batchId, pipeline, items: makeItems(n, prefix) }),
      providerCalls: async () => (await p.stats()).requests,
      nextId,
      log,
    },
    benchPipeline({ providerUrl: p.url, concurrency }),
    n,
  );
  await p.stop();
  return { items: n, concurrency, latencyMs, pricing: benchPipeline({ providerUrl: p.url, concurrency }).providers[0]!.pricing, modes: rows.map(({ summary: _s, ...r }) => r) };
}

async function main(): Promise<void> {
  const started = new Date().toISOString();
  const m = machine();
  log(`code ${code.commit}${code.dirty.length ? ` plus ${code.dirty.length} uncommitted changes` : ''}`);
  log(`machine: ${m.cpus} cpus (${m.cpuModel}), ${m.memTotalGiB} GiB, node ${m.node}, load ${m.loadAvg1m}; temp dir ${dir}`);
  server = await startDevServer({ dbFile: join(dir, 'temporal.db'), logFile: join(dir, 'dev-server.log') });
  cleanups.push(() => server.stop());
  const connection = await Connection.connect({ address: server.address });
  client = new Client({ connection });
  cleanups.push(() => connection.close());
  log(`dev server on ${server.address}`);

  const out: Record<string, unknown> = {};
  const t0 = Date.now();
  if (selected.has('throughput0')) out['throughput0'] = await throughput('throughput0', 0, num('items'), num('concurrency'));
  if (selected.has('throughput1s')) out['throughput1s'] = await throughput('throughput1s', num('slow-latency-ms'), num('slow-items'), num('slow-concurrency'));
  if (selected.has('throughput1sWide')) out['throughput1sWide'] = await throughput('throughput1sWide', num('slow-latency-ms'), num('wide-items'), num('wide-concurrency'));
  if (selected.has('flaky')) out['flaky'] = await flaky(num('flaky-items'), num('flaky-concurrency'), num('flaky-latency-ms'), num('flaky-timeout-ms'));
  if (selected.has('ratelimit')) out['ratelimit'] = await ratelimit(num('rpm'), num('tpm'), num('burst-seconds'), num('rl-concurrency'), num('warmup'), num('window'));
  const lb: LimitsBench = {
    client,
    provider: (what, o) => provider(what, o),
    worker: (url) => sharedWorker(url),
    nextId,
    resultsDb,
    log,
  };
  const sharedOpts = {
    rpm: num('rpm'),
    tpm: num('shared-tpm'),
    batches: num('shared-batches'),
    itemsPerBatch: num('shared-items'),
    concurrency: num('rl-concurrency'),
    warmupS: num('warmup'),
    windowS: num('shared-window'),
  };
  if (selected.has('shared')) out['shared'] = await sharedLimit(lb, { ...sharedOpts, binding: 'rpm' });
  if (selected.has('sharedTpm')) out['sharedTpm'] = await sharedLimit(lb, { ...sharedOpts, binding: 'tpm' });
  const phases = args['adaptive-phases']!.split(',').map(Number) as [number, number, number];
  const adaptiveOpts = {
    latencyMs: num('adaptive-latency-ms'),
    capacity: num('adaptive-capacity'),
    concurrency: num('adaptive-concurrency'),
    items: num('adaptive-items'),
    phasesS: phases,
    settleS: num('adaptive-settle'),
  };
  if (selected.has('adaptive')) out['adaptive'] = await adaptive(lb, { ...adaptiveOpts, adaptive: true });
  if (selected.has('adaptiveOff')) out['adaptiveOff'] = await adaptive(lb, { ...adaptiveOpts, adaptive: false });
  if (selected.has('large')) out['large'] = await large(num('large-items'), num('large-concurrency'));
  if (selected.has('cost')) out['cost'] = await cost(num('cost-items'), num('cost-concurrency'), num('cost-latency-ms'));

  const loadAvgEnd = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  log(`load average at the end (1, 5, 15 min): ${loadAvgEnd}`);
  const rows: string[][] = [['scenario', 'steadfast', 'baseline', 'ratio', 'goal']];
  const goals: Record<string, { goal: string; met: boolean; value: string }> = {};
  for (const k of ['throughput0', 'throughput1s', 'throughput1sWide'] as const) {
    const r = out[k] as Awaited<ReturnType<typeof throughput>> | undefined;
    if (!r) continue;
    const goal = r.latencyMs >= 1000 ? '>= 0.90' : '';
    rows.push([
      `throughput, ${r.latencyMs} ms latency (${r.items} items, c=${r.concurrency}), items/s`,
      fmt.n(r.steadfast.itemsPerSec),
      fmt.n(r.baseline.itemsPerSec),
      fmt.n(r.ratio, 2),
      goal,
    ]);
    rows.push([`  CPU per item (server+worker+provider | bench+provider), ms`, fmt.n(r.steadfast.cpuMsPerItem), fmt.n(r.baseline.cpuMsPerItem), '', '']);
    rows.push([
      `  history events per item (batch + item workflows)`,
      `${r.steadfast.events.perItem} (${r.steadfast.events.batchPerItem} + ${r.steadfast.events.itemPerItem}; ${r.steadfast.events.itemWorkflows} item workflows)`,
      '',
      '',
      '',
    ]);
    const c = r.childPath;
    rows.push([`  same run, fastPath: false: items/s`, fmt.n(c.itemsPerSec), fmt.n(r.baseline.itemsPerSec), fmt.n(c.ratio, 2), '']);
    rows.push([`    CPU per item, ms (fast / child path)`, `${fmt.n(c.cpuMsPerItem)} (${fmt.n(r.cpuRatio, 2)})`, '', '', r.latencyMs === 0 ? '<= 0.50' : '']);
    rows.push([`    history events per item`, `${c.events.perItem} (${c.events.batchPerItem} + ${c.events.itemPerItem})`, '', '', '']);
    const fc = r.steadfast.breakdown.parent.fastCalls;
    rows.push([
      `  fast path, batch's calls: queued | scheduled to completed | completion to next call, ms`,
      `${fmt.n(fc.queuedMs)} | ${fmt.n(fc.scheduledToCompletedMs)} | ${fmt.n(fc.completedToNextScheduledMs)} (${fc.n} calls)`,
      '',
      '',
      '',
    ]);
    const b = r.childPath.breakdown;
    const llm = b.activities['callLlm'];
    rows.push([
      `  fastPath: false, item latency: total | in callLlm | orchestration + report->next start, ms`,
      `${b.total} | ${llm ? llm.runMs : '-'} | ${b.total - (llm?.runMs ?? 0)} + ${b.parent.signalToNextStart + b.parent.startInitiatedToStarted}`,
      '',
      '',
      '',
    ]);
    if (r.latencyMs >= 1000) goals[`${k}Ratio`] = { goal: '>= 0.9', met: r.ratio >= 0.9, value: fmt.n(r.ratio, 3) };
    if (r.latencyMs === 0) {
      goals[`${k}Ratio`] = { goal: '>= 0.10', met: r.ratio >= 0.1, value: fmt.n(r.ratio, 3) };
      goals[`${k}CpuHalved`] = { goal: 'CPU per item <= 0.5 x fastPath: false', met: r.cpuRatio <= 0.5, value: fmt.n(r.cpuRatio, 2) };
    }
  }
  const f = out['flaky'] as Awaited<ReturnType<typeof flaky>> | undefined;
  if (f) {
    rows.push([`flaky: wall time vs fault-free (${f.items} items), s`, fmt.n(f.flaky.wallMs / 1000), fmt.n(f.faultFree.wallMs / 1000), fmt.n(f.wallRatio, 2), '']);
    rows.push([
      'flaky: LLM calls per item (attempts per item in rows)',
      `${fmt.n(f.callsPerItem, 2)} (${fmt.n(f.attemptsPerItem, 2)})`,
      fmt.n(f.faultFree.calls / f.items, 2),
      '',
      '',
    ]);
    rows.push([`flaky: faulted items healed without a human`, `${f.healedItems}/${f.faultedItems}`, '', fmt.pct(f.healedShare), '']);
  }
  const r = out['ratelimit'] as Awaited<ReturnType<typeof ratelimit>> | undefined;
  if (r) {
    rows.push([`ratelimit ${r.rpm} rpm: achieved share of the limit (${r.windowS} s window)`, fmt.pct(r.steadfast.shareOfLimit), fmt.pct(r.naive.shareOfLimit), '', '>= 95%']);
    rows.push(['ratelimit: 429s as a share of calls', fmt.pct(r.steadfast.share429, 2), fmt.pct(r.naive.share429, 2), '', '<= 1%']);
    goals['rateLimitShare'] = { goal: '>= 95%', met: r.steadfast.shareOfLimit >= 0.95, value: fmt.pct(r.steadfast.shareOfLimit) };
    goals['rateLimit429Share'] = { goal: '<= 1%', met: r.steadfast.share429 <= 0.01, value: fmt.pct(r.steadfast.share429, 2) };
  }
  for (const k of ['shared', 'sharedTpm'] as const) {
    const s = out[k] as Awaited<ReturnType<typeof sharedLimit>> | undefined;
    if (!s) continue;
    const unit = s.binding === 'rpm' ? 'requests/min' : 'tokens/min';
    rows.push([`${k}: ${s.batches} batches on one key, combined ${unit} share of the limit (${s.windowS} s window)`, fmt.pct(s.shareOfLimit), '', '', '>= 95%']);
    rows.push([`${k}: 429s as a share of calls (window | whole run)`, `${fmt.pct(s.share429, 2)} | ${fmt.pct(s.whole.share429, 2)}`, '', '', '<= 1%']);
    rows.push([`${k}: smallest batch share of the window's items; items not succeeded`, `${fmt.pct(s.minBatchShare)}; ${s.notSucceeded}`, '', '', '>= 25%; 0']);
    goals[`${k}Share`] = { goal: '>= 95%', met: s.shareOfLimit >= 0.95, value: fmt.pct(s.shareOfLimit) };
    goals[`${k}429`] = { goal: '<= 1%', met: s.whole.share429 <= 0.01, value: fmt.pct(s.whole.share429, 2) };
    goals[`${k}Fair`] = { goal: '>= 25% each, 0 to review', met: s.minBatchShare >= 0.25 && s.notSucceeded === 0, value: `${fmt.pct(s.minBatchShare)}, ${s.notSucceeded}` };
  }
  for (const k of ['adaptive', 'adaptiveOff'] as const) {
    const a = out[k] as Awaited<ReturnType<typeof adaptive>> | undefined;
    if (!a) continue;
    a.phases.forEach((ph, i) =>
      rows.push([
        `${k} phase ${i + 1}: capacity ${ph.capacity} at once: goodput/capacity, 429s, mean in flight`,
        `${fmt.pct(ph.shareOfCapacity)}, ${fmt.pct(ph.share429, 2)}, ${fmt.n(ph.meanInFlight, 1)}`,
        '',
        '',
        i === 1 ? '>= 90%, < 2%' : '',
      ]),
    );
    const h = a.phases[1]!;
    if (k === 'adaptive')
      goals['adaptiveHalved'] = {
        goal: '>= 90% of capacity, < 2% 429s',
        met: h.shareOfCapacity >= 0.9 && h.share429 < 0.02,
        value: `${fmt.pct(h.shareOfCapacity)}, ${fmt.pct(h.share429, 2)}`,
      };
  }
  const l = out['large'] as Awaited<ReturnType<typeof large>> | undefined;
  if (l) {
    rows.push([`large: ${l.items} items (c=${l.concurrency}), items/s`, fmt.n(l.steadfast.itemsPerSec), '', '', '']);
    rows.push(['large: worker RSS peak', fmt.mib(l.workerRssPeak), '', '', '']);
    rows.push([`large: largest history, events (batch runs: ${l.history.batchRuns})`, `${l.history.maxEvents}`, '', '', '< 51,200']);
  }
  const c = out['cost'] as Awaited<ReturnType<typeof cost>> | undefined;
  if (c) {
    const sync = c.modes.find((m) => m.mode === 'sync');
    rows.push([`cost (${c.items} items, c=${c.concurrency}, ${c.latencyMs} ms latency): USD per 1,000 items | wall s | calls | cache hits`, '', '(synchronous)', '', '']);
    for (const m of c.modes) {
      rows.push([
        `  ${m.label}`,
        m.unavailable ? 'not run' : `$${fmt.n(m.costPer1kItemsUsd!, 4)} | ${fmt.n(m.wallMs! / 1000)} | ${m.providerCalls} | ${m.cacheHits}`,
        m.unavailable ? m.unavailable : sync && m !== sync ? `$${fmt.n(sync.costPer1kItemsUsd!, 4)} | ${fmt.n(sync.wallMs! / 1000)}` : '',
        m.unavailable || !sync || m === sync ? '' : `cost ${fmt.n(m.costPer1kItemsUsd! / sync.costPer1kItemsUsd!, 2)}, wall ${fmt.n(m.wallMs! / sync.wallMs!, 2)}`,
        '',
      ]);
    }
  }
  console.log(`\nSteadfast benchmark (${m.cpus} cpus, ${m.memTotalGiB} GiB, node ${m.node}); baseline = plain promise pool / naive 429 loop / fault-free run\n`);
  console.log(table(rows));
  const file = writeResults('bench', {
    started,
    finished: new Date().toISOString(),
    totalSeconds: (Date.now() - t0) / 1000,
    machine: m,
    loadAvgEnd,
    code: { commit: code.commit, dirty: code.dirty },
    args,
    results: out,
    goals,
  });
  console.log(`\nwritten to ${file}`);
  for (const [k, g] of Object.entries(goals)) console.log(`goal ${k}: ${g.value} (${g.goal}) ${g.met ? 'met' : 'MISSED'}`);
}

try {
  await main();
} finally {
  await cleanup();
}
process.exit(0);
