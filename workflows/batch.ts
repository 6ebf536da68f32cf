/**
 * `batchPipeline`: validates the input, keeps up to `concurrency` item
 * workflows running (a sliding window, paced to the first tier's rate limits),
 * holds the circuit breakers and the review queue, continues as new before its
 * history grows large, and returns the summary.
 *
 * The loop waits on what it means: an item could start, a page is needed, the
 * batch is done, a start failed, or history asks for continue-as-new. Handlers
 * only change state; the SDK re-evaluates the predicate after every activation,
 * so no wake-up can be lost.
 */
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  ParentClosePolicy,
  WorkflowIdReusePolicy,
  allHandlersFinished,
  condition,
  continueAsNew,
  log,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  startChild,
  upsertSearchAttributes,
  isCancellation,
  workflowInfo,
} from '@temporalio/workflow';
import { itemParkedSignal } from '../src/shared/provider-batch.ts';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { Activities } from '../activities/index.ts';
import { FailureType } from '../src/shared/failures.ts';
import { sourceCall, storeRead } from '../src/shared/policies.ts';
import type { BatchInput, BatchInputRaw, Item } from '../src/shared/spec.ts';
import { MAX_BATCH_ID_CHARS } from '../src/shared/tiers.ts';
import type { BatchSummary, ItemInput, ItemOutcome, StoredSummary } from '../src/shared/types.ts';
import { Alerts } from './batch-alerts.ts';
import { Budget } from './batch-budget.ts';
import { Cancel } from './batch-cancel.ts';
import { Circuits } from './batch-circuits.ts';
import { Dispatcher } from './batch-dispatch.ts';
import { FastPath, fastPathAllowed } from './batch-fast.ts';
import { Limits, LIMITS_PATCH } from './batch-limits.ts';
import { callShedSignal, callSlotUpdate, limiterDescribed, permitsSignal } from '../src/shared/limiter.ts';
import { Reviews } from './batch-reviews.ts';
import { BatchState, initialCarry } from './batch-state.ts';
import type { BatchCarry } from './batch-state.ts';
import { itemPipeline } from './item.ts';
import { loadSpec } from './lazy.ts';
import {
  callDoneSignal,
  cancelSignal,
  cancelUpdate,
  itemAwaitingSignal,
  itemDoneSignal,
  progressQuery,
  resumeSignal,
  reviewManyUpdate,
  reviewQueueQuery,
  reviewSignal,
  reviewUpdate,
  setBudgetUpdate,
  tierResultSignal,
  described,
  itemStepSignal,
} from '../src/shared/messages.ts';
import { loadOutputCheck } from './review.ts';
import { BATCH_ID } from '../src/shared/search-attributes.ts';

const source = proxyActivities<Activities>(sourceCall);
const store = proxyActivities<Activities>(storeRead);

/**
 * Patch: a new batch checks its spec on a worker before its first item: the worker's
 * endpoint policy (baseURL hosts, apiKeyEnv names) decides, and a spec it refuses fails
 * the batch at once instead of sending every item to review.
 */
export const SPEC_CHECK_PATCH = 'spec-check-v1';
const checks = proxyActivities<Activities>({ startToCloseTimeout: '30 s', retry: { maximumAttempts: 5, nonRetryableErrorTypes: [FailureType.InvalidSpec] } });

/** Runs the worker-side spec check; its InvalidSpec fails the batch with the same message. */
async function checkOnWorker(pipeline: BatchInput['pipeline']): Promise<void> {
  try {
    await checks.checkPipeline({ providers: pipeline.providers, output: pipeline.output });
    // A multi-step spec: each step with its own tiers is checked too (the output schemas were compiled by zod).
    for (const step of pipeline.steps ?? []) if (step.providers) await checks.checkPipeline({ providers: step.providers, output: step.output });
  } catch (err) {
    const cause = err instanceof ActivityFailure ? err.cause : undefined;
    if (cause instanceof ApplicationFailure && cause.type === FailureType.InvalidSpec) {
      throw ApplicationFailure.create({ type: FailureType.InvalidSpec, message: `invalid batch input: ${cause.message}`, nonRetryable: true });
    }
    throw err;
  }
}

