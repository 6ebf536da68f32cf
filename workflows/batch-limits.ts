/**
 * The batch's side of the shared rate limit and of adaptive concurrency.
 *
 * Shared limit: a batch whose first tier names a `rateLimit` takes permits from
 * the `rateLimiter` workflow of that tier's key (workflows/limiter.ts) instead of
 * pacing alone, so every batch on the key shares one budget. It tells the limiter
 * how many permits it could use now (only when that changed enough, to keep
 * messages few), starts one item per permit, and gives back what it holds when it
 * ends. Adaptive concurrency: the in-flight limit follows AIMD (workflows/aimd.ts)
 * fed by the calls' latencies and the provider's sheds.
 */
import { condition, getExternalWorkflowHandle, patched, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities/index.ts';
import { limiterAcquireSignal, limiterIdOf, limiterReleaseSignal } from '../src/shared/limiter.ts';
import type { AcquireMessage, CallSlot, CallSlotRequest } from '../src/shared/limiter.ts';
import { renderMessages } from '../src/shared/template.ts';
import type { Alerts } from './batch-alerts.ts';
import type { BatchState } from './batch-state.ts';
import { allowed, newAimd, onShed, onSuccess } from './aimd.ts';
import type { AimdState } from './aimd.ts';
import { LIMITS2_PATCH } from './call-slot.ts';

/**
 * Patch: batches with a rate limit take permits from the shared limiter of their key, and
 * `batch.adaptiveConcurrency` adapts the in-flight limit. Batches started before it pace alone.
 */
export const LIMITS_PATCH = 'limits-v1';

const limiterStart = proxyActivities<Activities>({ startToCloseTimeout: '30 seconds', retry: { maximumAttempts: 10, maximumInterval: '10 seconds' } });

/** What the batch carries of both across continue-as-new. */
export interface LimitsCarry {
  /** Permits granted and not used yet: the send time (epoch ms) of each. */
  slots: number[];
  /** The want the limiter holds for this batch, as far as the batch knows (grants lower it). */
  told: number;
  /** Sheds not yet reported to the limiter. */
  shed: number;
  /** When the batch last told the limiter its want, and last received permits (epoch ms). */
  toldAt?: number;
  grantedAt?: number;
  aimd?: AimdState;
  /** The latest send time the limiter granted this batch (epoch ms), told to a restarted limiter. */
  lastSlot?: number;
}

/** A call waiting in the batch for its slot (`itemCallSlot`); `slot` is set when it got one. */
interface CallWaiter {
  itemId: string;
  permit: boolean;
  slot?: number | null;
}

/** A batch that asked for permits and got none for this long tells the limiter again. */
const RETELL_MS = 10_000;

/** Characters per token for the first estimate, before any item reported its real count (conservative). */
const CHARS_PER_TOKEN = 3;

export class Limits {
  private readonly state: BatchState;
  private readonly alerts: Alerts;
  /** The shared limiter's workflow id; null when the batch has no rate limit (only adaptive concurrency). */
  readonly limiterId: string | null;
  readonly adaptive: boolean;
  /**
   * The first message of a run goes by signal-with-start (an activity); later ones by signal,
   * once that one was delivered, so the two never overtake each other.
   */
  private reach: 'no' | 'starting' | 'yes' = 'no';

  constructor(state: BatchState, alerts: Alerts, opts: { shared: boolean; adaptive: boolean }) {
    this.state = state;
    this.alerts = alerts;
    const first = state.view.pipeline.providers[0]!;
    this.limiterId = opts.shared ? limiterIdOf(first, workflowInfo().taskQueue) : null;
    this.adaptive = opts.adaptive;
    if (this.adaptive) {
      this.rec.aimd ??= newAimd(this.max);
      if (!this.rec.aimd.whole && patched(LIMITS2_PATCH)) this.rec.aimd = { ...this.rec.aimd, whole: true };
    }
  }

  /** Calls of running items waiting for their slot, first come first served. Never across continue-as-new (the batch waits for its handlers). */
  private readonly waiters: CallWaiter[] = [];
  /** Set when the batch ends: waiting calls go at once. */
  private closed = false;

  /** Permits the waiting calls need before new items may take any. */
  private get permitWaiters(): number {
    return this.waiters.reduce((n, w) => n + (w.permit && w.slot === undefined ? 1 : 0), 0);
  }

  /**
   * The `itemCallSlot` Update: a call of a running item waits here for a permit (when it goes to
   * the batch's rate-limited key) and, with adaptive concurrency, until the calls of the other
   * running items are under the limit (after a cut the batch may run more items than the limit
   * allows; their retries wait instead of going out over it).
   */
  async callSlot(req: CallSlotRequest): Promise<CallSlot> {
    const w: CallWaiter = { itemId: req.itemId, permit: req.permit && this.shared };
    if (!w.permit && !this.adaptive) return { notBefore: null };
    this.waiters.push(w);
    try {
      await condition(() => this.admit(w));
    } finally {
      const i = this.waiters.indexOf(w);
      if (i >= 0) this.waiters.splice(i, 1);
    }
    return { notBefore: w.slot ?? null };
  }

  /**
   * True when the waiting call `w` may go now; it takes its permit then, and leaves the line at
   * once so the next one is judged in the same pass. The predicate of the handler's `condition`:
   * the SDK evaluates those after every activation in the order they were made (deterministic).
   */
  private admit(w: CallWaiter): boolean {
    const go = (): boolean => {
      const i = this.waiters.indexOf(w);
      if (i >= 0) this.waiters.splice(i, 1);
      return true;
    };
    // The batch ends, or the item is gone (cancelled, its call abandoned): nothing to hold back.
    if (this.closed || !this.state.isRunning(w.itemId)) return go();
    if (this.waiters[0] !== w) return false;
    // Calls of running items: those holding a slot, but not the ones waiting here.
    if (this.adaptive && this.state.active - this.waiters.length >= this.concurrency()) return false;
    if (w.permit) {
      if (this.rec.slots.length === 0) return false;
      w.slot = this.rec.slots.shift()!;
    } else w.slot = null;
    return go();
  }

  private get rec(): LimitsCarry {
    return this.state.limits;
  }

  private get max(): number {
    return this.state.view.pipeline.batch.concurrency;
  }

  get shared(): boolean {
    return this.limiterId !== null;
  }

  /** Calls allowed in flight now: the spec's concurrency, or the adaptive limit under it. */
  concurrency(): number {
    return this.adaptive && this.rec.aimd ? allowed(this.rec.aimd, this.max) : this.max;
  }

  /** How many of `wanted` items may start on the permits held (calls of running items waiting for one come first). */
  available(wanted: number): number {
    return Math.max(0, Math.min(wanted, this.rec.slots.length - this.permitWaiters));
  }

  /** Takes `n` permits: the send times of the items about to start. */
  take(n: number): number[] {
    return this.rec.slots.splice(0, n);
  }

  /** What the batch could use beyond its permits, when `wanted` items could start. */
  private demand(wanted: number): number {
    return Math.max(0, wanted + this.permitWaiters - this.rec.slots.length);
  }

  /**
   * True when the limiter's idea of this batch's want is far enough off to be worth a message,
   * or the batch has waited {@link RETELL_MS} for permits it asked for (a message may have been
   * overtaken by an older one: the limiter's want is told again).
   */
  needsTelling(wanted: number, now: number): boolean {
    if (!this.shared || this.reach === 'starting') return false;
    const d = this.demand(wanted);
    const told = this.rec.told;
    if (d === 0) return told > 0;
    if (now - Math.max(this.rec.toldAt ?? 0, this.rec.grantedAt ?? 0) >= RETELL_MS) return true;
    return told === 0 || d > 2 * told || 2 * d < told;
  }

  /** Milliseconds until the batch tells the limiter its want again while it waits; undefined when it does not wait. */
  retellIn(now: number): number | undefined {
    if (!this.shared || this.rec.told === 0) return undefined;
    return Math.max(1, RETELL_MS - (now - Math.max(this.rec.toldAt ?? 0, this.rec.grantedAt ?? 0)));
  }

  /** Tells the limiter what the batch could use now, if it changed enough. */
  tell(wanted: number, now: number): void {
    if (!this.needsTelling(wanted, now)) return;
    const d = this.demand(wanted);
    // Permits held while nothing can start go back, so they are not spent later in a burst.
    const returned = d === 0 && wanted === 0 && this.permitWaiters === 0 ? this.rec.slots.length : 0;
    if (returned > 0) this.rec.slots = [];
    this.rec.told = d;
    this.rec.toldAt = now;
    this.send({ ...this.message(d), ...(returned > 0 ? { returned } : {}) });
  }

  /** Permits arrived, with the want the limiter still holds for this batch. */
  onPermits(slots: number[], want: number | undefined, now: number): boolean {
    if (!this.shared || !Array.isArray(slots)) return false;
    this.rec.slots = [...this.rec.slots, ...slots].sort((a, b) => a - b);
    if (slots.length > 0) this.rec.lastSlot = Math.max(this.rec.lastSlot ?? 0, ...slots);
    this.rec.told = want ?? Math.max(0, this.rec.told - slots.length);
    this.rec.grantedAt = now;
    return true;
  }

  /** The provider shed one of this batch's calls. */
  onShed(now: number): boolean {
    this.rec.shed += 1;
    if (this.rec.aimd) this.rec.aimd = onShed(this.rec.aimd, now);
    return this.adaptive;
  }

  /** A call succeeded after `latencyMs`. */
  onCallDone(latencyMs: number | undefined, now: number): void {
    if (this.rec.aimd && latencyMs !== undefined) this.rec.aimd = onSuccess(this.rec.aimd, latencyMs, this.max, now);
  }

  /** The batch ends: the limiter forgets it and takes back its permits. */
  release(): void {
    this.closed = true;
    if (!this.limiterId) return;
    const returned = this.rec.slots.length;
    this.rec.slots = [];
    this.rec.told = 0;
    const client = this.client;
    this.alerts.track(
      getExternalWorkflowHandle(this.limiterId)
        .signal(limiterReleaseSignal, { client, returned })
        .catch(() => undefined),
    );
  }

  /** The batch's workflow id: where the limiter sends permits. */
  private get client(): string {
    return workflowInfo().workflowId;
  }

  /** Tokens one request is charged: the prompt (measured once items reported) plus the output reserve. */
  private tokensPerRequest(): number {
    const s = this.state.view;
    const first = s.pipeline.providers[0]!;
    const done = this.state.finished;
    if (done > 0 && s.inputTokens > 0) return Math.ceil(s.inputTokens / done) + first.maxOutputTokens;
    const sample = s.queue[0];
    const chars = sample ? renderMessages(s.pipeline, sample).reduce((n, m) => n + m.content.length, 0) : 2_000;
    return Math.ceil(chars / CHARS_PER_TOKEN) + first.maxOutputTokens;
  }

  private message(want: number): AcquireMessage {
    const s = this.state.view;
    const limit = s.pipeline.providers[0]!.rateLimit;
    const shed = this.rec.shed;
    this.rec.shed = 0;
    return {
      client: this.client,
      want,
      tokensPerRequest: this.tokensPerRequest(),
      ...(limit ? { limit } : {}),
      ...(s.learnedLimit ? { learned: s.learnedLimit } : {}),
      ...(shed > 0 ? { shed } : {}),
      ...(this.rec.lastSlot !== undefined ? { lastSlot: this.rec.lastSlot } : {}),
    };
  }

  private send(m: AcquireMessage): void {
    const limiterId = this.limiterId!;
    const viaStart = (): Promise<void> => limiterStart.ensureLimiter({ limiterId, acquire: m });
    if (this.reach === 'no') {
      this.reach = 'starting';
      return this.alerts.track(viaStart().finally(() => (this.reach = 'yes')));
    }
    // The limiter ended after a quiet spell (or never started): signal-with-start brings it back.
    this.alerts.track(getExternalWorkflowHandle(limiterId).signal(limiterAcquireSignal, m).catch(viaStart));
  }
}
