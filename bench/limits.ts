/**
 * The shared rate limit and adaptive concurrency, measured at the provider:
 *
 *   shared / sharedTpm: three batches started together on one key, each naming the
 *     key's whole limit (requests per minute, or tokens per minute as the binding
 *     one), against the provider's token bucket with one second of burst. Combined
 *     rate as a share of the limit and 429s as a share of calls over a window,
 *     each batch's share of the window's items, and items that ended anywhere but
 *     `succeeded` (a rate limit sent to review shows there).
 *   adaptive: one batch with `adaptiveConcurrency` against a provider that serves at
 *     most C requests at once (1 s each) and sheds the rest with a 429; C halves
 *     mid-batch and is restored later. Goodput against C per second and 429s, per phase.
 */
import type { Client } from '@temporalio/client';
import type { ProviderStats } from '../src/provider/index.ts';
import { progressQuery } from '../src/shared/messages.ts';
import type { batchPipeline } from '../workflows/batch.ts';
import { sleep } from './procs.ts';
import type { ProviderProc } from './procs.ts';
import { rowStats, terminateBatch } from './steadfast.ts';
import { benchPipeline, makeItems } from './workload.ts';

/** What the scenarios need from the harness in bench/run.ts. */
export interface LimitsBench {
  client: Client;
  provider(what: string, o: { latencyMs?: number }): Promise<ProviderProc>;
  worker(providerUrl: string): Promise<{ taskQueue: string }>;
  nextId(what: string): string;
  resultsDb: string;
  log(msg: string): void;
}

/** Output tokens requested per call in the bench workload (bench/workload.ts). */
const MAX_OUTPUT_TOKENS = 256;

function window(a: ProviderStats, b: ProviderStats) {
  return {
    requests: b.requests - a.requests,
    successes: b.successes - a.successes,
    rateLimited: (b.byStatus['429'] ?? 0) - (a.byStatus['429'] ?? 0),
    inputTokens: b.tokens.input - a.tokens.input,
  };
}

async function doneOf(client: Client, batchId: string): Promise<number> {
  const p = await client.workflow.getHandle<typeof batchPipeline>(batchId).query(progressQuery);
  return p.succeeded + p.failed + p.skipped + p.approved;
}

export interface SharedOptions {
  /** `rpm`: requests per minute bind; `tpm`: tokens per minute bind (requests per minute far above). */
  binding: 'rpm' | 'tpm';
  rpm: number;
  tpm: number;
  batches: number;
  itemsPerBatch: number;
  concurrency: number;
  warmupS: number;
  windowS: number;
}

export async function sharedLimit(b: LimitsBench, o: SharedOptions) {
  const what = o.binding === 'rpm' ? 'shared' : 'sharedTpm';
  const rpm = o.binding === 'rpm' ? o.rpm : 100_000;
  const tpm = o.binding === 'rpm' ? 100_000_000 : o.tpm;
  const profile = `ratelimit:rpm=${rpm},tpm=${tpm},burstSeconds=1`;
  b.log(`${what}: ${o.batches} batches x ${o.itemsPerBatch} items on one key, provider ${profile}, each spec ${o.binding === 'rpm' ? `${rpm} rpm` : `${tpm} tpm`}`);
  const p = await b.provider(what, { latencyMs: 0 });
  const { taskQueue } = await b.worker(p.url);
  await p.setProfile(profile);
  await p.reset();
  const rateLimit = o.binding === 'rpm' ? { requestsPerMinute: rpm } : { requestsPerMinute: rpm, tokensPerMinute: tpm };
  const pipeline = benchPipeline({ providerUrl: p.url, concurrency: o.concurrency, rateLimit, retry: { maxAttempts: 5, initialInterval: 200, maxInterval: 5_000 } });
  const ids = Array.from({ length: o.batches }, (_, i) => b.nextId(`${what}${i}`));
  const t0 = Date.now();
  const handles = await Promise.all(
    ids.map((batchId, i) =>
      b.client.workflow.start<typeof batchPipeline>('batchPipeline', {
        taskQueue,
        workflowId: batchId,
        args: [{ batchId, pipeline, items: makeItems(o.itemsPerBatch, `b${i}-`) }],
      }),
    ),
  );
  await sleep(o.warmupS * 1000);
  const a0 = await p.stats();
  const d0 = await Promise.all(ids.map((id) => doneOf(b.client, id)));
  await sleep(o.windowS * 1000);
  const a1 = await p.stats();
  const d1 = await Promise.all(ids.map((id) => doneOf(b.client, id)));
  const summaries = await Promise.all(handles.map((h) => h.result()));
  const wallMs = Date.now() - t0;
  const total = await p.stats();
  await p.stop();
  const w = window(a0, a1);
  const perMin = (x: number): number => x / (o.windowS / 60);
  const charged = w.inputTokens + w.successes * MAX_OUTPUT_TOKENS;
  const perBatch = ids.map((id, i) => ({ batchId: id, windowItems: d1[i]! - d0[i]!, rows: rowStats(b.resultsDb, id).byStatus }));
  const windowItems = perBatch.reduce((n, x) => n + x.windowItems, 0);
  const notSucceeded = perBatch.reduce((n, x) => n + Object.entries(x.rows).reduce((m, [k, v]) => m + (k === 'succeeded' ? 0 : v), 0), 0);
  const r = {
    binding: o.binding,
    profile,
    batches: o.batches,
    itemsPerBatch: o.itemsPerBatch,
    concurrency: o.concurrency,
    warmupS: o.warmupS,
    windowS: o.windowS,
    window: { ...w, requestsPerMin: perMin(w.successes), tokensPerMin: perMin(charged) },
    shareOfLimit: o.binding === 'rpm' ? perMin(w.successes) / rpm : perMin(charged) / tpm,
    share429: w.rateLimited / Math.max(1, w.requests),
    whole: { requests: total.requests, successes: total.successes, rateLimited: total.byStatus['429'] ?? 0, share429: (total.byStatus['429'] ?? 0) / Math.max(1, total.requests) },
    perBatch: perBatch.map((x) => ({ ...x, shareOfWindow: x.windowItems / Math.max(1, windowItems) })),
    minBatchShare: Math.min(...perBatch.map((x) => x.windowItems / Math.max(1, windowItems))),
    notSucceeded,
    summaries: summaries.map((s) => ({ total: s.total, succeeded: s.succeeded, failed: s.failed, skipped: s.skipped, attempts: s.attempts })),
    wallMs,
  };
  b.log(
    `${what}: ${(r.shareOfLimit * 100).toFixed(1)}% of the limit, ${(r.share429 * 100).toFixed(2)}% 429s in the window (${w.successes} ok / ${w.requests} calls); whole run ${r.whole.rateLimited} 429s of ${r.whole.requests}; batch shares ${r.perBatch.map((x) => (x.shareOfWindow * 100).toFixed(0) + '%').join(' ')}; ${notSucceeded} items not succeeded`,
  );
  return r;
}

