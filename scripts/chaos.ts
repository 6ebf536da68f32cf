/**
 * `npm run chaos`: a 2,000-item batch on two workers while a worker is killed
 * with SIGKILL every ~10 s (and restarted), and the Temporal dev server is
 * restarted once mid-batch on its persisted SQLite file. Then it counts:
 * lost items, duplicate result rows, LLM calls beyond one per item (each blamed
 * on the kill or restart that caused it), and the time from each kill to the
 * next completed item. Exits 1 if anything was lost or duplicated.
 *
 *   npm run chaos
 *   npm run chaos -- --items 500 --kill-every 5 --server-signal SIGKILL
 *   npm run chaos -- --steps --items 300 --kill-every 8   (a three-step pipeline; extra calls per step)
 *   npm run chaos -- --help
 *
 * Processes, all on 127.0.0.1 and children of this one: the dev server
 * (`--db-filename` in a temp dir), the fault-injecting provider (profile none,
 * 200 ms latency so calls are in flight at every kill) behind a counting proxy,
 * and `src/worker/worker.ts` per worker slot. Results go to one SQLite file shared by
 * the workers (STEADFAST_DB_PATH); JSON to bench-results/chaos-<time>.json.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import type { WorkflowHandle } from '@temporalio/client';
import { sleep, snapshotCode, startDevServer, startProviderProc, startWorkerProc } from '../bench/procs.ts';
import type { DevServer, WorkerProc } from '../bench/procs.ts';
import { fmt, machine, table, writeResults } from '../bench/report.ts';
import { benchPipeline, makeItems } from '../bench/workload.ts';
import type { BatchSummary } from '../src/shared/types.ts';
import type { batchPipeline } from '../workflows/batch.ts';
import { progressQuery } from '../src/shared/messages.ts';
import { analyze, perStep } from './chaos/analyze.ts';
import type { Kill, ServerRestart } from './chaos/analyze.ts';
import { startCountingProxy } from './chaos/proxy.ts';

const { values: args } = parseArgs({
  allowNegative: true,
  options: {
    help: { type: 'boolean', default: false },
    items: { type: 'string', default: '2000' },
    workers: { type: 'string', default: '2' },
    concurrency: { type: 'string', default: '50' },
    'kill-every': { type: 'string', default: '10' },
    'latency-ms': { type: 'string', default: '200' },
    'server-restart-at': { type: 'string', default: '0.4' },
    'server-signal': { type: 'string', default: 'SIGTERM' },
    'timeout-min': { type: 'string', default: '20' },
    'stall-seconds': { type: 'string', default: '90' },
    keep: { type: 'boolean', default: false },
    steps: { type: 'boolean', default: false },
    'fast-path': { type: 'boolean', default: false },
  },
});
if (args.help) {
  console.log(`usage: npm run chaos -- [--items 2000] [--workers 2] [--concurrency 50] [--kill-every 10 (s)]
       [--latency-ms 200] [--server-restart-at 0.4 (share of items done)] [--server-signal SIGTERM|SIGKILL]
       [--timeout-min 20] [--stall-seconds 90] [--keep] [--steps] [--fast-path]
  --fast-path: batch.fastPath true (the batch makes each item's first call itself).
  --steps: each item runs a three-step pipeline (extract -> classify -> note, the note skipped by a when);
  calls are counted per (item, step) and the report breaks extra calls down per step.
  A batch that finishes no item for --stall-seconds is reported as stalled (with its stack). A stall fails the run.`);
  process.exit(0);
}

const N = Number(args.items);
const WORKERS = Math.max(2, Number(args.workers));
const KILL_EVERY_MS = Number(args['kill-every']) * 1000;
const RESTART_AT = Number(args['server-restart-at']);
const SERVER_SIGNAL = args['server-signal'] as NodeJS.Signals;
const STALL_MS = Number(args['stall-seconds']) * 1000;
const log = (msg: string): void => console.error(`chaos ${new Date().toISOString().slice(11, 19)}: ${msg}`);

const dir = mkdtempSync(join(tmpdir(), 'steadfast-chaos-'));
const dbPath = join(dir, 'results.db');
const taskQueue = `chaos-${Date.now().toString(36)}`;
const batchId = `chaos-${Date.now().toString(36)}`;

/** The batch stopped making progress although workers were up. */
interface Stall {
  at: number;
  done: number;
  running: number;
  started: number;
  /** The batch workflow's stack (`__stack_trace` query): where its loop waits. */
  stack: string;
}