/** Continue as new past this many events, well under the 10,000 the design allows. */
const HISTORY_EVENT_BUDGET = 8_000;
/**
 * Patch: dispatch no longer waits for each child's start to be confirmed, and items whose LLM
 * call succeeded (`itemCallDone` from the activity) free their slot while they persist and
 * report. Batches started before it replay the old dispatch.
 */
export const DISPATCH_AHEAD_PATCH = 'dispatch-ahead-v2';
/**
 * Patch: the loop waits on named predicates instead of a counter that handlers bumped. It
 * wakes only when there is something to do, so a pacer or circuit timer is no longer
 * cancelled and restarted by unrelated reports. Batches started before it replay the
 * counter ({@link LegacyWake}).
 */
export const WAIT_ON_PREDICATES_PATCH = 'wait-on-predicates-v3';
/**
 * Patch: exactly once per (batch, item) whatever the operator does. The batch id must be the
 * workflow id (two batches cannot share one); a source is scanned once before its first page
 * (its total, and lines that repeat an id, which are reported and not run); children start
 * with a reuse policy that refuses the id of a completed item, whose stored row the batch then
 * counts instead of running it again; the page buffer is bounded by bytes.
 */
export const EXACTLY_ONCE_PATCH = 'exactly-once-v5';
/** Bulk decisions are kept in the record and delivered by the loop, so `reviewMany` answers at once. */
export const BULK_OUTBOX_PATCH = 'bulk-outbox-v6';

/** With the exactly-once patch, no page is read while the queued items' JSON passes this. */
const QUEUE_BYTES = 256 * 1024;

/** Items read from a JSONL source per activity call. */
const PAGE_SIZE = 200;

/** Validates the raw input; an invalid spec fails the workflow at once, naming the field. */
export async function parseBatchInput(raw: unknown): Promise<BatchInput> {
  const { BatchInput, formatIssues } = await loadSpec();
  const r = BatchInput.safeParse(raw);
  if (!r.success) {
    throw ApplicationFailure.create({ type: FailureType.InvalidSpec, message: `invalid batch input: ${formatIssues(r.error)}`, nonRetryable: true });
  }
  const ids = new Set<string>();
  for (const item of r.data.items ?? []) {
    if (ids.has(item.id))
      throw ApplicationFailure.create({ type: FailureType.InvalidInput, message: `invalid batch input: items: duplicate item id "${item.id}"`, nonRetryable: true });
    ids.add(item.id);
  }
  return r.data;
}

/**
 * The wake-up of batches started before {@link WAIT_ON_PREDICATES_PATCH}: any change
 * the loop must react to counts once. Kept only to replay those batches; remove it
 * with `deprecatePatch` once none runs.
 */
class LegacyWake {
  version = 0;
  /** Counts a change unless the handler reported none (`false`). */
  after(changed: boolean | void): void {
    if (changed !== false) this.version++;
  }
}

