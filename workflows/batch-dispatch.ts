/**
 * Dispatch of the batch's items: how many may start now (concurrency, the
 * in-flight bound, open circuits, the pacer), the starts themselves, and the
 * child starts still unconfirmed.
 */
import { condition } from '@temporalio/workflow';
import type { Item } from '../src/shared/spec.ts';
import type { Circuits } from './batch-circuits.ts';
import type { Limits } from './batch-limits.ts';
import type { BatchState } from './batch-state.ts';
import { available, effectiveLimit, itemsPerMinute, refill, setRate, take, waitMs } from './pacer.ts';
import type { PacerState } from './pacer.ts';

/** With dispatch-ahead, items in flight (slot held or tail running) stay under this multiple of `concurrency`. */
const IN_FLIGHT_FACTOR = 2;

/** What one dispatch pass may do at a given time. */
interface Plan {
  /** Items that may start now. */
  n: number;
  /** Items that would start without the pacer. */
  wanted: number;
  /** The pacer after refilling at this time. */
  pacer: PacerState;
}

export class Dispatcher {
  private readonly state: BatchState;
  private readonly circuits: Circuits;
  private readonly ahead: boolean;
  /** The shared rate limit and adaptive concurrency, when the limits patch applies. */
  private readonly limits: Limits | null;
  /** Child starts in flight (dispatch does not wait for them). */
  private pendingStarts = 0;
  /** The first child start that failed; the batch fails with it. */
  startError: unknown = null;
  /** The batch's budget (workflows/batch-budget.ts): how many queued items it lets start. */
  budget: { room(queue: readonly Item[], wanted: number): number } | undefined;

  /** `ahead`: starts are not awaited, and the in-flight bound applies (the dispatch-ahead patch). */
  constructor(state: BatchState, circuits: Circuits, ahead: boolean, limits: Limits | null = null) {
    this.state = state;
    this.circuits = circuits;
    this.ahead = ahead;
    this.limits = limits;
  }

  /** The plan at `now`, or null while dispatch is paused, stopped or every tier is closed. */
  private plan(now: number): Plan | null {
    if (!this.state.dispatching || !this.circuits.anyOpenToNewItems) return null;
    const s = this.state.view;
    const concurrency = this.limits?.concurrency() ?? s.pipeline.batch.concurrency;
    const room = this.ahead ? IN_FLIGHT_FACTOR * concurrency - this.state.inFlight : concurrency;
    const free = Math.min(Math.max(concurrency - this.state.active, 0), Math.max(room, 0), s.queue.length);
    // Items the budget holds back are not wanted (no pacer wait for them).
    const wanted = this.budget ? this.budget.room(s.queue, free) : free;
    // The shared limiter's permits replace the batch's own pacer.
    if (this.limits?.shared) return { n: this.limits.available(wanted), wanted, pacer: s.pacer };
    const tokensPerItem = this.state.finished > 0 ? (s.inputTokens + s.outputTokens) / this.state.finished : 0;
    const limit = effectiveLimit(s.pipeline.providers[0]!.rateLimit, s.learnedLimit);
    const pacer = refill(setRate(s.pacer, itemsPerMinute(limit, tokensPerItem)), now);
    return { n: available(pacer, wanted), wanted, pacer };
  }

  /** True when an item could start now, or the shared limiter should hear of a changed want. */
  canStart(now: number): boolean {
    const plan = this.plan(now);
    return (plan?.n ?? 0) > 0 || (this.limits?.needsTelling(plan?.wanted ?? 0, now) ?? false);
  }

  /** True when the queue is empty, the source has more and a slot is free: the next page should be read. */
  needsPage(): boolean {
    return this.state.wantsPage && this.state.active < this.state.view.pipeline.batch.concurrency;
  }

  /**
   * Starts what may start now. Returns how long to wait for the pacer when it
   * held items back, else undefined.
   */
  async dispatch(now: number, start: (item: Item, notBefore?: number) => Promise<void>): Promise<number | undefined> {
    const plan = this.plan(now);
    if (this.limits?.shared) {
      const n = plan?.n ?? 0;
      const slots = this.limits.take(n);
      this.limits.tell((plan?.wanted ?? 0) - n, now);
      // Each item starts now and sends its request at its permit's time.
      if (n > 0) this.state.takeQueued(n, this.state.view.pacer).forEach((item, i) => this.track(start(item, slots[i])));
      return undefined;
    }
    if (!plan) return undefined;
    const pacer = take(plan.pacer, plan.n);
    const starting = this.state.takeQueued(plan.n, pacer).map((item) => start(item));
    if (this.ahead) starting.forEach((p) => this.track(p));
    else await Promise.all(starting);
    return plan.n < plan.wanted ? Math.max(waitMs(pacer), 50) : undefined;
  }

  /** Follows a child start without blocking dispatch on it. Calls `onFailed` when it fails. */
  private track(start: Promise<void>): void {
    this.pendingStarts++;
    start.then(
      () => this.pendingStarts--,
      (err: unknown) => {
        this.pendingStarts--;
        this.startError ??= err;
        this.onStartFailed?.();
      },
    );
  }

  /** Set by the batch: called when a child start failed. */
  onStartFailed: (() => void) | undefined;

  /** Set by the batch: false while items run inside the batch workflow (its fast path). */
  localIdle: (() => boolean) | undefined;

  /** Waits until every child start is confirmed and no fast run is in flight; rethrows the first that failed. */
  async settle(): Promise<void> {
    await condition(() => this.pendingStarts === 0 && (this.localIdle?.() ?? true));
    if (this.startError) throw this.startError;
  }
}