interface Slot {
  name: string;
  worker: WorkerProc | null;
  starting: boolean;
  generation: number;
}

async function main(): Promise<number> {
  const m = machine();
  log(`${N} items, ${WORKERS} workers, SIGKILL every ~${KILL_EVERY_MS / 1000} s, server restart (${SERVER_SIGNAL}) at ${RESTART_AT * 100}% done; temp dir ${dir}`);
  const code = snapshotCode(join(dir, 'code'));
  log(`workers run a copy of the code at ${code.commit}${code.dirty.length ? ` plus ${code.dirty.length} uncommitted changes` : ''}`);
  const server: DevServer = await startDevServer({ dbFile: join(dir, 'temporal.db'), logFile: join(dir, 'dev-server.log') });
  const provider = await startProviderProc({ profile: 'none', latencyMs: Number(args['latency-ms']), jitterMs: 50, logFile: join(dir, 'provider.log') });
  const proxy = await startCountingProxy(provider.url);
  const connection = await Connection.connect({ address: server.address });
  const client = new Client({ connection });
  const slots: Slot[] = Array.from({ length: WORKERS }, (_, i) => ({ name: String.fromCharCode(65 + i), worker: null, starting: false, generation: 0 }));
  const kills: Kill[] = [];
  /** How long each worker took from spawn to polling (it bundles the workflow code first). */
  const startTimes: number[] = [];
  const unexpectedExits: { slot: string; pid: number; at: number; code: number | null }[] = [];
  let restart: ServerRestart | null = null;
  let stopping = false;

  // A worker per slot; one that exits on its own (not killed by us) is restarted and recorded.
  const env: NodeJS.ProcessEnv = { OPENAI_API_KEY: '', ANTHROPIC_API_KEY: '' };
  const launch = async (slot: Slot): Promise<void> => {
    slot.starting = true;
    for (let attempt = 1; !stopping; attempt++) {
      try {
        const w = await startWorkerProc({
          address: server.address,
          taskQueue,
          dbPath,
          providerUrl: proxy.urlFor(slot.name),
          logFile: join(dir, `worker-${slot.name}.log`),
          env,
          codeRoot: code.root,
        });
        const gen = ++slot.generation;
        slot.worker = w;
        startTimes.push(w.readyMs);
        void w.proc.exited.then((code) => {
          if (slot.generation !== gen || stopping) return;
          if (!kills.some((k) => k.pid === w.pid)) {
            unexpectedExits.push({ slot: slot.name, pid: w.pid, at: Date.now(), code });
            log(`worker ${slot.name} (pid ${w.pid}) exited by itself (${code}); restarting`);
            slot.worker = null;
            void launch(slot);
          }
        });
        break;
      } catch (err) {
        log(`worker ${slot.name} failed to start (attempt ${attempt}): ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
        await sleep(2_000);
      }
    }
    slot.starting = false;
  };
  await Promise.all(slots.map(launch));
  log(`dev server ${server.address}, provider ${provider.url} behind proxy ${proxy.url}, workers ${slots.map((s) => `${s.name}:${s.worker?.pid}`).join(' ')}`);

  const items = makeItems(N);
  const started = Date.now();
  const handle: WorkflowHandle<typeof batchPipeline> = await client.workflow.start<typeof batchPipeline>('batchPipeline', {
    taskQueue,
    workflowId: batchId,
    args: [{ batchId, pipeline: args.steps ? chaosSteps(chaosPipeline()) : chaosPipeline(), items }],
  });

  // The killer: every ~KILL_EVERY_MS, SIGKILL the longest-running worker that is up, and start it again.
  let lastDone = 0;
  let lastProgressAt = Date.now();
  const stalls: Stall[] = [];
  const killer = (async () => {
    while (!stopping) {
      await sleep(KILL_EVERY_MS * (0.8 + Math.random() * 0.4));
      if (stopping) break;
      const up = slots.filter((s) => s.worker && !s.starting).sort((a, b) => a.worker!.startedAt - b.worker!.startedAt);
      const victim = up[0];
      if (!victim?.worker) continue;
      const w = victim.worker;
      const open = proxy.inFlight(victim.name);
      const at = Date.now();
      kills.push({ at, slot: victim.name, pid: w.pid, inFlight: open.length, inFlightItems: open.flatMap((c) => (c.itemId ? [c.itemId] : [])) });
      w.proc.child.kill('SIGKILL');
      victim.worker = null;
      log(`SIGKILL worker ${victim.name} (pid ${w.pid}) with ${open.length} LLM calls in flight; ${lastDone}/${N} done`);
      void w.proc.exited.then(() => launch(victim));
    }
  })();

  // Progress, and the one server restart when RESTART_AT of the items are done.
  let summary: BatchSummary | null = null;
  const deadline = started + Number(args['timeout-min']) * 60_000;
  const resultP = (async () => {
    for (;;) {
      try {
        return await handle.result();
      } catch (err) {
        // The server restart breaks the long poll; anything else is a real failure.
        if (Date.now() > deadline) throw err;
        if (!/unavailable|connect|transport|closed|deadline|14 /i.test(String(err))) throw err;
        await sleep(1_000);
      }
    }
  })();
  resultP.then((s) => (summary = s)).catch(() => undefined);
  while (summary === null && Date.now() < deadline) {
    await Promise.race([resultP.catch(() => undefined), sleep(5_000)]);
    if (summary) break;
    const p = await handle.query(progressQuery).catch(() => null);
    if (p) {
      const done = p.succeeded + p.failed + p.skipped + p.approved;
      if (done !== lastDone) lastProgressAt = Date.now();
      lastDone = done;
      log(`progress ${lastDone}/${N} done, ${p.running} running, ${p.ratePerMinute}/min, run ${p.runs}`);
      if (Date.now() - lastProgressAt > STALL_MS && lastDone < N) {
        // No item finished for a long time although workers run: capture where the batch waits.
        const stack = await handle.query<string, []>('__stack_trace').catch((err: unknown) => `stack query failed: ${String(err)}`);
        const stall: Stall = { at: Date.now() - started, done: lastDone, running: p.running, started: p.started, stack };
        log(`STALLED: ${lastDone}/${N} done, ${p.running} running, ${p.started} started, no item finished for ${fmt.s(Date.now() - lastProgressAt)}; waiting at ${stack.trim()}`);
        stalls.push(stall);
        lastProgressAt = Date.now();
      }
    }
    if (!restart && lastDone >= RESTART_AT * N) {
      const at = Date.now();
      log(`restarting the dev server (${SERVER_SIGNAL}) with ${proxy.inFlight().length} LLM calls in flight`);
      await server.restart(SERVER_SIGNAL);
      restart = { at, upAt: Date.now(), signal: SERVER_SIGNAL };
      log(`dev server back after ${fmt.s(restart.upAt - at)}`);
    }
  }
  await resultP.catch((err: unknown) => log(`batch did not finish: ${String(err)}`));
  const wallMs = Date.now() - started;
  stopping = true;
  await killer;
  log(`batch ${summary ? 'completed' : 'NOT completed'} in ${fmt.s(wallMs)}; stopping workers`);
  await Promise.all(slots.map((s) => s.worker?.stop('SIGTERM')));
  await sleep(500);

  const verdict = analyze({ dbPath, batchId, itemIds: items.map((i) => i.id), calls: proxy.calls, kills, restart });
  // Each item workflow must have run exactly once (deterministic ids; a second run would be a duplicate execution).
  const runsPerItem = new Map<string, number>();
  for await (const wf of client.workflow.list({ query: `BatchId = "${batchId}" AND WorkflowType = "itemPipeline"` }))
    runsPerItem.set(wf.workflowId, (runsPerItem.get(wf.workflowId) ?? 0) + 1);
  const itemRunsTwice = [...runsPerItem.values()].filter((n) => n > 1).length;
  const providerStats = await provider.stats();

  await connection.close();
  await proxy.close();
  await provider.stop();
  await server.stop();

  const goalKills = verdict.kills.filter((k) => !k.withinGoal);
  const stepFigures = args.steps ? perStep(verdict, proxy.calls) : {};
  const nextMs = verdict.kills.map((k) => k.nextCompletedMs).filter((x): x is number => x !== null);
  const recMs = verdict.kills.map((k) => k.interruptedRecoveredMs).filter((x): x is number => x !== null);
  // In flight at each kill, counted afterwards from the proxy's records (the log line shows the live count).
  const inflightSum = verdict.kills.reduce((a, k) => a + k.inFlight, 0);
  const answeredSum = verdict.kills.reduce((a, k) => a + k.answeredUnreported, 0);
  const rows: string[][] = [
    ['measure', 'value', 'goal'],
    ['items / result rows', `${N} / ${verdict.rows}`, ''],
    ['lost items', String(verdict.lost.length), '0'],
    ['duplicate result rows (same batch, item)', String(verdict.duplicateRows), '0'],
    ['item workflows run more than once', String(itemRunsTwice), '0'],
    ['rows written more than once (write_count > 1)', String(verdict.rewrittenRows), ''],
    ['worker kills (SIGKILL) / unexpected worker exits', `${verdict.kills.length} / ${unexpectedExits.length}`, ''],
    ['worker start, spawn to polling: median / max', startTimes.length ? `${fmt.s(median(startTimes))} / ${fmt.s(Math.max(...startTimes))}` : '-', ''],
    ['dev server restarts', restart ? `1 (${restart.signal}, down ${fmt.s(restart.upAt - restart.at)})` : '0', '1'],
    ['LLM calls / beyond one per item', `${verdict.calls} / ${verdict.extraCalls}`, ''],
    [
      '  extra: open at a kill / answered but unreported / server restart / other',
      `${verdict.extraBy.inFlightAtKill} / ${verdict.extraBy.answeredBeforeKill} / ${verdict.extraBy.serverRestart} / ${verdict.extraBy.other}`,
      '',
    ],
    ['  successful answers beyond one per item', String(verdict.extraSuccesses), ''],
    ['calls in flight at kills: open at the provider + answered, not yet reported', `${inflightSum} + ${answeredSum}`, ''],
    ['kills with extra calls > calls in flight', `${goalKills.length} of ${verdict.kills.length}`, '0'],
    ['extra calls not explained by a kill or the restart', String(verdict.extraBy.other), '0'],
    ['kill -> next completed item, median / max', nextMs.length ? `${fmt.s(median(nextMs))} / ${fmt.s(Math.max(...nextMs))}` : '-', ''],
    ['kill -> its interrupted items done, median / max', recMs.length ? `${fmt.s(median(recMs))} / ${fmt.s(Math.max(...recMs))}` : '-', ''],
    ['batch stalls (no item finished for ' + STALL_MS / 1000 + ' s)', `${stalls.length}`, '0'],
    ...Object.entries(stepFigures).map(([step, f]) => [
      `step ${step}: calls / extra / extra at kills / its calls in flight at kills (open + answered)`,
      `${f.calls} / ${f.extra} / ${f.extraAtKills} / ${f.inFlightAtKills}`,
      'extra at kills <= in flight',
    ]),
    ['wall time', fmt.s(wallMs), ''],
  ];
  console.log(`\nSteadfast chaos run (${m.cpus} cpus, ${m.memTotalGiB} GiB, node ${m.node}): batch ${batchId}\n`);
  console.log(table(rows));
  console.log(`\nper kill (time, worker, calls in flight: open + answered-unreported, extra calls, next completed item, interrupted items done):`);
  for (const k of verdict.kills) {
    const inflight = `${k.inFlight}${k.answeredUnreported ? ` + ${k.answeredUnreported}` : ''}`;
    console.log(
      `  +${fmt.s(k.at - started).padStart(8)}  ${k.slot}  in flight ${inflight.padStart(5)}  extra ${String(k.extra).padStart(3)}${k.withinGoal ? '' : ' (over)'}  next ${k.nextCompletedMs === null ? '-' : fmt.s(k.nextCompletedMs)}  recovered ${k.interruptedRecoveredMs === null ? '-' : fmt.s(k.interruptedRecoveredMs)}`,
    );
  }
  const failed = verdict.lost.length > 0 || verdict.duplicateRows > 0 || itemRunsTwice > 0 || summary === null || stalls.length > 0;
  const file = writeResults('chaos', {
    machine: m,
    args,
    code: { commit: code.commit, dirty: code.dirty },
    batchId,
    wallMs,
    summary,
    restart: restart && { ...restart, at: restart.at - started, upAt: restart.upAt - started },
    unexpectedExits,
    workerStartMs: startTimes,
    itemRunsTwice,
    stalls,
    providerStats,
    // Every LLM call as the proxy saw it (times relative to the batch start), for re-analysis.
    calls: proxy.calls.map((c) => ({ ...c, startedAt: c.startedAt - started, endedAt: c.endedAt === null ? null : c.endedAt - started })),
    verdict: {
      ...verdict,
      lost: verdict.lost.slice(0, 100),
      kills: verdict.kills.map((k) => ({ ...k, at: k.at - started })),
      extraDetails: verdict.extraDetails.map((d) => ({
        ...d,
        killAt: d.killAt === null ? null : d.killAt - started,
        nextStartedAt: d.nextStartedAt - started,
        prev: { ...d.prev, startedAt: d.prev.startedAt - started, endedAt: d.prev.endedAt === null ? null : d.prev.endedAt - started },
      })),
    },
    steps: stepFigures,
    passed: !failed,
  });
  console.log(`\nwritten to ${file}`);
  for (const st of stalls) console.log(`stall at +${fmt.s(st.at)}: ${st.done}/${N} done, ${st.running} running; batch waits at ${st.stack.trim()}`);
  console.log(
    failed
      ? `FAILED: ${verdict.lost.length} lost, ${verdict.duplicateRows} duplicate rows, ${itemRunsTwice} item workflows run twice, ${stalls.length} stalls${summary ? '' : ', batch not finished'}`
      : 'passed: nothing lost, nothing duplicated, no stall',
  );
  if (!args.keep) rmSync(dir, { recursive: true, force: true });
  return failed ? 1 : 0;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** The bench workload with no baseURL: calls go to STEADFAST_SIMULATED_PROVIDER_URL, i.e. each worker's proxy slot. */
function chaosPipeline() {
  const spec = benchPipeline({ providerUrl: 'http://unused.invalid', concurrency: Number(args.concurrency), timeoutMs: 5_000, ...(args['fast-path'] ? { fastPath: true } : {}) });
  const [primary] = spec.providers;
  const { baseURL: _unused, ...local } = primary!;
  return { ...spec, providers: [local] };
}

/**
 * The multi-step workload: the ticket prompt in three steps, each naming itself (`Step <name>:`,
 * which the proxy reads to count calls per step); the note runs only for urgency >= 3.
 */
function chaosSteps(spec: ReturnType<typeof chaosPipeline>) {
  const { prompt, output, ...rest } = spec;
  const head = prompt!.template;
  return {
    ...rest,
    name: 'chaos-steps',
    steps: [
      { name: 'extract', prompt: { ...prompt!, template: `Step extract: ${head}` }, output },
      {
        name: 'classify',
        prompt: { template: `Step classify: Ticket {{id}} from {{customer}} was filed as {{steps.extract.category}}. Rate its urgency again.` },
        output,
      },
      {
        name: 'note',
        when: 'steps.classify.urgency >= 3',
        prompt: { template: 'Step note: Ticket {{id}} from {{customer}}: write a one-line note on {{steps.extract.summary}}.' },
      },
    ],
  };
}

// Exit explicitly: a worker restarted in the last moment may still hold pipes open (the exit handler kills it).
process.exit(
  await main().catch((err: unknown) => {
    console.error('chaos failed:', err instanceof Error ? err.stack : err);
    return 2;
  }),
);
