/**
 * The batch's fast path at its edges, on the real dev server: a cancel while fast calls
 * are in flight (with and without handed-over items), a circuit that opens under fast
 * calls, continue-as-new with fast runs in flight, budgets, a store that refuses the
 * call's own write, a re-run and a reset of a batch whose items took the fast path,
 * review of a handed-over item and a spec with one attempt. Every case checks the rows,
 * the summary's counts and that no item was called or written twice.
 */
import { execFile } from 'node:child_process';
import { DatabaseSync } from 'node:sqlite';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { temporalCliPath } from '../../src/dev/temporal-tools.ts';
import { DEFAULT_MODELS } from '../../src/provider/index.ts';
import { cancelUpdate, progressQuery, reviewUpdate, setBudgetUpdate } from '../../src/shared/messages.ts';
import type { PipelineSpecInput } from '../../src/shared/spec.ts';
import type { BatchSummary } from '../../src/shared/types.ts';
import { harnessEnv, runCli } from '../support/cli.ts';
import { createHarness } from '../support/harness.ts';
import type { Harness } from '../support/harness.ts';
import { until } from '../support/wait.ts';

/**
 * gpt-4o-mini answers after 1.5 s, claude-sonnet-4-5 after 20 s (long enough for a cancellation
 * to reach the activity at its next heartbeat); every other model at once.
 */
const LATENCY: Record<string, number> = { 'gpt-4o-mini': 1_500, 'claude-sonnet-4-5': 20_000 };
const models = DEFAULT_MODELS.map((m) => (LATENCY[m.id] !== undefined ? { ...m, latencyMs: { fixed: LATENCY[m.id]!, jitter: 0 } } : m));
/** A first tier whose calls stay in flight for 20 s. */
const slow = { name: 'slow', kind: 'anthropic', model: 'claude-sonnet-4-5', timeout: '60s' } as const;

const base: PipelineSpecInput = {
  name: 'fast-edges',
  prompt: { template: 'Ticket {{id}}: {{text}}' },
  providers: [
    { name: 'primary', kind: 'openai', model: 'gpt-4o-mini', timeout: '60s' },
    { name: 'secondary', kind: 'anthropic', model: 'claude-haiku-4-5', timeout: '60s' },
  ],
  retry: { maxAttempts: 3, initialInterval: '20ms', maxInterval: '50ms' },
  review: { timeout: '1h' },
  batch: { concurrency: 6 },
};

/** Every row of a batch was written once; an item that waited for review twice (its `awaiting_review` row, then its final one). */
async function writtenOnce(h: Harness, batchId: string, reviewed: string[] = []): Promise<void> {
  for (const r of await h.store.list(batchId)) expect(await h.store.writeCount(batchId, r.itemId), r.itemId).toBe(reviewed.includes(r.itemId) ? 2 : 1);
}

