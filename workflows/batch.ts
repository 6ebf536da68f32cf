/**
 * `batchPipeline`: validates the input, keeps up to `concurrency` item
 * workflows running (a sliding window, paced to the first tier's rate limits),
 * holds the circuit breakers and the review queue, continues as new before its
 * history grows large, and returns the summary.
 */
import {
  ApplicationFailure,
  ParentClosePolicy,
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
  workflowInfo,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { createActivities } from '../activities/index.ts';
import { FailureType } from '../src/shared/failures.ts';
import type { BatchInput, BatchInputRaw, Item } from '../src/shared/spec.ts';
import type { BatchSummary } from '../src/shared/types.ts';
import { BatchControl } from './batch-control.ts';
import { BatchState, initialCarry } from './batch-state.ts';
import type { BatchCarry } from './batch-state.ts';
import { itemPipeline } from './item.ts';
import { loadSpec } from './lazy.ts';
import { callDoneSignal, itemAwaitingSignal, itemDoneSignal, progressQuery, resumeSignal, reviewSignal, reviewUpdate, tierResultSignal } from '../src/shared/messages.ts';
import { available, effectiveLimit, itemsPerMinute, refill as refillPacer, setRate, take, waitMs } from './pacer.ts';
import { loadOutputCheck } from './review.ts';
import { BATCH_ID } from '../src/shared/search-attributes.ts';

type Activities = ReturnType<typeof createActivities>;
const source = proxyActivities<Activities>({ startToCloseTimeout: '2 min', retry: { maximumAttempts: 10, nonRetryableErrorTypes: [FailureType.InvalidInput] } });

/** Continue as new past this many events, well under the 10,000 the design allows. */
const HISTORY_EVENT_BUDGET = 8_000;
/**
 * Patch (released with 0.2): dispatch no longer waits for each child's start to be confirmed,
 * and items whose LLM call succeeded (`itemCallDone` from the activity) free their slot while
 * they persist and report. Batches started before it replay the old dispatch.
 */
export const DISPATCH_AHEAD_PATCH = 'dispatch-ahead-v2';
/** With the patch, items in flight (slot held or tail running) stay under this multiple of `concurrency`. */
const IN_FLIGHT_FACTOR = 2;

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

export async function batchPipeline(input: BatchInputRaw | { carry: BatchCarry }): Promise<BatchSummary> {
  let carry: BatchCarry;
  if ('carry' in input) {
    carry = { ...input.carry, runs: input.carry.runs + 1 };
  } else {
    const parsed = await parseBatchInput(input);
    const batchId = parsed.batchId ?? workflowInfo().workflowId;
    carry = initialCarry(batchId, parsed.pipeline, parsed.items, parsed.source, new Date().toISOString());
  }
  // Forwarded reviews are checked against the output schema (zod, loaded lazily).
  await loadOutputCheck();
  const state = new BatchState(carry);
  const control = new BatchControl(state);
  const s = state.s;
  upsertSearchAttributes([{ key: BATCH_ID, value: s.batchId }]);
  const ahead = patched(DISPATCH_AHEAD_PATCH);
  setHandler(itemDoneSignal, (o) => control.onItemDone(o));
  setHandler(callDoneSignal, ({ itemId }) => control.onCallDone(itemId));
  setHandler(itemAwaitingSignal, (p) => control.onAwaiting(p));
  setHandler(tierResultSignal, (r) => control.onTierResult(r, Date.now()));
  setHandler(reviewSignal, (d) => control.reviewBySignal(d));
  setHandler(reviewUpdate, (d) => control.forwardReview(d), { validator: (d) => control.validateReview(d) });
  setHandler(resumeSignal, () => control.resume());
  setHandler(progressQuery, () => state.progress(Date.now()));

  while (!state.done) {
    // Taken before dispatching: reports that arrive while children start (one activation can
    // carry both after a worker crash) must wake the wait below, or their slots stay empty.
    const seen = control.version;
    if (control.startError) throw control.startError;
    const now = Date.now();
    control.tickCircuits(now);
    // Patched: the page is read after dispatch, so queued items do not wait for it.
    if (!ahead) await refill(state);
    let waitFor: number | undefined;
    if (s.paused === null && !s.stopped && control.canDispatch()) {
      const tokensPerItem = state.finished > 0 ? (s.inputTokens + s.outputTokens) / state.finished : 0;
      const limit = effectiveLimit(s.pipeline.providers[0]!.rateLimit, s.learnedLimit);
      s.pacer = refillPacer(setRate(s.pacer, itemsPerMinute(limit, tokensPerItem)), now);
      const { concurrency } = s.pipeline.batch;
      const room = ahead ? IN_FLIGHT_FACTOR * concurrency - state.inFlight : concurrency;
      const wanted = Math.min(Math.max(concurrency - state.active, 0), Math.max(room, 0), s.queue.length);
      const n = available(s.pacer, wanted);
      s.pacer = take(s.pacer, n);
      const starting = s.queue.splice(0, n).map((item) => startItem(state, control, item));
      if (ahead) starting.forEach((p) => control.trackStart(p));
      else await Promise.all(starting);
      if (n < wanted) waitFor = Math.max(waitMs(s.pacer), 50);
    }
    const paged = ahead && (await refill(state));
    // Served by a query to the Web UI's details panel; not history, so no replay impact.
    setCurrentDetails(state.detailsMarkdown(Date.now()));
    if (state.done) break;
    if (shouldContinueAsNew()) {
      await control.settleStarts();
      await control.drainAlerts();
      await condition(allHandlersFinished);
      await continueAsNew<typeof batchPipeline>({ carry: s });
    }
    const wake = [waitFor, control.nextCircuitChange(now)].filter((x): x is number => x !== undefined);
    const needPage = s.queue.length === 0 && s.source !== null && !s.source.done && state.active < s.pipeline.batch.concurrency;
    if (!needPage && !paged) await condition(() => control.version !== seen, wake.length ? Math.min(...wake) : undefined);
  }
  await control.settleStarts();
  await control.drainAlerts();
  await condition(allHandlersFinished);
  return state.summary(new Date().toISOString(), 'completed');
}

function shouldContinueAsNew(): boolean {
  const info = workflowInfo();
  return info.continueAsNewSuggested || info.historyLength > HISTORY_EVENT_BUDGET;
}

/** Reads the next page of a JSONL source by reference, so items never sit in one payload. */
async function refill(state: BatchState): Promise<boolean> {
  const s = state.s;
  if (!s.source || s.source.done || s.queue.length >= s.pipeline.batch.concurrency) return false;
  const page = await source.readItemsPage({ path: s.source.jsonl, offset: s.source.offset, line: s.source.line, limit: Math.max(PAGE_SIZE, s.pipeline.batch.concurrency) });
  s.queue.push(...page.items);
  s.source.offset = page.nextOffset;
  s.source.line = page.nextLine;
  s.source.done = page.done;
  if (page.done) s.total = s.started + s.queue.length;
  return true;
}

async function startItem(state: BatchState, control: BatchControl, item: Item): Promise<void> {
  const s = state.s;
  state.markStarted(item.id);
  const openTiers = control.openTiersForNewItem(item.id);
  try {
    await startChild(itemPipeline, {
      workflowId: `${s.batchId}/${item.id}`,
      args: [{ batchId: s.batchId, item, pipeline: s.pipeline, parentWorkflowId: workflowInfo().workflowId, openTiers }],
      parentClosePolicy: ParentClosePolicy.ABANDON,
      typedSearchAttributes: [{ key: BATCH_ID, value: s.batchId }],
      staticSummary: `item ${item.id} of batch ${s.batchId}`,
    });
  } catch (err) {
    // Already running under this id (the batch was reset or re-run): it reports to us all the same.
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    log.info('item already running', { itemId: item.id });
  }
}
