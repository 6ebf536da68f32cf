/**
 * Our metrics as the activities record them: a recording MetricMeter handed to
 * MockActivityEnvironment, the real activities, and the fault-injecting provider
 * in process. Also the Prometheus text parser and the observer's folding.
 */
import type { Client } from '@temporalio/client';
import type { MetricCounter, MetricGauge, MetricHistogram, MetricMeter, MetricTags, MetricUpDownCounter, NumericMetricValueType } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';
import type { PersistRequest } from '../../activities/index.ts';
import { FailureType } from '../../src/shared/failures.ts';
import { CANCELLED_OUTCOME, HISTOGRAM_BUCKETS, METRICS, METRIC_NAMES, recoverySeconds, steadfastMetrics } from '../../activities/metrics.ts';
import { leaderOf, observe, startBatchObserver } from '../../src/worker/batch-observer.ts';
import { parsePrometheus, sumBy } from '../../src/dev/prometheus-text.ts';
import { PipelineSpec, ProviderSpec } from '../../src/shared/spec.ts';
import type { ProviderSpecInput } from '../../src/shared/spec.ts';
import type { ChatMessage, LlmRequest, LlmResult, TruncateResult } from '../../src/shared/types.ts';
import type { Progress } from '../../src/shared/messages.ts';
import { labelSchema, TEST_PRICING, useActivityRig } from '../support/activity-rig.ts';

interface Recorded {
  name: string;
  kind: string;
  value: number;
  /** Our labels. */
  tags: MetricTags;
  /** The labels the SDK adds to every activity metric (namespace, taskQueue, activityType). */
  sdk: MetricTags;
}

const SDK_TAGS = ['namespace', 'taskQueue', 'activityType'];

/** A MetricMeter that keeps every value it is given, with the tags it would carry. */
class RecordingMeter implements MetricMeter {
  readonly events: Recorded[];
  private readonly tags: MetricTags;
  constructor(events: Recorded[] = [], tags: MetricTags = {}) {
    this.events = events;
    this.tags = tags;
  }
  private metric(name: string, kind: Recorded['kind'], valueType: NumericMetricValueType, unit?: string, description?: string) {
    const push = (value: number, extra?: MetricTags) => {
      const all = Object.entries({ ...this.tags, ...extra });
      this.events.push({
        name,
        kind,
        value,
        tags: Object.fromEntries(all.filter(([k]) => !SDK_TAGS.includes(k))),
        sdk: Object.fromEntries(all.filter(([k]) => SDK_TAGS.includes(k))),
      });
    };
    const base = {
      name,
      unit,
      description,
      valueType,
      withTags: () => {
        throw new Error('not used');
      },
    };
    return { base, push };
  }
  createCounter(name: string, unit?: string, description?: string): MetricCounter {
    const { base, push } = this.metric(name, 'counter', 'int', unit, description);
    return { ...base, kind: 'counter', valueType: 'int', add: push } as MetricCounter;
  }
  createHistogram(name: string, valueType: NumericMetricValueType = 'int', unit?: string, description?: string): MetricHistogram {
    const { base, push } = this.metric(name, 'histogram', valueType, unit, description);
    return { ...base, kind: 'histogram', record: push } as MetricHistogram;
  }
  createGauge(name: string, valueType: NumericMetricValueType = 'int', unit?: string, description?: string): MetricGauge {
    const { base, push } = this.metric(name, 'gauge', valueType, unit, description);
    return { ...base, kind: 'gauge', set: push } as MetricGauge;
  }
  createUpDownCounter(name: string, unit?: string, description?: string): MetricUpDownCounter {
    const { base, push } = this.metric(name, 'up-down-counter', 'int', unit, description);
    return { ...base, kind: 'up-down-counter', valueType: 'int', add: push } as MetricUpDownCounter;
  }
  withTags(tags: MetricTags): MetricMeter {
    return new RecordingMeter(this.events, { ...this.tags, ...tags });
  }
  /** Sum of the values of `name` whose tags include `where`. */
  sum(name: string, where: MetricTags = {}): number {
    return this.of(name, where).reduce((a, e) => a + e.value, 0);
  }
  of(name: string, where: MetricTags = {}): Recorded[] {
    return this.events.filter((e) => e.name === name && Object.entries(where).every(([k, v]) => e.tags[k] === v));
  }
}