describe('fast path edges', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({ provider: { models, latencyScale: 1 } });
    // Every batch here takes the fast path unless its spec says otherwise.
    const start = h.startBatch.bind(h);
    h.startBatch = (input, batchId) => start({ ...input, pipeline: { ...input.pipeline, batch: { fastPath: true, ...input.pipeline.batch } } }, batchId);
  });
  afterAll(async () => h?.close());
  const calls = (): number => h.provider.stats().requests;

  for (const how of ['update', 'workflow-cancel'] as const) {
    it(`cancel (${how}) while fast calls hang and a handed-over item hangs in its workflow`, async () => {
      const batchId = `fe-cancel-${how}`;
      const items = [
        { id: 'ok0', text: 'fine' },
        { id: 'ok1', text: 'fine' },
        // A permanent fault on every tier: waits for review (its slot is free again).
        { id: 'r0', text: 'revoked [[fault:auth]]' },
        // Fast calls that hang: cancelled inside the batch.
        ...Array.from({ length: 5 }, (_, i) => ({ id: `h${i}`, text: 'slow [[fault:hang]]' })),
        // A transient first failure: handed over, then its retry hangs in its own workflow.
        { id: 'x0', text: 'flaky [[fault:unavailable,hang]]' },
        ...Array.from({ length: 4 }, (_, i) => ({ id: `q${i}`, text: 'queued' })),
      ];
      const summary = await h.run(async () => {
        const handle = await h.startBatch({ pipeline: base, items }, batchId);
        const p = await until(
          () => handle.query(progressQuery),
          (q) => q.succeeded === 2 && q.awaitingReviewCount === 1 && q.running === 6 && h.provider.stats().openHangs === 6,
        );
        expect(p).toMatchObject({ succeeded: 2, awaitingReviewCount: 1, running: 6, queued: 4 });
        expect(h.provider.stats().openHangs).toBe(6);
        if (how === 'update') {
          const r = await handle.executeUpdate(cancelUpdate, { args: [{ reason: 'wrong prompt' }] });
          expect(r).toMatchObject({ batchId, notStarted: 4 });
        } else {
          await handle.cancel();
        }
        return (await handle.result()) as BatchSummary;
      });
      // `total` counts the items that finished (cancelled ones included); the rest never started.
      expect(summary).toMatchObject({ status: 'cancelled', total: 9, succeeded: 2, cancelled: 7, notStarted: 4 });
      const rows = await h.store.list(batchId);
      expect(Object.fromEntries(rows.map((r) => [r.itemId, r.status]))).toEqual({
        ok0: 'succeeded',
        ok1: 'succeeded',
        r0: 'cancelled',
        ...Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`h${i}`, 'cancelled'])),
        x0: 'cancelled',
      });
      await writtenOnce(h, batchId, ['r0']);
      for (let i = 0; i < 200 && h.provider.stats().openHangs > 0; i++) await sleep(100);
      expect(h.provider.stats().openHangs).toBe(0);
    });
  }

  it('cancel (steadfast cancel) while slow fast calls are in flight, none handed over', async () => {
    const batchId = 'fe-cancel-cli';
    const items = Array.from({ length: 10 }, (_, i) => ({ id: `s${i}`, text: `slow ${i}` }));
    const before = calls();
    const summary = await h.run(async () => {
      const handle = await h.startBatch({ pipeline: { ...base, providers: [slow, base.providers[1]!] }, items }, batchId);
      await until(
        () => handle.query(progressQuery),
        (p) => p.running === 6 && calls() - before === 6,
      );
      const r = await runCli(['cancel', batchId, '--reason', 'stop', '--wait'], harnessEnv(h));
      expect(r.code, r.stderr).toBe(0);
      return (await handle.result()) as BatchSummary;
    });
    expect(summary).toMatchObject({ status: 'cancelled', total: 6, cancelled: 6, notStarted: 4, succeeded: 0 });
    const rows = await h.store.list(batchId);
    expect(rows).toHaveLength(6);
    expect(rows.every((r) => r.status === 'cancelled' && r.output === null)).toBe(true);
    expect(calls() - before).toBe(6);
    await writtenOnce(h, batchId);
  }, 120_000);

  it('a circuit that opens under fast calls: the calls leave the first tier and their items finish on the next', async () => {
    const batchId = 'fe-circuit';
    const items = [
      ...Array.from({ length: 4 }, (_, i) => ({ id: `s${i}`, text: `slow ${i}` })),
      // Fail the first tier at once: they open its circuit while the slow calls are in flight.
      { id: 'd0', text: 'revoked [[fault:auth]]' },
      { id: 'd1', text: 'revoked [[fault:auth]]' },
    ];
    const pipeline: PipelineSpecInput = {
      ...base,
      providers: [slow, base.providers[1]!],
      circuitBreaker: { failureThreshold: 2, cooldown: '30m' },
      review: { timeout: '1s', defaultDecision: 'skip' },
    };
    const before = calls();
    const summary = await h.run(async () => (await h.startBatch({ pipeline, items }, batchId)).result());
    const made = calls() - before;
    const rows = await h.store.list(batchId);
    expect(Object.fromEntries(rows.map((r) => [r.itemId, [r.status, r.tier, r.attempts]]))).toEqual({
      // The first tier's call (cancelled in flight) counts, and the second tier answered.
      s0: ['succeeded', 1, 2],
      s1: ['succeeded', 1, 2],
      s2: ['succeeded', 1, 2],
      s3: ['succeeded', 1, 2],
      d0: ['skipped', null, 2],
      d1: ['skipped', null, 2],
    });
    expect(summary).toMatchObject({ total: 6, succeeded: 4, skipped: 2, failed: 0, tierUse: { slow: 0, secondary: 4 } });
    // Each item: one call on each tier.
    expect(made).toBe(12);
    expect(summary.attempts).toBe(made);
    await writtenOnce(h, batchId, ['d0', 'd1']);
  });

  it('continue-as-new with fast runs in flight: every item one row, several runs', async () => {
    const batchId = 'fe-can';
    const N = 120;
    const items = Array.from({ length: N }, (_, i) => ({ id: `c${i}`, text: i % 20 === 3 ? `flaky ${i} [[fault:unavailable,none]]` : `ticket ${i}` }));
    // The second tier answers at once: a fast first tier keeps the test short.
    const pipeline: PipelineSpecInput = { ...base, providers: [base.providers[1]!, base.providers[0]!], batch: { concurrency: 10 } };
    const before = calls();
    const { summary, runs } = await h.run(async () => {
      const handle = await h.startBatch({ pipeline, items }, batchId);
      const summary = await handle.result();
      return { summary, runs: (await handle.query(progressQuery)).runs };
    });
    expect(runs).toBeGreaterThan(1);
    expect(summary).toMatchObject({ total: N, succeeded: N, failed: 0 });
    const made = calls() - before;
    expect(made).toBe(N + N / 20);
    expect(summary.attempts).toBe(made);
    const rows = await h.store.list(batchId);
    expect(rows).toHaveLength(N);
    expect(new Set(rows.map((r) => r.itemId)).size).toBe(N);
    expect(
      rows
        .filter((r) => r.attempts === 2)
        .map((r) => r.itemId)
        .sort(),
    ).toEqual(
      items
        .filter((i) => i.text.includes('flaky'))
        .map((i) => i.id)
        .sort(),
    );
    await writtenOnce(h, batchId);
  }, 180_000);

  describe('budget', () => {
    /** Input tokens only are priced (as in budget.test.ts), three fast calls in flight at a time. */
    const spec = (budget: PipelineSpecInput['budget']): PipelineSpecInput => ({
      prompt: { template: 'Ticket {{id}}: please classify this support ticket about billing' },
      providers: [{ name: 'primary', kind: 'openai', model: 'gpt-4o', maxOutputTokens: 256, pricing: { inputPerMTok: 1000, outputPerMTok: 0 } }],
      retry: { maxAttempts: 1 },
      batch: { concurrency: 3 },
      ...(budget ? { budget } : {}),
    });
    const items = (n: number, prefix: string) => Array.from({ length: n }, (_, i) => ({ id: `${prefix}${String(i).padStart(2, '0')}` }));
    let perItem = 0;
    beforeAll(async () => {
      const probe = await h.run(async () => (await h.startBatch({ pipeline: spec(undefined), items: items(3, 'x') }, 'fe-budget-probe')).result());
      perItem = probe.costUsd / 3;
      expect(perItem).toBeGreaterThan(0);
    });

    it('stop: never passes the budget; the rest are skipped rows; calls match attempts', async () => {
      const maxCostUsd = 4.5 * perItem;
      const before = calls();
      const summary = await h.run(async () => (await h.startBatch({ pipeline: spec({ maxCostUsd, onExceeded: 'stop' }), items: items(10, 's') }, 'fe-budget-stop')).result());
      const made = calls() - before;
      expect(summary).toMatchObject({ total: 10, status: 'stopped', succeeded: 4, skipped: 6 });
      expect(summary.costUsd).toBeLessThanOrEqual(maxCostUsd);
      expect(made).toBe(4);
      expect(summary.attempts).toBe(made);
      const rows = await h.store.list('fe-budget-stop');
      expect(rows).toHaveLength(10);
      for (const r of rows.filter((x) => x.status === 'skipped')) expect(r).toMatchObject({ attempts: 0, costUsd: 0, error: { type: 'BudgetExceeded' } });
      await writtenOnce(h, 'fe-budget-stop');
    });

    it('pause: stops before passing the budget, finishes after a raise; each item called once', async () => {
      const maxCostUsd = 6.5 * perItem;
      const before = calls();
      const summary = await h.run(async () => {
        const handle = await h.startBatch({ pipeline: spec({ maxCostUsd, onExceeded: 'pause' }), items: items(12, 'p') }, 'fe-budget-pause');
        const paused = await until(
          () => handle.query(progressQuery),
          (p) => p.budget?.state === 'paused' && p.running === 0,
        );
        expect(paused).toMatchObject({ started: 6, succeeded: 6, running: 0, queued: 6, paused: true });
        expect(paused.budget!.spentUsd).toBeLessThanOrEqual(maxCostUsd);
        expect(calls() - before).toBe(6);
        await handle.executeUpdate(setBudgetUpdate, { args: [{ maxCostUsd: 100 * perItem }] });
        return await handle.result();
      });
      expect(summary).toMatchObject({ total: 12, succeeded: 12, status: 'completed' });
      expect(calls() - before).toBe(12);
      expect(summary.attempts).toBe(12);
      await writtenOnce(h, 'fe-budget-pause');
    });
  });

  /**
   * The write lock is held 15 s, longer than the call's heartbeat timeout (10 s). `60s`: the calls'
   * writes wait, heartbeating, behind each other on the store's thread; those whose tries run out leave
   * the row to the batch. `5s`: a call must return within its start-to-close of 10 s, so every call gives
   * up its write and the batch writes every row. Either way the provider sees one call per item.
   */
  for (const timeout of ['60s', '5s'] as const)
    it(`a store that refuses the call its write (timeout ${timeout}): the batch writes the row, the provider saw one call per item`, async () => {
      const batchId = `fe-locked-${timeout}`;
      const N = 6;
      const items = Array.from({ length: N }, (_, i) => ({ id: `l${i}`, text: `locked ${i}` }));
      const before = h.provider.stats();
      const locker = new DatabaseSync(h.config.dbPath);
      const pricing = { inputPerMTok: 1000, outputPerMTok: 2000 };
      const pipeline: PipelineSpecInput = { ...base, providers: [{ ...base.providers[0]!, pricing, timeout }] };
      const summary = await h.run(async () => {
        const handle = await h.startBatch({ pipeline, items }, batchId);
        // Every call is in flight (1.5 s) when the write lock is taken; it is held past their answers and the call's own retries.
        await until(
          () => handle.query(progressQuery),
          () => h.provider.stats().requests - before.requests === N,
        );
        expect(await h.store.count(batchId)).toBe(0);
        locker.exec('BEGIN EXCLUSIVE');
        await sleep(15_000);
        const during = locker.prepare('SELECT COUNT(*) AS n FROM results WHERE batch_id = ?').get(batchId)?.['n'];
        locker.exec('COMMIT');
        locker.close();
        expect(during).toBe(0);
        return await handle.result();
      });
      const after = h.provider.stats();
      expect(summary).toMatchObject({ total: N, succeeded: N, attempts: N });
      expect(after.requests - before.requests).toBe(N);
      const rows = await h.store.list(batchId);
      expect(rows).toHaveLength(N);
      for (const r of rows) {
        expect(r).toMatchObject({ status: 'succeeded', attempts: 1, tier: 0, model: 'gpt-4o-mini', error: null });
        expect(typeof r.output).toBe('string');
        expect(r.inputTokens).toBeGreaterThan(0);
        expect(r.outputTokens).toBeGreaterThan(0);
        expect(r.costUsd).toBeCloseTo((r.inputTokens * pricing.inputPerMTok + r.outputTokens * pricing.outputPerMTok) / 1e6, 9);
      }
      expect(rows.reduce((s, r) => s + r.inputTokens, 0)).toBe(after.tokens.input - before.tokens.input);
      expect(rows.reduce((s, r) => s + r.outputTokens, 0)).toBe(after.tokens.output - before.tokens.output);
      expect(summary.inputTokens).toBe(after.tokens.input - before.tokens.input);
      const events = (await h.client.workflow.getHandle(batchId).fetchHistory()).events ?? [];
      const byBatch = events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'persistResult').length;
      if (timeout === '5s') {
        expect(byBatch).toBe(N);
        // A call's abandoned write may still land (before or after the batch's): the same row, upserted.
        for (const r of rows) expect(await h.store.writeCount(batchId, r.itemId)).toBeLessThanOrEqual(2);
      } else {
        expect(byBatch).toBeLessThanOrEqual(N);
        await writtenOnce(h, batchId);
      }
    }, 60_000);

  it('a re-run and a reset of a batch whose items took the fast path (and were handed over) call nothing again', async () => {
    const batchId = 'fe-rerun';
    const pipeline: PipelineSpecInput = { ...base, providers: [base.providers[1]!], review: { timeout: '1s', defaultDecision: 'skip' } };
    const items = [
      { id: 'a', text: 'fine' },
      { id: 'b', text: 'fine too' },
      { id: 'retry', text: 'flaky [[fault:unavailable,none]]' },
      { id: 'auth', text: 'revoked [[fault:auth]]' },
    ];
    const { first, second, reset, callsAfterFirst, callsAfterAll, rowsAfterFirst } = await h.run(async () => {
      const first = await (await h.startBatch({ pipeline, items }, batchId)).result();
      const callsAfterFirst = calls();
      const rowsAfterFirst = await h.store.list(batchId);
      const second = await (await h.startBatch({ pipeline, items }, batchId)).result();
      await promisify(execFile)(temporalCliPath()!, ['workflow', 'reset', '--address', h.address, '--workflow-id', batchId, '--type', 'FirstWorkflowTask', '--reason', 'test']);
      const reset = await h.client.workflow.getHandle(batchId).result();
      return { first, second, reset, callsAfterFirst, callsAfterAll: calls(), rowsAfterFirst };
    });
    expect(first).toMatchObject({ total: 4, succeeded: 3, skipped: 1, attempts: 5 });
    for (const s of [second, reset]) expect(s).toMatchObject({ total: 4, succeeded: 3, skipped: 1, attempts: 0, costUsd: 0 });
    expect(callsAfterAll).toBe(callsAfterFirst);
    expect(await h.store.list(batchId)).toEqual(rowsAfterFirst);
    await writtenOnce(h, batchId, ['auth']);
  });

  it('a handed-over item waiting for review is retried with a new input, then approved on a second failure', async () => {
    const batchId = 'fe-review';
    const pipeline: PipelineSpecInput = { ...base, providers: [base.providers[1]!] };
    const items = [
      { id: 'ok', text: 'fine' },
      { id: 'fix', text: 'revoked [[fault:auth]]' },
      { id: 'keep', text: 'revoked [[fault:auth]]' },
    ];
    const before = calls();
    const summary = await h.run(async () => {
      const handle = await h.startBatch({ pipeline, items }, batchId);
      await until(
        () => handle.query(progressQuery),
        (p) => p.awaitingReviewCount === 2,
      );
      await handle.executeUpdate(reviewUpdate, { args: [{ itemId: 'fix', decision: 'retry', input: { text: 'fixed' } }] });
      await handle.executeUpdate(reviewUpdate, { args: [{ itemId: 'keep', decision: 'approve', output: 'by hand' }] });
      return await handle.result();
    });
    const made = calls() - before;
    expect(made).toBe(4);
    expect(summary).toMatchObject({ total: 3, succeeded: 2, approved: 1, attempts: made });
    const rows = Object.fromEntries((await h.store.list(batchId)).map((r) => [r.itemId, r]));
    expect(rows['fix']).toMatchObject({ status: 'succeeded', attempts: 2 });
    expect(rows['keep']).toMatchObject({ status: 'approved', attempts: 1, output: 'by hand' });
    await writtenOnce(h, batchId, ['fix', 'keep']);
  });

  it('retry.maxAttempts 1: a transient failure is the tier’s last; the item goes on to the next tier, then to review', async () => {
    const batchId = 'fe-one-attempt';
    // The directive fails every tier's first call (each tier's model is a new request identity).
    const pipeline: PipelineSpecInput = {
      ...base,
      retry: { maxAttempts: 1 },
      circuitBreaker: { failureThreshold: 5, cooldown: '30m' },
      review: { timeout: '1s', defaultDecision: 'skip' },
    };
    const items = [
      { id: 'ok', text: 'fine' },
      { id: 'down', text: 'flaky [[fault:unavailable]]' },
    ];
    const before = calls();
    const summary = await h.run(async () => (await h.startBatch({ pipeline, items }, batchId)).result());
    const made = calls() - before;
    const rows = Object.fromEntries((await h.store.list(batchId)).map((r) => [r.itemId, [r.status, r.attempts]]));
    expect(rows).toEqual({ ok: ['succeeded', 1], down: ['skipped', 2] });
    expect(made).toBe(3);
    expect(summary).toMatchObject({ total: 2, succeeded: 1, skipped: 1, attempts: made });
    await writtenOnce(h, batchId, ['down']);
  });

  it('secret fields: a fast answer, a handed-over retry and a cut-short answer store no secret value', async () => {
    const batchId = 'fe-secret';
    const token = 'tok-7f3a9c2e5b';
    // The simulated model quotes the start of its prompt: the token would be in every answer.
    const pipeline: PipelineSpecInput = {
      ...base,
      prompt: { template: 'Token {{token}} ticket {{id}}: {{text}}' },
      secretFields: ['token'],
      review: { timeout: '1s', defaultDecision: 'skip' },
    };
    const items = [
      { id: 'ok', token, text: 'fine' },
      { id: 'retry', token, text: 'flaky [[fault:unavailable,none]]' },
      { id: 'cut', token, text: 'cut short [[fault:truncated,none]]' },
    ];
    const before = calls();
    const summary = await h.run(async () => (await h.startBatch({ pipeline, items }, batchId)).result());
    const made = calls() - before;
    expect(summary).toMatchObject({ total: 3, failed: 0, attempts: made });
    const rows = await h.store.list(batchId);
    expect(rows).toHaveLength(3);
    for (const r of rows) expect(JSON.stringify(r), r.itemId).not.toContain(token);
    expect(rows.find((r) => r.itemId === 'ok')?.output).toEqual(expect.stringContaining('Answer for: Token'));
    // The item itself is in the batch's input; what the calls gave back (results, failures, handoffs) holds no secret value.
    const events = (await h.client.workflow.getHandle(batchId).fetchHistory()).events ?? [];
    const decoded = (p: { data?: Uint8Array | null } | undefined): string => Buffer.from(p?.data ?? new Uint8Array()).toString('utf8');
    const results = events.flatMap((e) => [
      ...(e.activityTaskCompletedEventAttributes?.result?.payloads ?? []).map(decoded),
      ...(e.activityTaskFailedEventAttributes ? [JSON.stringify(e.activityTaskFailedEventAttributes.failure)] : []),
      ...(e.startChildWorkflowExecutionInitiatedEventAttributes?.input?.payloads ?? []).map((x) =>
        JSON.stringify((JSON.parse(decoded(x)) as { handoff?: unknown }).handoff ?? null),
      ),
    ]);
    expect(results.length).toBeGreaterThan(3);
    for (const r of results) expect(r).not.toContain(token);
  });

  it("a handed-over 429 waits for the provider's Retry-After, as a retry inside the activity would", async () => {
    // The simulated provider's 429 asks for 1 s; the policy's own backoff is 20 ms.
    const pipeline: PipelineSpecInput = { ...base, providers: [base.providers[1]!] };
    const waited: Record<string, number> = {};
    for (const fastPath of [false, true]) {
      const batchId = `fe-retry-after-${fastPath}`;
      // A new request identity for each batch: the directive's list starts again.
      const items = [{ id: `limited-${fastPath}`, text: 'busy [[fault:rate_limit,none]]' }];
      const before = calls();
      const summary = await h.run(async () => (await h.startBatch({ pipeline: { ...pipeline, batch: { ...pipeline.batch, fastPath } }, items }, batchId)).result());
      expect(summary).toMatchObject({ total: 1, succeeded: 1, attempts: 2 });
      expect(calls() - before).toBe(2);
      const [row] = await h.store.list(batchId);
      waited[String(fastPath)] = Date.parse(row!.finishedAt) - Date.parse(row!.startedAt);
    }
    expect(waited['false'], JSON.stringify(waited)).toBeGreaterThanOrEqual(900);
    expect(waited['true'], JSON.stringify(waited)).toBeGreaterThanOrEqual(900);
  });
});