export interface AdaptiveOptions {
  latencyMs: number;
  /** Requests the provider serves at once before, and after it halves. */
  capacity: number;
  concurrency: number;
  items: number;
  /** Seconds of each phase: full capacity, halved, restored. */
  phasesS: [number, number, number];
  /** Seconds at the start of each phase not measured (adaptation). */
  settleS: number;
  adaptive: boolean;
}

export async function adaptive(b: LimitsBench, o: AdaptiveOptions) {
  const what = o.adaptive ? 'adaptive' : 'adaptiveOff';
  const half = Math.max(1, Math.floor(o.capacity / 2));
  b.log(`${what}: capacity ${o.capacity} -> ${half} -> ${o.capacity} requests at once, ${o.latencyMs} ms each; concurrency ${o.concurrency}, phases ${o.phasesS.join('/')} s`);
  const p = await b.provider(what, { latencyMs: o.latencyMs });
  const { taskQueue } = await b.worker(p.url);
  await p.setProfile(`capacity:concurrent=${o.capacity}`);
  await p.reset();
  const pipeline = benchPipeline({ providerUrl: p.url, concurrency: o.concurrency, adaptive: o.adaptive, retry: { maxAttempts: 10, initialInterval: 200, maxInterval: 5_000 } });
  const batchId = b.nextId(what);
  await b.client.workflow.start<typeof batchPipeline>('batchPipeline', { taskQueue, workflowId: batchId, args: [{ batchId, pipeline, items: makeItems(o.items, 'a') }] });
  const inFlight: number[] = [];
  const limits: string[] = [];
  const sampler = setInterval(
    () =>
      void p.stats().then(
        (s) => inFlight.push(s.inFlight),
        () => undefined,
      ),
    500,
  );
  const limitSampler = setInterval(
    () =>
      void b.client.workflow
        .getHandle<typeof batchPipeline>(batchId)
        .query(progressQuery)
        .then((q) => limits.push(q.adaptive ? `${q.adaptive.limit}/${q.adaptive.sheds}` : '-'))
        .catch(() => undefined),
    2_000,
  );
  const phases = [];
  for (const [i, seconds] of o.phasesS.entries()) {
    const cap = i === 1 ? half : o.capacity;
    if (i > 0) await p.setProfile(`capacity:concurrent=${cap}`);
    await sleep(o.settleS * 1000);
    const from = inFlight.length;
    const s0 = await p.stats();
    const measured = seconds - o.settleS;
    await sleep(measured * 1000);
    const s1 = await p.stats();
    const w = window(s0, s1);
    const goodput = w.successes / measured;
    const capacityPerS = cap / (o.latencyMs / 1000);
    const samples = inFlight.slice(from);
    const phase = {
      capacity: cap,
      capacityPerS,
      measuredS: measured,
      ...w,
      goodput,
      shareOfCapacity: goodput / capacityPerS,
      share429: w.rateLimited / Math.max(1, w.requests),
      meanInFlight: samples.reduce((a, x) => a + x, 0) / Math.max(1, samples.length),
    };
    b.log(
      `${what} phase ${i + 1}: capacity ${cap} (${capacityPerS}/s): goodput ${goodput.toFixed(2)}/s = ${(phase.shareOfCapacity * 100).toFixed(1)}%, 429s ${(phase.share429 * 100).toFixed(2)}% (${w.rateLimited} of ${w.requests}), mean in flight ${phase.meanInFlight.toFixed(1)}`,
    );
    phases.push(phase);
  }
  clearInterval(sampler);
  clearInterval(limitSampler);
  b.log(`${what}: limit/sheds every 2 s: ${limits.join(' ')}`);
  const progress = await b.client.workflow
    .getHandle<typeof batchPipeline>(batchId)
    .query(progressQuery)
    .catch(() => null);
  await terminateBatch(b.client, batchId);
  await p.stop();
  return {
    adaptive: o.adaptive,
    latencyMs: o.latencyMs,
    concurrency: o.concurrency,
    batchId,
    phases,
    limits,
    progress: progress && { succeeded: progress.succeeded, failed: progress.failed, running: progress.running },
  };
}