const schema = labelSchema(['ok', 'broken']);
const output = PipelineSpec.shape.output.parse({ format: 'json', schema });
const pricing = TEST_PRICING;

const rig = useActivityRig(3);

function spec(p: Partial<ProviderSpecInput> = {}): ProviderSpec {
  return ProviderSpec.parse({ name: 'primary', kind: 'openai', model: 'gpt-4o-mini', timeout: '5s', pricing, ...p });
}
function request(p: ProviderSpec, tier = 0): LlmRequest {
  const text = `Classify item ${Math.random().toString(36).slice(2, 8)}: parcel arrived`;
  return {
    batchId: 'b',
    itemId: 'i',
    tier,
    provider: p,
    messages: [
      { role: 'system', content: 'Answer in JSON.' },
      { role: 'user', content: text },
    ],
    output,
  };
}
function env(meter: MetricMeter, attempt = 1): MockActivityEnvironment {
  return new MockActivityEnvironment(
    {
      attempt,
      startToCloseTimeoutMs: 60_000,
      heartbeatTimeoutMs: 30_000,
      retryPolicy: { initialInterval: 1000, backoffCoefficient: 2, maximumInterval: 60_000, maximumAttempts: 5 },
    },
    { logger: new DefaultLogger('ERROR'), metricMeter: meter },
  );
}
async function settle(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => null,
    (e: unknown) => e,
  );
}

