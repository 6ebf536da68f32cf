/**
 * The batch's spending limit (`budget` in the spec). Before an item starts, the booked
 * cost (finished items) plus the estimates reserved for the items in flight plus the
 * item's own estimate must stay within `maxCostUsd`; otherwise it does not start.
 *
 * The estimate of an item: the average cost of the items finished so far (it reflects
 * real answer lengths, repairs, fallbacks and cache hits); before the first one reports,
 * an upper bound at the first tier's prices, input tokens from the rendered prompt (4
 * characters a token) and output at the tier's `maxOutputTokens`, summed over the steps of
 * a multi-step pipeline. An item keeps its
 * reservation until it reports, also while it waits for review (a retry may spend more).
 * The budget can be passed by what items cost beyond their estimate, no more.
 *
 * The first item starts whenever the budget is above zero, even when its upper bound
 * alone passes it: a small budget must not block a batch whose real answers are short,
 * and the batch learns the real cost from it.
 *
 * When the next item does not fit and no item is still working (the reservations of
 * running items could free room when they report cheaper than estimated), the budget
 * is reached: `pause` stops dispatch until the `setBudget` Update raises it; `stop`
 * writes the items not started as `skipped` rows (`BudgetExceeded`), the source read
 * to its end, so nothing is lost and `steadfast rerun --skipped` runs them later.
 * Alerts go out at 80% of the budget and when it is reached.
 *
 * Every command here runs only for a spec with a budget, which no batch started
 * before this code had: no patch is needed for their replay.
 */
