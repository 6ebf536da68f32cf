/**
 * The batch's fast path: the batch workflow makes an item's first call itself (one
 * attempt on the first tier, `callLlm` as the item would send it) and writes the row
 * with a local activity, so an item that succeeds at once costs the batch four history
 * events instead of a child workflow. Any other result hands the item to its own
 * workflow, which goes on from that call exactly as if it had made it
 * (`ItemInput.handoff`): retries, repairs, later tiers, review.
 */
import { CancellationScope, isCancellation, log, patched, proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities/index.ts';
import { persistCall } from '../src/shared/policies.ts';
import type { Item, PipelineSpec } from '../src/shared/spec.ts';
import type { ItemHandoff, ItemOutcome, StoredSummary } from '../src/shared/types.ts';
import { renderMessages, validateItem } from '../src/shared/template.ts';
import { surelyFits } from '../src/shared/truncate.ts';
import { contextWindowOf } from '../src/shared/tiers.ts';
import { jitteredBackoff, MAX_RETRY_DELAY_MS } from '../src/shared/policies.ts';
import { AlreadyStored, Handoff, ItemRun, PROVIDER_FAULTS } from './item-run.ts';
import type { BatchState } from './batch-state.ts';
import type { Circuits } from './batch-circuits.ts';

/** Patch: items of a new batch take the fast path; batches started before it start a child per item. */
export const FAST_PATH_PATCH = 'fastpath-v1';

// An activity, not a local one: it runs only when the call could not write its row, and its
// events order it in history like every other step of the batch.
const store = proxyActivities<Activities>(persistCall);

/** What the fast path asks of the batch. */
export interface FastPathHost {
  state: BatchState;
  circuits: Circuits;
  /** Books a finished item (state, breakers, budget, alerts), as an item's report would. */
  finish(o: ItemOutcome): void;
  /** An item whose row was already stored (a re-run or reset): counted, or left to the workflow that waits for its review. */
  stored(item: Item, row: StoredSummary): Promise<void>;
  /** Starts the item's own workflow after its first call. */
  handOver(item: Item, openTiers: number[], handoff: ItemHandoff, notBefore?: number): Promise<void>;
  /** True while the batch is about to continue as new (no new fast run then: it would have to be drained). */
  closing(): boolean;
  /** Called when a fast run failed unexpectedly; the batch fails with {@link FastPath.error}. */
  onError(): void;
}

/** True when a spec's items may take the fast path at all. */
export function fastPathAllowed(p: PipelineSpec, limited: boolean): boolean {
  const first = p.providers[0]!;
  return p.batch.fastPath === true && !p.steps && first.mode !== 'batch' && !limited;
}

export class FastPath {
  private readonly host: FastPathHost;
  private readonly allowed: boolean;
  /** Runs in flight by item id, with the scope that cancels each. */
  private readonly runs = new Map<string, { run: ItemRun; scope: CancellationScope }>();
  /** Hand-over starts not yet confirmed. */
  private handing = 0;
  /** The first fast run that failed unexpectedly. */
  error: unknown = null;

  constructor(host: FastPathHost, allowed: boolean) {
    this.host = host;
    this.allowed = allowed;
  }

  /** True when nothing of the fast path is in flight (the batch may continue as new or return). */
  get idle(): boolean {
    return this.runs.size === 0 && this.handing === 0;
  }

  /** True when `itemId` is a fast run in flight (it has no workflow of its own yet). */
  has(itemId: string): boolean {
    return this.runs.has(itemId);
  }

  /**
   * True when this item takes the fast path: the spec allows it, the first tier's circuit is
   * closed, and the item is valid with a prompt that surely fits (else its workflow counts,
   * truncates or reports it).
   */
  takes(item: Item): boolean {
    if (!this.allowed || this.host.closing()) return false;
    const s = this.host.state.view;
    if (s.circuits[0]?.state !== 'closed') return false;
    const p = s.pipeline;
    const first = p.providers[0]!;
    if (validateItem(item, p).length > 0 || !surelyFits(renderMessages(p, item), contextWindowOf(first), first.maxOutputTokens)) return false;
    return patched(FAST_PATH_PATCH);
  }

  /** Starts the item's fast run; the item holds a slot from now until it reports or is handed over. */
  start(item: Item): void {
    const { batchId, pipeline } = this.host.state.view;
    const run = new ItemRun({ batchId, item, pipeline }, null, undefined, { fast: true });
    const scope = new CancellationScope();
    this.runs.set(item.id, { run, scope });
    void this.drive(item, run, scope);
  }

  /** Cancels every fast run in flight (a cancelled batch). */
  cancelAll(): void {
    for (const { scope } of this.runs.values()) scope.cancel();
  }

  /** A circuit opened or closed: a fast run on a tier that opened leaves its call. */
  setOpenTiers(itemId: string, openTiers: number[]): void {
    this.runs.get(itemId)?.run.setOpenTiers(openTiers);
  }

  private async drive(item: Item, run: ItemRun, scope: CancellationScope): Promise<void> {
    try {
      let handoff: ItemHandoff | null = null;
      try {
        await scope.run(() => run.execute(0));
        if (run.status === 'failed') handoff = run.handoffAfterStop();
      } catch (err) {
        if (err instanceof AlreadyStored) return await this.stored(item, err.row);
        if (err instanceof Handoff) handoff = err.handoff;
        else if (isCancellation(err)) run.status = 'cancelled';
        else throw err;
      }
      if (handoff) return await this.handOver(item, handoff);
      // The call wrote the row (or the item was cancelled, or the store refused the call's write).
      if (!run.persisted) {
        this.host.state.release(item.id);
        await CancellationScope.nonCancellable(() => store.persistResult(run.row()));
      }
      this.host.finish(run.outcome());
    } catch (err) {
      log.error('fast run failed', { itemId: item.id, error: String(err) });
      this.error ??= err;
      this.host.onError();
    } finally {
      this.runs.delete(item.id);
    }
  }

  /**
   * The item leaves the fast path for `work` (counting its row, or starting its workflow),
   * which no cancel interrupts; the batch waits for it before it continues as new or returns.
   */
  private async leave(item: Item, work: () => Promise<void>): Promise<void> {
    this.handing++;
    this.runs.delete(item.id);
    try {
      await CancellationScope.nonCancellable(work);
    } finally {
      this.handing--;
    }
  }

  private async stored(item: Item, row: StoredSummary): Promise<void> {
    await this.leave(item, () => this.host.stored(item, row));
  }

  private async handOver(item: Item, handoff: ItemHandoff): Promise<void> {
    const { circuits, state } = this.host;
    const now = Date.now();
    // A tier's final failure feeds its breaker, as the item's own report of it would.
    if (handoff.next !== 'retry' && PROVIDER_FAULTS.includes(handoff.failure.type)) circuits.onTierResult({ tier: 0, ok: false, errorType: handoff.failure.type }, now);
    const retry = state.view.pipeline.retry;
    const backoff =
      handoff.next === 'retry'
        ? jitteredBackoff(1, { initialIntervalMs: retry.initialInterval, backoffCoefficient: retry.backoffCoefficient, maximumIntervalMs: retry.maxInterval }, Math.random())
        : 0;
    // The provider's Retry-After wins over the policy's backoff, as for a retry inside the activity.
    const after = (handoff.failure.details as { retryAfterMs?: unknown } | undefined)?.retryAfterMs;
    const delay = handoff.next === 'retry' && typeof after === 'number' && after > 0 ? Math.min(after, MAX_RETRY_DELAY_MS) : backoff;
    await this.leave(item, () => this.host.handOver(item, circuits.openTiersForNewItem(item.id), handoff, delay > 0 ? now + delay : undefined));
  }
}