describe('callLlm metrics', () => {
  it('counts a response cache miss (with its call) and then a hit (no call, what it saved)', async () => {
    const m = new RecordingMeter();
    const req: LlmRequest = { ...request(spec()), cache: {} };
    const paid: LlmResult = await env(m).run(rig.acts.callLlm, req);
    const before = rig.provider.stats().requests;
    const hit: LlmResult = await env(m).run(rig.acts.callLlm, req);
    const who = { provider: 'primary', model: 'gpt-4o-mini' };
    expect(rig.provider.stats().requests).toBe(before);
    expect(hit).toMatchObject({ costUsd: 0, usage: { inputTokens: 0, outputTokens: 0 }, cached: { savedUsd: paid.costUsd }, json: paid.json });
    expect(m.sum(METRICS.cacheMisses.name, who)).toBe(1);
    expect(m.sum(METRICS.cacheHits.name, who)).toBe(1);
    expect(m.sum(METRICS.cacheSaved.name, who)).toBeCloseTo(paid.costUsd, 12);
    // The hit is no LLM call: only the paid one is counted.
    expect(m.sum(METRICS.llmCalls.name, who)).toBe(1);
  });

  it('counts a successful call with its tokens and cost, by provider, model, tier and outcome', async () => {
    const m = new RecordingMeter();
    const r: LlmResult = await env(m).run(rig.acts.callLlm, request(spec()));
    const who = { provider: 'primary', model: 'gpt-4o-mini' };
    expect(m.of(METRICS.llmCalls.name)).toEqual([
      {
        name: METRICS.llmCalls.name,
        kind: 'counter',
        value: 1,
        tags: { ...who, tier: '0', outcome: 'ok' },
        sdk: { namespace: 'test', taskQueue: 'test', activityType: 'unknown' },
      },
    ]);
    expect(m.sum(METRICS.tokens.name, { ...who, direction: 'in' })).toBe(r.usage.inputTokens);
    expect(m.sum(METRICS.tokens.name, { ...who, direction: 'out' })).toBe(r.usage.outputTokens);
    expect(m.sum(METRICS.llmCost.name, who)).toBeCloseTo(r.costUsd, 12);
    expect(m.of(METRICS.llmLatency.name)).toHaveLength(1);
    expect(m.of(METRICS.llmRetries.name)).toEqual([]);
    expect(m.of(METRICS.fallbacks.name)).toEqual([]);
  });

  it('labels failures with their type, and counts retries (attempt > 1)', async () => {
    const m = new RecordingMeter();
    rig.fault = 'rate_limit';
    await settle(env(m, 2).run(rig.acts.callLlm, request(spec())));
    rig.fault = 'overloaded';
    await settle(env(m, 3).run(rig.acts.callLlm, request(spec({ kind: 'anthropic', model: 'claude-haiku-4-5', name: 'secondary' }), 1)));
    rig.fault = 'schema_violation';
    const invalid = await settle(env(m).run(rig.acts.callLlm, request(spec())));
    expect((invalid as { type?: string }).type).toBe(FailureType.InvalidOutput);

    expect(m.of(METRICS.llmCalls.name).map((e) => e.tags)).toEqual([
      { provider: 'primary', model: 'gpt-4o-mini', tier: '0', outcome: FailureType.RateLimited },
      { provider: 'secondary', model: 'claude-haiku-4-5', tier: '1', outcome: FailureType.ProviderOverloaded },
      { provider: 'primary', model: 'gpt-4o-mini', tier: '0', outcome: FailureType.InvalidOutput },
    ]);
    expect(m.of(METRICS.llmRetries.name).map((e) => e.tags.provider)).toEqual(['primary', 'secondary']);
    // The invalid answer was billed: its tokens and cost count, the refused 429/529 have none.
    expect(m.sum(METRICS.tokens.name)).toBeGreaterThan(0);
    expect(m.of(METRICS.llmCost.name)).toHaveLength(1);
  });

  it('counts a success on a tier > 0 as a fallback', async () => {
    const m = new RecordingMeter();
    await env(m).run(rig.acts.callLlm, request(spec({ name: 'secondary', model: 'gpt-4o' }), 1));
    expect(m.of(METRICS.fallbacks.name).map((e) => e.tags)).toEqual([{ provider: 'secondary', model: 'gpt-4o', tier: '1' }]);
  });

  it('counts the calls of a multi-step pipeline per step as well: outcome, fallbacks, tokens and cost', async () => {
    const m = new RecordingMeter();
    const ok: LlmResult = await env(m).run(rig.acts.callLlm, { ...request(spec({ name: 'secondary', model: 'gpt-4o' }), 1), step: 'classify' });
    rig.fault = 'rate_limit';
    await settle(env(m).run(rig.acts.callLlm, { ...request(spec()), step: 'extract' }));
    // A one-prompt call has no step: it adds nothing to the per-step series.
    rig.fault = undefined;
    await env(m).run(rig.acts.callLlm, request(spec()));
    expect(m.of(METRICS.stepCalls.name).map((e) => e.tags)).toEqual([
      { step: 'classify', provider: 'secondary', outcome: 'ok' },
      { step: 'extract', provider: 'primary', outcome: FailureType.RateLimited },
    ]);
    expect(m.of(METRICS.stepFallbacks.name).map((e) => e.tags)).toEqual([{ step: 'classify', provider: 'secondary' }]);
    expect(m.sum(METRICS.stepTokens.name, { step: 'classify', direction: 'in' })).toBe(ok.usage.inputTokens);
    expect(m.sum(METRICS.stepTokens.name, { step: 'classify', direction: 'out' })).toBe(ok.usage.outputTokens);
    expect(m.sum(METRICS.stepCost.name, { step: 'classify' })).toBeCloseTo(ok.costUsd, 12);
    expect(m.of(METRICS.stepTokens.name).every((e) => e.tags.step === 'classify')).toBe(true);
  });

  it('counts a call cancelled by the workflow as Cancelled', async () => {
    const m = new RecordingMeter();
    rig.fault = 'hang';
    const e = env(m);
    const running = settle(e.run(rig.acts.callLlm, request(spec())));
    await new Promise((r) => setTimeout(r, 200));
    e.cancel();
    await running;
    expect(m.of(METRICS.llmCalls.name).map((x) => x.tags.outcome)).toEqual([CANCELLED_OUTCOME]);
  });

  it("adds up with the provider's own counters", async () => {
    rig.provider.reset();
    const m = new RecordingMeter();
    for (const f of ['none', 'rate_limit', 'bad_json', 'overloaded', 'none', 'schema_violation']) {
      rig.fault = f;
      await settle(env(m).run(rig.acts.callLlm, request(spec())));
    }
    const stats = rig.provider.stats();
    expect(m.sum(METRICS.llmCalls.name)).toBe(stats.requests);
    expect(m.sum(METRICS.llmCalls.name, { outcome: 'ok' })).toBe(2);
    expect(m.sum(METRICS.llmCalls.name, { outcome: FailureType.InvalidOutput })).toBe((stats.byFault['bad_json'] ?? 0) + (stats.byFault['schema_violation'] ?? 0));
    expect(m.sum(METRICS.tokens.name, { direction: 'in' })).toBe(stats.tokens.input);
    expect(m.sum(METRICS.tokens.name, { direction: 'out' })).toBe(stats.tokens.output);
    expect(m.sum(METRICS.llmCost.name)).toBeCloseTo(stats.costUsd, 6);
  });

  it('records nothing for a spec whose schema does not compile (no request was sent)', async () => {
    const m = new RecordingMeter();
    const bad = { ...request(spec()), output: { format: 'json' as const, schema: { type: 'nonsense' } } };
    await settle(env(m).run(rig.acts.callLlm, bad));
    expect(m.events).toEqual([]);
  });

  it('runs under the default no-op meter', async () => {
    const r: LlmResult = await new MockActivityEnvironment({ attempt: 1 }, { logger: new DefaultLogger('ERROR') }).run(rig.acts.callLlm, request(spec()));
    expect(r.attempt).toBe(1);
  });
});