export async function batchPipeline(input: BatchInputRaw | { carry: BatchCarry }): Promise<BatchSummary> {
  const once = patched(EXACTLY_ONCE_PATCH);
  let carry: BatchCarry;
  let fresh = false;
  if ('carry' in input) {
    carry = { ...input.carry, runs: input.carry.runs + 1 };
  } else {
    const parsed = await parseBatchInput(input);
    fresh = true;
    const batchId = parsed.batchId ?? workflowInfo().workflowId;
    if (once) checkBatchId(batchId);
    carry = initialCarry(batchId, parsed.pipeline, parsed.items, parsed.source, new Date().toISOString());
  }
  // Forwarded reviews are checked against the output schema (loaded lazily).
  await loadOutputCheck();
  const state = new BatchState(carry);
  const alerts = new Alerts(state);
  const circuits = new Circuits(state, alerts);
  upsertSearchAttributes([{ key: BATCH_ID, value: state.view.batchId }]);
  const ahead = patched(DISPATCH_AHEAD_PATCH);
  const predicates = ahead && patched(WAIT_ON_PREDICATES_PATCH);
  // Asked in the Update's handler: the marker lands where a bulk decision first arrives.
  const reviews = new Reviews(state, alerts, predicates, () => predicates && patched(BULK_OUTBOX_PATCH));
  // Patched: a rate limit is shared with every batch on the same key; concurrency may adapt.
  // (A first tier in `mode: batch` sends through the provider's Batch API: not paced per request.)
  const first = carry.pipeline.providers[0]!;
  const shared = first.rateLimit !== undefined && first.mode !== 'batch';
  const adaptive = carry.pipeline.batch.adaptiveConcurrency === true;
  const limits = predicates && (shared || adaptive) && patched(LIMITS_PATCH) ? new Limits(state, alerts, { shared, adaptive }) : null;
  const dispatcher = new Dispatcher(state, circuits, ahead, limits);
  const cancel = new Cancel(state, dispatcher, alerts);
  const budget = new Budget(state, alerts);
  dispatcher.budget = budget;
  const legacy = new LegacyWake();
  const details = (): void => setCurrentDetails(state.detailsMarkdown(Date.now()) + budget.markdown());
  /** Every handler: change the state, count it for old batches, refresh the Web UI's details. */
  const handled = (changed: boolean | void): void => {
    legacy.after(changed);
    details();
  };

  dispatcher.onStartFailed = () => handled(true);
  /** Books an item's report (a child's signal, or a fast run's result). */
  const finish = (o: ItemOutcome): void => {
    if (!state.applyOutcome(o)) return (log.warn('ignored a report from an unknown or finished item', { itemId: o.itemId }), handled(false));
    circuits.onItemDone(o);
    budget.onOutcome(o);
    alerts.checkErrorRate();
    handled(true);
  };
  // New batches make each item's first call themselves; only an item whose call failed gets a workflow.
  const fast = new FastPath(
    {
      state,
      circuits,
      finish,
      stored: async (item, row) => {
        // A row waiting for review belongs to an item workflow of an earlier run: the child start finds it.
        if (row.status === 'awaiting_review') await startChildFor(state, budget, item, once, { openTiers: circuits.openTiersForNewItem(item.id) });
        else countStored(state, budget, item.id, row);
        handled(true);
      },
      handOver: (item, openTiers, handoff, notBefore) => startChildFor(state, budget, item, once, { openTiers, handoff, ...(notBefore !== undefined ? { notBefore } : {}) }),
      closing: shouldContinueAsNew,
      onError: () => {
        dispatcher.startError ??= fast.error;
        handled(true);
      },
    },
    predicates && once && fastPathAllowed(carry.pipeline, shared || adaptive),
  );
  circuits.local = fast;
  cancel.cancelLocal = () => fast.cancelAll();
  dispatcher.localIdle = () => fast.idle;
  setHandler(itemDoneSignal, finish, described(itemDoneSignal));
  setHandler(
    callDoneSignal,
    ({ itemId, latencyMs }) => {
      limits?.onCallDone(latencyMs, Date.now());
      handled(state.release(itemId));
    },
    described(callDoneSignal),
  );
  setHandler(itemParkedSignal, ({ itemId, parked }) => handled(state.park(itemId, parked)), { description: 'an item entered or left a provider batch (mode: batch tier)' });
  if (limits) {
    setHandler(permitsSignal, ({ slots, want }) => handled(limits.onPermits(slots, want, Date.now())), limiterDescribed(permitsSignal));
    setHandler(callShedSignal, () => handled(limits.onShed(Date.now())), limiterDescribed(callShedSignal));
  }
  // Items of a batch that neither shares a limit nor adapts (or started before that) are not held back.
  setHandler(callSlotUpdate, (r) => (limits ? limits.callSlot(r) : { notBefore: null }), limiterDescribed(callSlotUpdate));
  setHandler(itemAwaitingSignal, (p) => handled(reviews.onAwaiting(p)), described(itemAwaitingSignal));
  setHandler(itemStepSignal, ({ itemId, step }) => handled(state.setStep(itemId, step)), described(itemStepSignal));
  setHandler(tierResultSignal, (r) => handled(circuits.onTierResult(r, Date.now())), described(tierResultSignal));
  setHandler(reviewSignal, async (d) => handled(await reviews.bySignal(d)), described(reviewSignal));
  setHandler(reviewUpdate, async (d) => withHandled(await reviews.forward(d), handled), { ...described(reviewUpdate), validator: (d) => reviews.validate(d) });
  setHandler(reviewManyUpdate, async (d) => withHandled(await reviews.forwardMany(d), handled), { ...described(reviewManyUpdate), validator: (d) => reviews.validateBulk(d) });
  setHandler(resumeSignal, () => handled(resume(state)), described(resumeSignal));
  setHandler(cancelUpdate, async (r) => withHandled(await cancel.request(r), handled), { ...described(cancelUpdate), validator: (r) => cancel.validate(r) });
  setHandler(
    cancelSignal,
    async (r) => {
      try {
        cancel.validate(r);
      } catch (err) {
        return log.warn('cancel ignored', { problem: String(err) });
      }
      handled((await cancel.request(r), true));
    },
    described(cancelSignal),
  );
  setHandler(setBudgetUpdate, (r) => withHandled(budget.raise(r), handled), { ...described(setBudgetUpdate), validator: (r) => budget.validate(r) });
  setHandler(progressQuery, () => budget.progress(state.progress(Date.now())), described(progressQuery));
  setHandler(reviewQueueQuery, (page) => state.reviewQueuePage(page?.offset ?? 0, page?.limit ?? 1_000), described(reviewQueueQuery));
  // After the handlers: the batch answers its queries while a worker checks the spec.
  if (fresh && patched(SPEC_CHECK_PATCH)) await checkOnWorker(carry.pipeline);

  /**
   * Something the loop must act on now (the predicate of the wait): the batch is done, a start
   * failed, an item can start, a page is needed, history asks for continue-as-new, or a circuit
   * opened or closed or a review digest became due since the wait began (their timers must be planned anew).
   */
  const actionable = (planned: number | null, plannedDigest: number | null) => (): boolean =>
    state.done ||
    dispatcher.startError !== null ||
    dispatcher.canStart(Date.now()) ||
    dispatcher.needsPage() ||
    shouldContinueAsNew() ||
    state.outboxSize > 0 ||
    circuits.nextHalfOpen !== planned ||
    reviews.digestDueAt !== plannedDigest ||
    budget.decisionDue ||
    budget.skipping;

  try {
    await runLoop();
  } catch (err) {
    // `temporal workflow cancel` on the batch: the same as the cancel Update, then drain.
    if (!isCancellation(err)) throw err;
    await CancellationScope.nonCancellable(async () => {
      await cancel.request({ reason: 'the batch workflow was cancelled' });
      await condition(() => state.done);
    });
  }
  return await CancellationScope.nonCancellable(async () => {
    await cancel.finish();
    reviews.sendDigestIfDue(Date.now(), true);
    await dispatcher.settle();
    limits?.release();
    await alerts.drain();
    await condition(allHandlersFinished);
    return budget.summary(state.summary(new Date().toISOString(), 'completed'));
  });

  async function runLoop(): Promise<void> {
    // Patched: one pass over the source before its first page (its total, its duplicate lines).
    if (once && state.view.source && !state.view.source.scanned) state.setScan(await source.scanSource({ path: state.view.source.jsonl }));
    while (!state.done) {
      // Taken before dispatching: reports that arrive while children start (one activation can
      // carry both after a worker crash) must wake the wait below, or their slots stay empty.
      const seen = legacy.version;
      if (dispatcher.startError) throw dispatcher.startError;
      const now = Date.now();
      circuits.tick(now);
      // Patched: the page is read after dispatch, so queued items do not wait for it.
      if (!ahead) await refill(state, once);
      const paceFor = await dispatcher.dispatch(now, (item, notBefore) => startItem(state, circuits, budget, item, once, notBefore, fast));
      const paged = ahead && (await refill(state, once));
      if (state.outboxSize > 0) await reviews.deliverOutbox();
      budget.decide();
      await budget.skipQueued();
      details();
      if (state.done) break;
      if (shouldContinueAsNew()) {
        await dispatcher.settle();
        await alerts.drain();
        await condition(allHandlersFinished);
        await continueAsNew<typeof batchPipeline>({ carry: state.carry() });
      }
      reviews.sendDigestIfDue(now);
      const digestAt = reviews.digestDueAt;
      const timers = [paceFor, limits?.retellIn(now), circuits.nextChange(now), digestAt === null ? undefined : Math.max(digestAt - now, 1)].filter(
        (x): x is number => x !== undefined,
      );
      const timeout = timers.length ? Math.min(...timers) : undefined;
      if (predicates) {
        if (!paged) await condition(actionable(circuits.nextHalfOpen, digestAt), timeout);
      } else if (!dispatcher.needsPage() && !paged) {
        await condition(() => legacy.version !== seen, timeout);
      }
    }
  }
}