import { log, proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities/index.ts';
import { FailureType } from '../src/shared/failures.ts';
import type { BudgetStatus, Progress, SetBudgetRequest } from '../src/shared/messages.ts';
import { persistCall } from '../src/shared/policies.ts';
import type { Item } from '../src/shared/spec.ts';
import { planSteps } from '../src/shared/pipeline-steps.ts';
import { renderMessages } from '../src/shared/template.ts';
import { costOf } from '../src/shared/tiers.ts';
import type { BatchSummary, ItemOutcome } from '../src/shared/types.ts';
import type { Alerts } from './batch-alerts.ts';
import type { BatchState } from './batch-state.ts';

const store = proxyActivities<Activities>(persistCall);

/** Finished items after which their average cost is the estimate. */
export const AVERAGE_AFTER = 1;
/** Share of the budget that triggers the warning alert. */
export const WARN_AT = 0.8;
/** Rows of items not started written per activity call (ids only: well under the payload limit). */
const SKIP_CHUNK = 200;
/** Rounding slack, so a spend equal to the budget fits. */
const EPS = 1e-9;

/** The budget's part of the batch record (it crosses continue-as-new). */
export interface BudgetCarry {
  maxCostUsd: number;
  /** Estimates reserved for started items that have not reported: `[itemId, usd]`. */
  reserved: [string, number][];
  /** Items that reported (with their cost): the average estimate. */
  finished: number;
  finishedUsd: number;
  state: 'ok' | 'paused' | 'stopped';
  alerted: { warn: boolean; reached: boolean };
  /** Items written as skipped because the budget stopped the batch. */
  skipped: number;
}

/** The budget of a batch; a no-op when the spec has none. Its record in the carry has this one writer. */
export class Budget {
  private readonly rec: BudgetCarry | null;
  private readonly state: BatchState;
  private readonly alerts: Alerts;

  constructor(state: BatchState, alerts: Alerts) {
    this.state = state;
    this.alerts = alerts;
    const spec = state.view.pipeline.budget;
    this.rec = spec
      ? state.budgetRecord(() => ({ maxCostUsd: spec.maxCostUsd, reserved: [], finished: 0, finishedUsd: 0, state: 'ok', alerted: { warn: false, reached: false }, skipped: 0 }))
      : null;
  }

  /** Booked spend: the cost of the items that reported. */
  private get spent(): number {
    return this.state.view.costUsd;
  }

  private get reservedUsd(): number {
    return this.rec ? this.rec.reserved.reduce((n, [, usd]) => n + usd, 0) : 0;
  }

  /** The estimated cost of one item (see the module comment). */
  estimate(item: Item): number {
    const r = this.rec;
    if (r && r.finished >= AVERAGE_AFTER) return r.finishedUsd / r.finished;
    const { pipeline } = this.state.view;
    // A multi-step item calls every step: each step's first tier, with its own prompt and max tokens.
    const specs = pipeline.steps?.length ? planSteps(pipeline).map((s) => s.spec) : [pipeline];
    return specs.reduce((sum, spec) => {
      const tier = spec.providers[0]!;
      const chars = renderMessages(spec, item).reduce((n, m) => n + m.content.length, 0);
      return sum + costOf(tier.pricing, { inputTokens: Math.ceil(chars / 4), outputTokens: tier.maxOutputTokens });
    }, 0);
  }

  /** How many of the first `wanted` queued items fit in the budget now (all of them without a budget). */
  room(queue: readonly Item[], wanted: number): number {
    const r = this.rec;
    if (!r) return wanted;
    if (r.state !== 'ok') return 0;
    let total = this.spent + this.reservedUsd;
    let n = 0;
    while (n < wanted && n < queue.length) {
      const e = this.estimate(queue[n]!);
      if (total + e > r.maxCostUsd + EPS) break;
      total += e;
      n++;
    }
    // Nothing learned yet: the first item starts even when its upper bound alone passes the budget.
    if (n === 0 && wanted > 0 && queue.length > 0 && r.reserved.length === 0 && r.finished === 0 && this.spent + EPS < r.maxCostUsd) return 1;
    return n;
  }

  /** An item starts: its estimate is reserved until it reports. */
  reserve(item: Item): void {
    if (this.rec && !this.rec.reserved.some(([id]) => id === item.id)) this.rec.reserved.push([item.id, this.estimate(item)]);
  }

  /** An item reported (or was found finished): its reservation becomes its booked cost. */
  onOutcome(o: Pick<ItemOutcome, 'itemId' | 'costUsd'>, counted = true): void {
    const r = this.rec;
    if (!r) return;
    const i = r.reserved.findIndex(([id]) => id === o.itemId);
    if (i >= 0) r.reserved.splice(i, 1);
    if (counted) {
      r.finished += 1;
      r.finishedUsd += o.costUsd;
    }
    if (!r.alerted.warn && this.spent >= WARN_AT * r.maxCostUsd) {
      r.alerted.warn = true;
      this.alerts.send(
        'budget_warning',
        `Batch ${this.state.view.batchId} has spent ${usd(this.spent)} of its ${usd(r.maxCostUsd)} budget (${pct(this.spent, r.maxCostUsd)}).`,
        this.fields(),
      );
    }
  }

  /** True when the budget must decide now: the next item does not fit and nothing still working could free room. */
  get decisionDue(): boolean {
    const r = this.rec;
    if (!r || r.state !== 'ok' || !this.state.dispatching || this.state.view.queue.length === 0) return false;
    return this.state.inFlight <= 0 && this.room(this.state.view.queue, 1) === 0;
  }

  /** Pauses or stops when {@link decisionDue}; alerts once. */
  decide(): void {
    const r = this.rec;
    if (!r || !this.decisionDue) return;
    const how = this.state.view.pipeline.budget!.onExceeded;
    r.state = how === 'pause' ? 'paused' : 'stopped';
    const next = this.estimate(this.state.view.queue[0]!);
    const why = `budget reached: ${usd(this.spent)} spent of ${usd(r.maxCostUsd)}, the next item needs about ${usd(next)}`;
    log.warn('batch budget reached', { spent: this.spent, maxCostUsd: r.maxCostUsd, onExceeded: how });
    const then =
      how === 'pause'
        ? `No item starts until the budget is raised: steadfast resume ${this.state.view.batchId} --budget <usd>.`
        : `The items not started are written as skipped (BudgetExceeded); re-run them with steadfast rerun ${this.state.view.batchId} --skipped.`;
    r.alerted.reached = true;
    this.alerts.send('budget_exceeded', `Batch ${this.state.view.batchId} ${why}. ${then}`, this.fields());
  }

  /** True while items not started must still be written as skipped (the budget stopped the batch). */
  get skipping(): boolean {
    return this.rec?.state === 'stopped' && this.state.view.queue.length > 0;
  }

  /** Writes the queued items as skipped rows (a chunk per call) and counts them. */
  async skipQueued(): Promise<void> {
    const r = this.rec;
    if (!r || !this.skipping) return;
    const { batchId } = this.state.view;
    const message = `not started: the batch's budget of ${usd(r.maxCostUsd)} was reached (${usd(this.spent)} spent)`;
    while (this.state.view.queue.length > 0) {
      const ids = this.state.takeQueued(SKIP_CHUNK, this.state.view.pacer).map((i) => i.id);
      await store.recordNotRun({ batchId, itemIds: ids, type: FailureType.BudgetExceeded, message, at: new Date().toISOString() });
      this.state.countNotRun(ids.length);
      r.skipped += ids.length;
    }
  }

  /** The `setBudget` validator: a budget must exist, the batch not be stopped, and the new value be a higher finite number. */
  validate(req: SetBudgetRequest | undefined): void {
    const r = this.rec;
    if (!r) throw new Error('this batch has no budget (set pipeline.budget when starting it)');
    const v = req?.maxCostUsd;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new Error(`maxCostUsd must be a positive number of USD; got ${JSON.stringify(v)}`);
    if (r.state === 'stopped')
      throw new Error(`the batch stopped at its budget of ${usd(r.maxCostUsd)}; its items not started are skipped rows: re-run them (steadfast rerun --skipped)`);
    if (v <= r.maxCostUsd) throw new Error(`the new budget ${usd(v)} is not above the current ${usd(r.maxCostUsd)} (${usd(this.spent)} spent); a budget can only be raised`);
  }

  /** Raises the budget (validated) and resumes a paused batch. */
  raise(req: SetBudgetRequest): BudgetStatus {
    const r = this.rec!;
    const before = r.maxCostUsd;
    r.maxCostUsd = req.maxCostUsd;
    if (r.state === 'paused') r.state = 'ok';
    r.alerted = { warn: this.spent >= WARN_AT * r.maxCostUsd, reached: false };
    log.info('batch budget raised', { from: before, to: r.maxCostUsd });
    return this.status()!;
  }

  /** The budget as progress and the Update report it; null without a budget. */
  status(): BudgetStatus | null {
    const r = this.rec;
    if (!r) return null;
    return { maxCostUsd: r.maxCostUsd, spentUsd: round(this.spent), reservedUsd: round(this.reservedUsd), state: r.state, skipped: r.skipped };
  }

  /** Progress with the budget, and a budget pause shown as a pause. */
  progress(p: Progress): Progress {
    const b = this.status();
    if (!b) return p;
    const paused = b.state === 'paused' && !p.paused;
    return {
      ...p,
      budget: b,
      ...(paused ? { paused: true, pausedReason: `budget reached: ${usd(b.spentUsd)} of ${usd(b.maxCostUsd)}; raise it: steadfast resume ${p.batchId} --budget <usd>` } : {}),
    };
  }

  /** A line for the Web UI's details. */
  markdown(): string {
    const b = this.status();
    if (!b) return '';
    return `\n\n**budget**: ${usd(b.spentUsd)} spent of ${usd(b.maxCostUsd)} (${usd(b.reservedUsd)} reserved in flight)${b.state === 'ok' ? '' : `; **${b.state}**`}`;
  }

  /** The summary with the budget's figures; a budget stop makes the status `stopped`. */
  summary(s: BatchSummary): BatchSummary {
    const b = this.status();
    if (!b) return s;
    return { ...s, budget: b, ...(b.state === 'stopped' && s.status === 'completed' ? { status: 'stopped' as const } : {}) };
  }

  private fields(): Record<string, string> {
    const r = this.rec!;
    return { spent: usd(this.spent), budget: usd(r.maxCostUsd), reserved: usd(this.reservedUsd) };
  }
}

function usd(n: number): string {
  return `$${n.toFixed(n < 1 ? 4 : 2)}`;
}

function pct(a: number, b: number): string {
  return `${Math.round((a / b) * 100)}%`;
}

function round(n: number): number {
  return Math.round(n * 1e6) / 1e6;
}
