/**
 * Workflow edges under load, on a fresh dev server with three workers (each with
 * its /metrics endpoint, so each runs the batch observer):
 *
 *   queries: a batch (default 2,000 items) while a prober asks `progress` every
 *            500 ms, as a watching CLI does: failed queries, latency, and the
 *            slowest answer within 10 s of each continue-as-new.
 *   reviews: a batch by reference whose every item fails for good (default 10,000
 *            lines, each an InvalidItem whose reason is a 3.7 KB HTML 502 page, so
 *            no LLM call and no circuit breaker slows the fill): once all await review, the progress answer's size and latency, the whole
 *            review list (`reviewQueue` pages), decisions by Update, one bulk
 *            `reviewMany` skip of all the rest and the time until the batch ends,
 *            the batch's continue-as-new with the queue in its carry, and the
 *            progress poll's slowest answer within 10 s of each continue-as-new.
 *
 *   node bench/edges.ts [--items 2000] [--review-items 10000] [--only queries|reviews] [--keep]
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { progressQuery, reviewManyUpdate, reviewQueueQuery, reviewUpdate } from '../src/shared/messages.ts';
import { openStore } from '../activities/store.ts';
import { clientCodec } from '../src/common/claim-check.ts';
import { loadConfig } from '../src/common/config.ts';
import type { Progress, ReviewQueuePage } from '../src/shared/messages.ts';
import type { batchPipeline } from '../workflows/batch.ts';
import { freePort, sleep, snapshotCode, startDevServer, startProviderProc, startWorkerProc } from './procs.ts';
import { machine, writeResults } from './report.ts';
import { INVALID_LINE_FIELD } from '../src/shared/spec.ts';
import { benchPipeline, makeItem, makeItems } from './workload.ts';

const { values: args } = parseArgs({
  options: {
    items: { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '100' },
    'review-items': { type: 'string', default: '10000' },
    workers: { type: 'string', default: '3' },
    only: { type: 'string' },
    keep: { type: 'boolean', default: false },
  },
});
const log = (msg: string): void => console.error(`edges: ${msg}`);
const dir = mkdtempSync(join(tmpdir(), 'steadfast-edges-'));
const stamp = Date.now().toString(36);
const only = new Set((args.only ?? 'queries,reviews').split(','));

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]! : 0;
};

async function main(): Promise<void> {
  const code = snapshotCode(join(dir, 'code'));
  log(`code ${code.commit}${code.dirty.length ? ` plus ${code.dirty.length} uncommitted changes` : ''}; temp dir ${dir}`);
  const server = await startDevServer({ dbFile: join(dir, 'temporal.db'), logFile: join(dir, 'dev-server.log') });
  const provider = await startProviderProc({ latencyMs: 50, logFile: join(dir, 'provider.log') });
  const connection = await Connection.connect({ address: server.address });
  // The workers' claim check: review pages over 128 KiB come back as keys into their database.
  const dbPath = join(dir, 'results.db');
  const codec = clientCodec(loadConfig({ ...process.env, STEADFAST_DB_PATH: dbPath }), () => openStore({ dbPath }));
  const client = new Client({ connection, dataConverter: { payloadCodecs: [codec] } });
  const taskQueue = `edges-${stamp}`;
  const workers: Awaited<ReturnType<typeof startWorkerProc>>[] = [];
  process.once('SIGINT', () => {
    void Promise.allSettled([...workers.map((w) => w.stop()), provider.stop()])
      .then(() => server.stop())
      .finally(() => process.exit(130));
  });
  for (let i = 0; i < Number(args.workers); i++) {
    workers.push(
      await startWorkerProc({
        address: server.address,
        taskQueue,
        dbPath,
        providerUrl: provider.url,
        logFile: join(dir, `worker-${i}.log`),
        codeRoot: code.root,
        env: { STEADFAST_METRICS_PORT: String(await freePort()) },
      }),
    );
  }
  log(`${workers.length} workers on ${taskQueue}`);
  const out: Record<string, unknown> = { machine: machine(), commit: code.commit, workers: workers.length };
  try {
    if (only.has('queries')) out['queries'] = await queries();
    if (only.has('reviews')) out['reviews'] = await reviews();
  } finally {
    for (const w of workers) await w.stop().catch(() => undefined);
    await provider.stop();
    await connection.close();
    await codec.close();
    await server.stop();
    if (!args.keep) rmSync(dir, { recursive: true, force: true });
  }
  console.log(JSON.stringify(out, null, 2));
  log(`results: ${writeResults('edges', out)}`);

  async function queries() {
    const n = Number(args.items);
    const batchId = `edges-q-${stamp}`;
    const pipeline = benchPipeline({ providerUrl: provider.url, concurrency: Number(args.concurrency) });
    const handle = await client.workflow.start<typeof batchPipeline>('batchPipeline', { taskQueue, workflowId: batchId, args: [{ batchId, pipeline, items: makeItems(n) }] });
    const samples: { at: number; ms: number; ok: boolean; runs?: number; error?: string }[] = [];
    let done = false;
    const result = handle.result().finally(() => (done = true));
    const t0 = Date.now();
    while (!done) {
      const at = Date.now();
      const p = await client
        .withDeadline(at + 10_000, () => handle.query(progressQuery))
        .then((q: Progress) => ({ ok: true, runs: q.runs }))
        .catch((err: unknown) => ({ ok: false, error: err instanceof Error ? err.message.slice(0, 120) : String(err) }));
      if (done) break;
      samples.push({ at: at - t0, ms: Date.now() - at, ...p });
      await sleep(Math.max(0, 500 - (Date.now() - at)));
    }
    const summary = await result;
    const changes = samples.filter((s, i) => i > 0 && s.runs !== undefined && s.runs !== samples.slice(0, i).findLast((x) => x.runs !== undefined)?.runs).map((s) => s.at);
    const near = samples.filter((s) => changes.some((c) => Math.abs(s.at - c) <= 10_000));
    const ms = samples.map((s) => s.ms);
    const r = {
      items: n,
      wallMs: Date.now() - t0,
      summary: { total: summary.total, succeeded: summary.succeeded, attempts: summary.attempts },
      runs: samples.findLast((s) => s.runs !== undefined)?.runs ?? null,
      queries: samples.length,
      failed: samples.filter((s) => !s.ok).length,
      errors: [...new Set(samples.filter((s) => !s.ok).map((s) => s.error))],
      latencyMs: { p50: pct(ms, 50), p99: pct(ms, 99), max: Math.max(...ms) },
      continueAsNew: changes.length,
      maxNearContinueAsNewMs: near.length ? Math.max(...near.map((s) => s.ms)) : null,
    };
    log(`queries: ${JSON.stringify(r)}`);
    return r;
  }

  async function reviews() {
    const n = Number(args['review-items']);
    const batchId = `edges-r-${stamp}`;
    const pipeline = { ...benchPipeline({ providerUrl: provider.url, concurrency: Number(args.concurrency), reviewTimeoutMs: 3_600_000 }) };
    const html502 = (i: number) =>
      `ProviderUnavailable: 502 Bad Gateway: <html><head><title>502 Bad Gateway</title></head><body>${`<p>upstream ${i % 97} closed the connection</p>\n`.repeat(90)}</body></html>`;
    const jsonl = join(dir, 'reviews.jsonl');
    writeFileSync(jsonl, Array.from({ length: n }, (_, i) => `${JSON.stringify({ ...makeItem(i, 'r'), [INVALID_LINE_FIELD]: html502(i) })}\n`).join(''));
    const t0 = Date.now();
    const handle = await client.workflow.start<typeof batchPipeline>('batchPipeline', { taskQueue, workflowId: batchId, args: [{ batchId, pipeline, source: { jsonl } }] });
    let failedQueries = 0;
    let lastLog = 0;
    const polls: { at: number; ms: number; runs?: number }[] = [];
    for (;;) {
      const at = Date.now();
      const p: Progress | null = await client.withDeadline(Date.now() + 10_000, () => handle.query(progressQuery)).catch(() => (failedQueries++, null));
      polls.push({ at: at - t0, ms: Date.now() - at, ...(p ? { runs: p.runs } : {}) });
      if (p && (p.awaitingReviewCount ?? 0) >= n) break;
      if (Date.now() - lastLog > 30_000) {
        lastLog = Date.now();
        log(`reviews: ${p?.awaitingReviewCount ?? '?'} of ${n} awaiting review, run ${p?.runs ?? '?'}`);
      }
      await sleep(2_000);
    }
    const runChanges = polls.filter((s, i) => i > 0 && s.runs !== undefined && s.runs !== polls.slice(0, i).findLast((x) => x.runs !== undefined)?.runs).map((s) => s.at);
    const nearRunChange = polls.filter((s) => runChanges.some((c) => Math.abs(s.at - c) <= 10_000)).map((s) => s.ms);
    const allWaitingMs = Date.now() - t0;
    const q0 = Date.now();
    const progress = await handle.query(progressQuery);
    const progressMs = Date.now() - q0;
    const l0 = Date.now();
    let listed = 0;
    let pages = 0;
    let biggestPage = 0;
    for (let offset: number | null = 0; offset !== null;) {
      const page: ReviewQueuePage = await handle.query(reviewQueueQuery, { offset, limit: 1_000 });
      listed += page.items.length;
      pages += 1;
      biggestPage = Math.max(biggestPage, Buffer.byteLength(JSON.stringify(page)));
      offset = page.next;
    }
    const listMs = Date.now() - l0;
    const d0 = Date.now();
    const decide = progress.awaitingReview.slice(0, 20);
    for (const w of decide) await handle.executeUpdate(reviewUpdate, { args: [{ itemId: w.itemId, decision: 'skip' }] });
    const decisionMs = (Date.now() - d0) / Math.max(1, decide.length);
    const after = await handle.query(progressQuery);
    const desc = await handle.describe();
    // One bulk decision for all the rest, then the batch ends by itself.
    const b0 = Date.now();
    const bulk = await handle.executeUpdate(reviewManyUpdate, { args: [{ decision: 'skip' }] });
    const bulkMs = Date.now() - b0;
    const summary = await handle.result();
    const bulkToEndMs = Date.now() - b0;
    const workerLogs = Array.from({ length: workers.length }, (_, i) => readFileSync(join(dir, `worker-${i}.log`), 'utf8')).join('\n');
    const pollMs = polls.map((x) => x.ms);
    const r = {
      items: n,
      allWaitingMs,
      failedQueriesWhileFilling: failedQueries,
      progressBytes: Buffer.byteLength(JSON.stringify(progress)),
      progressMs,
      awaitingReviewCount: progress.awaitingReviewCount,
      reasonBytes: Buffer.byteLength(html502(0)),
      reviewList: { listed, pages, biggestPageBytes: biggestPage, ms: listMs },
      decisions: { n: decide.length, msEach: Math.round(decisionMs), awaitingAfter: after.awaitingReviewCount },
      bulk: { decided: bulk.decided, remaining: bulk.remaining, updateMs: bulkMs, untilBatchEndMs: bulkToEndMs },
      summary: { total: summary.total, succeeded: summary.succeeded, skipped: summary.skipped, status: summary.status },
      polls: { n: polls.length, failed: failedQueries, p50: pct(pollMs, 50), p99: pct(pollMs, 99), max: Math.max(...pollMs) },
      continueAsNewWhileFilling: runChanges.length,
      maxPollNearContinueAsNewMs: nearRunChange.length ? Math.max(...nearRunChange) : null,
      isolateTimeoutsInWorkerLogs: (workerLogs.match(/Script execution timed out/g) ?? []).length,
      runs: after.runs,
      historyLength: desc.historyLength,
    };
    log(`reviews: ${JSON.stringify(r)}`);
    return r;
  }
}

await main();