function withHandled<T>(result: T, handled: (changed: boolean) => void): T {
  handled(true);
  return result;
}

function resume(state: BatchState): boolean {
  const why = state.view.paused;
  if (!state.resume()) return false;
  log.info('batch resumed', { reason: why });
  return true;
}

function shouldContinueAsNew(): boolean {
  const info = workflowInfo();
  return info.continueAsNewSuggested || info.historyLength > HISTORY_EVENT_BUDGET;
}

/**
 * A batch's id is its workflow id: Temporal lets one workflow id run once at a time, so two
 * batches can never share an id (and their items' ids) however they are started.
 */
function checkBatchId(batchId: string): void {
  const { workflowId } = workflowInfo();
  if (batchId !== workflowId) {
    throw ApplicationFailure.create({
      type: FailureType.BatchIdConflict,
      message: `batch id ${JSON.stringify(batchId)} is not this workflow's id ${JSON.stringify(workflowId)}: a batch's id must be its workflow id, so that no two batches share one; start it with --workflow-id ${JSON.stringify(batchId)} (or leave batchId out)`,
      nonRetryable: true,
    });
  }
  if (batchId.length > MAX_BATCH_ID_CHARS || batchId.includes('/')) {
    throw ApplicationFailure.create({
      type: FailureType.InvalidInput,
      message: `batch id ${JSON.stringify(batchId.slice(0, 80))}${batchId.length > 80 ? '...' : ''}: use at most ${MAX_BATCH_ID_CHARS} characters and no "/" (item workflow ids are <batchId>/<itemId>)`,
      nonRetryable: true,
    });
  }
}