describe('countAndTruncate and persistResult metrics', () => {
  it('counts a truncation by model', async () => {
    const m = new RecordingMeter();
    const p = spec({ contextWindow: 200, maxOutputTokens: 20 });
    const long: ChatMessage[] = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'word '.repeat(600) },
    ];
    const r: TruncateResult = await env(m).run(rig.acts.countAndTruncate, { provider: p, messages: long, reserveOutputTokens: 20 });
    expect(r.truncation).not.toBeNull();
    expect(m.of(METRICS.truncations.name).map((e) => e.tags)).toEqual([{ model: 'gpt-4o-mini' }]);
    const none = new RecordingMeter();
    const short: ChatMessage[] = [{ role: 'user', content: 'short' }];
    await env(none).run(rig.acts.countAndTruncate, { provider: p, messages: short, reserveOutputTokens: 20 });
    expect(none.events).toEqual([]);
  });

  const row = (over: Partial<PersistRequest> = {}): PersistRequest => ({
    batchId: `b-${Math.random().toString(36).slice(2, 8)}`,
    itemId: 'i1',
    status: 'succeeded',
    output: { label: 'ok' },
    provider: 'secondary',
    model: 'gpt-4o',
    tier: 1,
    attempts: 3,
    inputTokens: 10,
    outputTokens: 5,
    costUsd: 0.0025,
    truncation: null,
    error: null,
    startedAt: '2026-01-01T00:00:00.000Z',
    finishedAt: '2026-01-01T00:01:30.000Z',
    ...over,
  });

  it('counts each status change of a row once: a retried or replayed write counts nothing', async () => {
    const m = new RecordingMeter();
    const waiting = row({
      status: 'awaiting_review',
      output: null,
      provider: null,
      model: null,
      tier: null,
      error: { type: 'AuthFailed', message: 'no', attempts: 1, firstAt: '2026-01-01T00:00:10.000Z', lastAt: '2026-01-01T00:00:10.000Z' },
    });
    await env(m).run(rig.acts.persistResult, waiting);
    await env(m).run(rig.acts.persistResult, waiting);
    const done = row({ batchId: waiting.batchId, firstFailureAt: '2026-01-01T00:00:10.000Z' });
    await env(m).run(rig.acts.persistResult, done);
    await env(m).run(rig.acts.persistResult, done);

    expect(m.of(METRICS.items.name).map((e) => e.tags)).toEqual([
      { status: 'awaiting_review', provider: 'none', tier: 'none' },
      { status: 'succeeded', provider: 'secondary', tier: '1' },
    ]);
    expect(m.of(METRICS.itemCost.name).map((e) => [e.value, e.tags.status])).toEqual([[0.0025, 'succeeded']]);
    expect(m.of(METRICS.itemRecovery.name).map((e) => [e.value, e.tags.status])).toEqual([[80, 'succeeded']]);
  });

  it('records no recovery time for an item that never failed', async () => {
    const m = new RecordingMeter();
    await env(m).run(rig.acts.persistResult, row({ firstFailureAt: null }));
    expect(m.of(METRICS.items.name)).toHaveLength(1);
    expect(m.of(METRICS.itemRecovery.name)).toEqual([]);
  });
});

