/**
 * The budget's arithmetic on a real BatchState: the upper-bound estimate before any
 * item reported, the average after; reservations held until an item reports; the
 * first item always starts; the setBudget validator's rejections.
 */
import { describe, expect, it, vi } from 'vitest';
import type * as workflow from '@temporalio/workflow';
import { Budget } from '../../workflows/batch-budget.ts';
import { BatchState, initialCarry } from '../../workflows/batch-state.ts';
import type { Alerts } from '../../workflows/batch-alerts.ts';
import { PipelineSpec } from '../../src/shared/spec.ts';
import type { ItemOutcome } from '../../src/shared/types.ts';

// The workflow logger needs a workflow context; here the budget's log lines go nowhere.
vi.mock('@temporalio/workflow', async (original) => ({ ...(await original<typeof workflow>()), log: { info: () => undefined, warn: () => undefined } }));

const pipeline = (maxCostUsd: number) =>
  PipelineSpec.parse({
    prompt: { template: '{{text}}' },
    // $1 per 1,000 input tokens, $10 per 1,000 output tokens; 100 output tokens at most.
    providers: [{ kind: 'openai', model: 'm', maxOutputTokens: 100, pricing: { inputPerMTok: 1000, outputPerMTok: 10_000 } }],
    budget: { maxCostUsd, onExceeded: 'pause' },
  });
const items = Array.from({ length: 10 }, (_, i) => ({ id: `i${i}`, text: 'x'.repeat(400) }));

function setup(maxCostUsd: number) {
  const sent: string[] = [];
  const state = new BatchState(initialCarry('b', pipeline(maxCostUsd), [...items], undefined, '2026-01-01T00:00:00.000Z'));
  const alerts = { send: (kind: string) => sent.push(kind) } as unknown as Alerts;
  return { state, budget: new Budget(state, alerts), sent };
}
const outcome = (itemId: string, costUsd: number): ItemOutcome => ({
  itemId,
  status: 'succeeded',
  tier: 0,
  provider: 'p',
  attempts: 1,
  inputTokens: 0,
  outputTokens: 0,
  costUsd,
  truncated: false,
  errorType: null,
  retried: 0,
});
function start(state: BatchState, budget: Budget, n: number): void {
  for (const item of state.takeQueued(n, state.view.pacer)) {
    state.markStarted(item.id);
    budget.reserve(item);
  }
}
function finish(state: BatchState, budget: Budget, itemId: string, cost: number): void {
  const o = outcome(itemId, cost);
  state.applyOutcome(o);
  budget.onOutcome(o);
}

describe('Budget', () => {
  it('estimates by the upper bound first (400 chars = 100 tokens in, max tokens out), then by the average', () => {
    const { state, budget } = setup(10);
    expect(budget.estimate(items[0]!)).toBeCloseTo(0.1 + 1, 9);
    start(state, budget, 1);
    finish(state, budget, 'i0', 0.3);
    expect(budget.estimate(items[1]!)).toBeCloseTo(0.3, 9);
  });

  it('counts booked plus reserved: holds items back until reports free room, and always lets the first start', () => {
    const { state, budget, sent } = setup(0.5);
    // The upper bound (1.1) alone passes 0.5: the first item starts anyway, nothing else.
    expect(budget.room(state.view.queue, 5)).toBe(1);
    start(state, budget, 1);
    expect(budget.room(state.view.queue, 5)).toBe(0);
    finish(state, budget, 'i0', 0.1);
    // 0.1 booked, average 0.1: four more fit in 0.5.
    expect(budget.room(state.view.queue, 10)).toBe(4);
    start(state, budget, 3);
    expect(budget.status()).toMatchObject({ spentUsd: 0.1, reservedUsd: 0.3 });
    expect(budget.room(state.view.queue, 10)).toBe(1);
    expect(budget.decisionDue).toBe(false);
    start(state, budget, 1);
    for (const id of ['i1', 'i2', 'i3', 'i4']) finish(state, budget, id, 0.1);
    expect(sent).toEqual(['budget_warning']);
    expect(budget.decisionDue).toBe(true);
    budget.decide();
    expect(sent).toEqual(['budget_warning', 'budget_exceeded']);
    expect(budget.progress(state.progress(Date.now()))).toMatchObject({ paused: true, budget: { state: 'paused' } });
    expect(budget.room(state.view.queue, 10)).toBe(0);
  });

  it('rejects a lower, equal or invalid budget and accepts a raise, which resumes', () => {
    const { state, budget } = setup(0.2);
    start(state, budget, 1);
    finish(state, budget, 'i0', 0.2);
    budget.decide();
    expect(budget.status()!.state).toBe('paused');
    expect(() => budget.validate({ maxCostUsd: 0.1 })).toThrow('the new budget $0.1000 is not above the current $0.2000 ($0.2000 spent); a budget can only be raised');
    expect(() => budget.validate({ maxCostUsd: 0.2 })).toThrow('not above');
    expect(() => budget.validate({ maxCostUsd: -1 })).toThrow('maxCostUsd must be a positive number of USD; got -1');
    expect(() => budget.validate({ maxCostUsd: 'x' as unknown as number })).toThrow('got "x"');
    expect(() => budget.validate(undefined)).toThrow('maxCostUsd must be a positive number');
    budget.validate({ maxCostUsd: 1 });
    expect(budget.raise({ maxCostUsd: 1 })).toMatchObject({ maxCostUsd: 1, state: 'ok' });
    expect(budget.room(state.view.queue, 10)).toBe(4);
  });

  it('sums the upper bound over the steps of a multi-step pipeline', () => {
    const spec = PipelineSpec.parse({
      providers: [{ kind: 'openai', model: 'm', maxOutputTokens: 100, pricing: { inputPerMTok: 1000, outputPerMTok: 10_000 } }],
      steps: [
        { name: 'a', prompt: { template: '{{text}}' } },
        { name: 'b', prompt: { template: '{{text}}' }, providers: [{ kind: 'openai', model: 'n', maxOutputTokens: 10, pricing: { inputPerMTok: 0, outputPerMTok: 10_000 } }] },
      ],
      budget: { maxCostUsd: 5 },
    });
    const state = new BatchState(initialCarry('b', spec, [...items], undefined, '2026-01-01T00:00:00.000Z'));
    // Step a: 100 tokens in ($0.1) + 100 out ($1); step b: 10 out ($0.1).
    expect(new Budget(state, {} as Alerts).estimate(items[0]!)).toBeCloseTo(1.2, 9);
  });

  it('is a no-op without a budget', () => {
    const state = new BatchState(
      initialCarry('b', PipelineSpec.parse({ prompt: { template: '{{text}}' }, providers: [{ kind: 'openai', model: 'm' }] }), [...items], undefined, '2026-01-01T00:00:00.000Z'),
    );
    const budget = new Budget(state, {} as Alerts);
    expect(budget.room(state.view.queue, 7)).toBe(7);
    expect(budget.status()).toBeNull();
    expect(() => budget.validate({ maxCostUsd: 5 })).toThrow('this batch has no budget');
    expect(state.view.budget).toBeUndefined();
  });
});