/** Reads the next page of a JSONL source by reference, so items never sit in one payload. */
async function refill(state: BatchState, once: boolean): Promise<boolean> {
  const s = state.view;
  if (!s.source || s.source.done || s.queue.length >= s.pipeline.batch.concurrency) return false;
  // Patched: the page buffer is bounded by bytes too (it is part of the carry).
  if (once && s.queue.length > 0 && state.queueBytes() >= QUEUE_BYTES) return false;
  const duplicates = once ? state.duplicatesFrom(s.source.line) : [];
  const page = await source.readItemsPage({
    path: s.source.jsonl,
    offset: s.source.offset,
    line: s.source.line,
    limit: Math.max(PAGE_SIZE, s.pipeline.batch.concurrency),
    ...(duplicates.length ? { duplicates } : {}),
  });
  state.addPage(page);
  return true;
}

async function startItem(state: BatchState, circuits: Circuits, budget: Budget, item: Item, once: boolean, notBefore?: number, fast?: FastPath): Promise<void> {
  if (once && state.isRunning(item.id)) {
    // The source changed after its scan: a second copy of a running item is reported, never waited for.
    log.warn('duplicate item id ignored: an item with this id is running', { itemId: item.id });
    return;
  }
  const quick = notBefore === undefined && fast?.takes(item) === true;
  state.markStarted(item.id);
  budget.reserve(item);
  if (quick) return fast.start(item);
  const openTiers = circuits.openTiersForNewItem(item.id);
  await startChildFor(state, budget, item, once, { openTiers, ...(notBefore !== undefined ? { notBefore } : {}) });
}