describe('metric helpers', () => {
  it('names every metric steadfast_* and gives float histograms their buckets', () => {
    for (const n of METRIC_NAMES) expect(n).toMatch(/^steadfast_[a-z_]+$/);
    for (const m of Object.values(METRICS)) if (m.type === 'counter') expect(m.name).toMatch(/_total$/);
    for (const m of Object.values(METRICS)) if (m.type === 'histogram') expect(HISTOGRAM_BUCKETS[m.name]?.length).toBeGreaterThan(3);
  });

  it('records the recorder contract without the activity context', () => {
    const m = new RecordingMeter();
    steadfastMetrics(m).llmCall({ provider: 'p', model: 'x', tier: 2, outcome: 'ok', attempt: 4, latencyMs: 1500 });
    expect(m.of(METRICS.llmLatency.name)[0]?.value).toBe(1.5);
    expect(m.sum(METRICS.llmRetries.name)).toBe(1);
    expect(m.sum(METRICS.fallbacks.name, { tier: '2' })).toBe(1);
    expect(m.of(METRICS.tokens.name)).toEqual([]);
  });

  it('computes recovery seconds only for recovered items', () => {
    expect(recoverySeconds('succeeded', '2026-01-01T00:00:00Z', '2026-01-01T00:00:42.5Z')).toBe(42.5);
    expect(recoverySeconds('approved', '2026-01-01T00:00:00Z', '2026-01-01T01:00:00Z')).toBe(3600);
    expect(recoverySeconds('skipped', '2026-01-01T00:00:00Z', '2026-01-01T01:00:00Z')).toBeUndefined();
    expect(recoverySeconds('succeeded', null, '2026-01-01T01:00:00Z')).toBeUndefined();
  });

  it('folds the running batches into the review queue and the worst circuit state', () => {
    const progress = (awaiting: number, circuits: Progress['circuits']): Progress => ({
      batchId: 'b',
      total: 10,
      started: 10,
      running: 1,
      awaitingReviewCount: awaiting,
      awaitingByType: {},
      queued: 0,
      waitingOnReviews: false,
      succeeded: 0,
      failed: 0,
      skipped: 0,
      approved: 0,
      awaitingReview: Array.from({ length: awaiting }, (_, i) => ({ itemId: `i${i}`, errorType: 'AuthFailed', reason: '', since: '' })),
      ratePerMinute: 0,
      etaSeconds: null,
      paused: false,
      pausedReason: null,
      circuits,
      runs: 1,
    });
    const c = (state: 'closed' | 'open' | 'half_open') => ({ state, failures: 0, openUntil: null });
    const o = observe([progress(2, { primary: c('open'), secondary: c('closed') }), progress(3, { primary: c('half_open'), secondary: c('half_open') })], 3);
    // Items awaiting review are the review queue, not running: each progress here has 1 running item.
    expect(o).toEqual({ batches: 3, answered: 2, reviewQueue: 5, running: 2, circuits: { primary: 2, secondary: 1 } });
  });

  it('only the worker that sorts first among live pollers queries the batches; the others publish zeros', async () => {
    const now = Date.parse('2026-01-01T00:10:00Z');
    const seen = (identity: string, minutesAgo: number) => ({ identity, lastAccessMs: now - minutesAgo * 60_000 });
    expect(leaderOf([seen('w2', 0), seen('w1', 0), seen('w3', 0)], now)).toBe('w1');
    // A worker gone for more than two minutes hands over.
    expect(leaderOf([seen('w2', 0), seen('w1', 5)], now)).toBe('w2');
    expect(leaderOf([], now)).toBeNull();

    const queried: Record<string, number> = {};
    const client = (me: string, pollers: string[]) =>
      ({
        options: { namespace: 'ns' },
        withDeadline: (_d: number, fn: () => Promise<unknown>) => fn(),
        workflowService: { describeTaskQueue: async () => ({ pollers: pollers.map((identity) => ({ identity, lastAccessTime: { seconds: Math.floor(Date.now() / 1000) } })) }) },
        workflow: {
          async *list() {
            yield { workflowId: 'b1' };
          },
          getHandle: () => ({
            query: async () => {
              queried[me] = (queried[me] ?? 0) + 1;
              return { awaitingReview: [], awaitingReviewCount: 7, circuits: {} } as unknown as Progress;
            },
          }),
        },
      }) as unknown as Client;
    const workers = ['w1', 'w2', 'w3'].map((identity) => ({ identity, meter: new RecordingMeter() }));
    const observers = workers.map((w) =>
      startBatchObserver({ client: client(w.identity, ['w3', 'w1', 'w2']), taskQueue: 'q', meter: w.meter, intervalMs: 60_000, identity: w.identity }),
    );
    const passes = await Promise.all(observers.map((o) => o.refresh()));
    await Promise.all(observers.map((o) => o.stop()));
    expect(Object.keys(queried)).toEqual(['w1']);
    expect(passes.map((p) => p.reviewQueue)).toEqual([7, 0, 0]);
    expect(passes.map((p) => p.leader ?? true)).toEqual([true, false, false]);
    expect(workers.map((w) => w.meter.of(METRICS.reviewQueue.name).at(-1)?.value)).toEqual([7, 0, 0]);
  });

  it("the observer lists the task queue's running batches, queries their progress and sets the gauges", async () => {
    const c = (state: 'closed' | 'open' | 'half_open') => ({ state, failures: 0, openUntil: null });
    const answers: Record<string, Progress['circuits'] | Error> = {
      b1: { primary: c('open') },
      b2: { primary: c('closed'), backup: c('half_open') },
      b3: new Error('query timed out'),
    };
    const queries: string[] = [];
    let listed = '';
    let ids = ['b1', 'b2', 'b3'];
    const client = {
      options: { namespace: 'ns' },
      withDeadline: (_d: number, fn: () => Promise<unknown>) => fn(),
      workflow: {
        async *list(o: { query: string }) {
          listed = o.query;
          for (const workflowId of ids) yield { workflowId };
        },
        getHandle: (id: string) => ({
          query: async () => {
            queries.push(id);
            const a = answers[id]!;
            if (a instanceof Error) throw a;
            return { awaitingReview: [{ itemId: 'x', errorType: 'AuthFailed', reason: '', since: '' }], awaitingReviewCount: 1, running: 4, circuits: a } as unknown as Progress;
          },
        }),
      },
    } as unknown as Client;
    const m = new RecordingMeter();
    const observer = startBatchObserver({ client, taskQueue: "it's-q", meter: m, intervalMs: 60_000 });
    const first = await observer.refresh();
    expect(listed).toBe("WorkflowType = 'batchPipeline' AND ExecutionStatus = 'Running' AND TaskQueue = 'it\\'s-q'");
    expect(first).toEqual({ batches: 3, answered: 2, reviewQueue: 2, running: 8, circuits: { primary: 2, backup: 1 } });
    const last = (name: string, where: MetricTags = {}) => m.of(name, where).at(-1)?.value;
    expect(last(METRICS.reviewQueue.name)).toBe(2);
    expect(last(METRICS.batchesRunning.name)).toBe(3);
    expect(last(METRICS.circuitState.name, { provider: 'primary' })).toBe(2);
    expect(m.of(METRICS.circuitState.name)[0]?.sdk).toEqual({ namespace: 'ns', taskQueue: "it's-q" });
    // The batches finish: the providers seen before read closed, the queue empty.
    ids = [];
    await observer.refresh();
    expect(last(METRICS.reviewQueue.name)).toBe(0);
    expect(last(METRICS.circuitState.name, { provider: 'primary' })).toBe(0);
    expect(last(METRICS.circuitState.name, { provider: 'backup' })).toBe(0);
    await observer.stop();
    expect(queries.filter((q) => q === 'b1').length).toBeGreaterThanOrEqual(1);
  });

  it('parses the Prometheus text format', () => {
    const text = [
      '# HELP steadfast_llm_calls_total LLM calls',
      '# TYPE steadfast_llm_calls_total counter',
      'steadfast_llm_calls_total{model="gpt-4o-mini",outcome="ok",provider="a \\"b\\""} 7',
      'steadfast_llm_calls_total{model="gpt-4o-mini",outcome="Timeout",provider="x"} 2',
      'steadfast_llm_calls_total{model="gpt-4o",outcome="ok",provider="x"} 1',
      'steadfast_review_queue 3',
      'steadfast_llm_cost_usd_sum{model="gpt-4o"} 1.5e-05',
    ].join('\n');
    const s = parsePrometheus(text);
    expect(s).toHaveLength(5);
    expect(s[0]!.labels.provider).toBe('a "b"');
    expect(sumBy(s, 'steadfast_llm_calls_total', 'model')).toEqual({ 'gpt-4o-mini': 9, 'gpt-4o': 1 });
    expect(sumBy(s, 'steadfast_llm_calls_total', 'outcome', { model: 'gpt-4o-mini' })).toEqual({ ok: 7, Timeout: 2 });
    expect(sumBy(s, 'steadfast_review_queue')).toEqual({ '': 3 });
    expect(sumBy(s, 'steadfast_llm_cost_usd_sum')['']).toBeCloseTo(0.000015, 12);
  });
});