/** Starts a started item's own workflow; an id used before is counted from its stored row. */
async function startChildFor(state: BatchState, budget: Budget, item: Item, once: boolean, extra: Pick<ItemInput, 'openTiers' | 'notBefore' | 'handoff'>): Promise<void> {
  const { batchId } = state.view;
  try {
    // Patched: a completed item's id cannot start again (a failed or terminated one can).
    await startChild(itemPipeline, childOptions(state, item, extra, once ? WorkflowIdReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY : undefined));
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    if (!once) return void log.info('item already running', { itemId: item.id });
    // The id was used before (a re-run or a reset of this batch): a completed item has its final
    // row, which is counted; one still running reports to this workflow id all the same.
    const row = await store.itemResult({ batchId, itemId: item.id });
    if (row && 'workflowClosed' in row) return await startAgain(state, item, extra);
    if (row && row.status !== 'awaiting_review') countStored(state, budget, item.id, row);
    else log.info('item already running', { itemId: item.id });
  }
}

/** The start options of an item's workflow. */
function childOptions(state: BatchState, item: Item, extra: Pick<ItemInput, 'openTiers' | 'notBefore' | 'handoff'>, reuse: WorkflowIdReusePolicy | undefined) {
  const { batchId, pipeline } = state.view;
  return {
    workflowId: `${batchId}/${item.id}`,
    args: [{ batchId, item, pipeline, parentWorkflowId: workflowInfo().workflowId, ...extra }] as [ItemInput],
    parentClosePolicy: ParentClosePolicy.ABANDON,
    typedSearchAttributes: [{ key: BATCH_ID, value: batchId }],
    staticSummary: `item ${item.id} of batch ${batchId}`,
    ...(reuse !== undefined ? { workflowIdReusePolicy: reuse } : {}),
  };
}

/** An item whose workflow completed but whose row was removed (a cancel's rollback): it runs again under its id. */
async function startAgain(state: BatchState, item: Item, extra: Pick<ItemInput, 'openTiers' | 'notBefore' | 'handoff'>): Promise<void> {
  log.info('item finished before but its row was rolled back: running it again', { itemId: item.id });
  try {
    await startChild(itemPipeline, childOptions(state, item, extra, WorkflowIdReusePolicy.ALLOW_DUPLICATE));
  } catch (err) {
    // Started meanwhile by another run of this batch id (a reset): it reports to this workflow id.
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    log.info('item already running', { itemId: item.id });
  }
}

/** Counts an item that already has its final row (a re-run or reset of this batch) instead of running it. */
function countStored(state: BatchState, budget: Budget, itemId: string, row: StoredSummary): void {
  state.applyOutcome({
    itemId,
    status: row.status,
    tier: row.tier,
    provider: row.provider,
    attempts: 0,
    inputTokens: 0,
    outputTokens: 0,
    costUsd: 0,
    truncated: false,
    errorType: null,
    retried: 0,
  });
  budget.onOutcome({ itemId, costUsd: 0 }, false);
  log.info('item already finished: its stored row is counted, not run again', { itemId, status: row.status });
}
