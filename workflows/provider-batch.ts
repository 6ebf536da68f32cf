/**
 * `providerBatch`: the collector of one `mode: batch` tier of one batch (workflow id
 * `provider-batch/<batchId>/tier<N>`), started by the first item's `enqueueBatchRequest`
 * (signalWithStart) and fed by the rest.
 *
 * It groups requests within the provider's limits (requests and bytes per batch) and a
 * short window, submits each group once through `submitProviderBatch` (which records the
 * provider batch id before returning; a group whose adopted batch turned out to be another
 * client's is submitted again), polls it with durable timers until it ends (hours,
 * across worker restarts and continue-as-new), then tells each member that its result is
 * in the store. Payloads carry ids and counts only. It completes as soon as nothing is open
 * or submitted; a later request starts a new run (group keys name the chain, so they never repeat).
 */
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  allHandlersFinished,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  log,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.ts';
import { FailureType } from '../src/shared/failures.ts';
import { batchResultSignal, batchRequestSignal, cancelProviderBatchesSignal } from '../src/shared/provider-batch.ts';
import type { BatchGroup, BatchRequestRef, ProviderBatchCarry, ProviderBatchInput } from '../src/shared/provider-batch.ts';
import { NON_RETRYABLE_TYPES } from '../src/shared/failures.ts';
import { batchOptionsOf, tierName } from '../src/shared/tiers.ts';

/** Requests assigned to a group per store write. */
export const ASSIGN_CHUNK = 500;
/** After a cancel request, the next poll comes this soon (ms), not a whole poll interval later. */
const CANCEL_POLL_MS = 60_000;

/** Submission: a 5xx or a dropped connection on upload or create is retried with backoff for about an hour; a 4xx fails the group. */
const submitCall = {
  startToCloseTimeout: '15 minutes',
  heartbeatTimeout: '2 minutes',
  retry: {
    initialInterval: '5 seconds',
    backoffCoefficient: 2,
    maximumInterval: '5 minutes',
    maximumAttempts: 15,
    nonRetryableErrorTypes: [...NON_RETRYABLE_TYPES, FailureType.BatchFailed] as string[],
  },
};
/** A poll (and, once ended, the download): retried for as long as the provider batch can live. */
const pollCall = {
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '2 minutes',
  retry: {
    initialInterval: '10 seconds',
    backoffCoefficient: 2,
    maximumInterval: '10 minutes',
    maximumAttempts: 200,
    nonRetryableErrorTypes: [...NON_RETRYABLE_TYPES] as string[],
  },
};
const storeCall = { startToCloseTimeout: '1 minute', retry: { initialInterval: '1 second', maximumInterval: '1 minute', maximumAttempts: 100 } } as const;

const submitActs = proxyActivities<Activities>(submitCall);
const pollActs = proxyActivities<Activities>(pollCall);
const store = proxyActivities<Activities>(storeCall);

export async function providerBatch(input: ProviderBatchInput): Promise<{ providerBatches: number }> {
  const opts = batchOptionsOf(input.provider);
  const label = tierName(input.provider, input.tier);
  const chain = workflowInfo().firstExecutionRunId.slice(0, 8);
  const st: ProviderBatchCarry = input.carry ?? { seq: 0, open: null, submitted: [], inbox: [], ended: 0 };
  setHandler(batchRequestSignal, (r) => void st.inbox.push(r), { description: 'a staged request joins the open provider batch group' });
  setHandler(cancelProviderBatchesSignal, ({ reason }) => void (st.cancelled ??= reason), {
    description: 'the batch was cancelled: submit nothing more, cancel the provider batches submitted',
  });

  const newGroup = (): BatchGroup => ({
    key: `${input.batchId}/${input.step !== undefined ? `${input.step}/` : ''}tier${input.tier}/${chain}-g${st.seq++}`,
    count: 0,
    bytes: 0,
    openedAt: Date.now(),
    unassigned: [],
  });

  async function assign(g: BatchGroup): Promise<void> {
    if (g.unassigned.length === 0) return;
    const customIds = [...new Set(g.unassigned.map((r) => r.customId))];
    const totals = await store.assignBatchGroup({ batchId: input.batchId, tier: input.tier, groupKey: g.key, customIds });
    g.unassigned = [];
    // The store's figures: a duplicate signal (a retried enqueue) is not counted twice.
    g.count = totals.count;
    g.bytes = totals.bytes;
  }

  async function submit(g: BatchGroup): Promise<void> {
    await assign(g);
    st.open = null;
    if (g.count === 0) return;
    if (st.cancelled !== undefined && patched('cost2-cancel')) {
      // Its items were cancelled: nothing is sent, nobody waits.
      await store.failBatchGroup({ groupKey: g.key, type: FailureType.BatchCancelled, message: `${label}: the batch was cancelled before this provider batch was submitted` });
      g.ended = true;
    } else await send(g);
    st.submitted.push(g);
  }

  /** Asks the provider to cancel a submitted batch that has not ended; the store records the answer. */
  async function cancelAtProvider(g: BatchGroup): Promise<void> {
    g.cancelRequested = true;
    try {
      const r = await CancellationScope.nonCancellable(() =>
        submitActs.cancelProviderBatch({ batchId: input.batchId, tier: input.tier, groupKey: g.key, provider: input.provider, providerBatchId: g.providerBatchId! }),
      );
      log.info('provider batch cancel requested', { groupKey: g.key, providerBatchId: g.providerBatchId, status: r.status });
    } catch (err) {
      if (!(err instanceof ActivityFailure)) throw err;
      // Polling goes on: the batch ends on its own (answered, or expired) and its results are written.
      log.warn('the provider did not cancel the batch; it runs to its end', { groupKey: g.key, providerBatchId: g.providerBatchId, error: err.cause?.message ?? err.message });
    }
    // Cancelling takes the provider a moment: look again soon rather than a whole poll interval later.
    g.nextPollAt = Math.min(g.nextPollAt ?? Infinity, Date.now() + CANCEL_POLL_MS);
  }

  /** Submits a group (again, after an adopted batch turned out not to be it); a group that cannot be submitted ends. */
  async function send(g: BatchGroup): Promise<void> {
    try {
      const r = await submitActs.submitProviderBatch({ batchId: input.batchId, tier: input.tier, groupKey: g.key, provider: input.provider });
      g.providerBatchId = r.providerBatchId;
      g.nextPollAt = Date.now() + opts.pollIntervalMs;
      g.polls = 0;
    } catch (err) {
      if (!(err instanceof ActivityFailure)) throw err;
      const cause = err.cause instanceof ApplicationFailure ? err.cause : undefined;
      const type = cause?.type ?? FailureType.BatchFailed;
      log.warn('provider batch could not be submitted; its requests move on', { groupKey: g.key, type });
      await store.failBatchGroup({ groupKey: g.key, type, message: `${label}: the provider batch could not be submitted: ${cause?.message ?? err.message}` });
      g.ended = true;
    }
  }

  async function poll(g: BatchGroup): Promise<void> {
    const r = await pollActs.pollProviderBatch({ batchId: input.batchId, tier: input.tier, groupKey: g.key, provider: input.provider, providerBatchId: g.providerBatchId! });
    g.polls = (g.polls ?? 0) + 1;
    if (r.resubmit !== undefined && patched('cost2-adopt')) {
      log.warn('the adopted provider batch was not this group; submitting the group', { groupKey: g.key, providerBatchId: g.providerBatchId, reason: r.resubmit });
      delete g.providerBatchId;
      if (st.cancelled === undefined) await send(g);
      else {
        await store.failBatchGroup({ groupKey: g.key, type: FailureType.BatchCancelled, message: `${label}: the batch was cancelled before this provider batch was submitted` });
        g.ended = true;
      }
      return;
    }
    if (r.ended) {
      g.ended = true;
      log.info('provider batch ended', { groupKey: g.key, providerBatchId: g.providerBatchId, status: r.status, counts: r.counts });
    } else g.nextPollAt = Date.now() + opts.pollIntervalMs;
  }

  /** Tells one page of an ended group's members; true when none are left. */
  async function notifyPage(g: BatchGroup): Promise<boolean> {
    const page = await store.batchGroupPage({ groupKey: g.key, ...(g.notifiedAfter !== undefined ? { afterCustomId: g.notifiedAfter } : {}) });
    await Promise.all(
      page.map(async (m) => {
        try {
          await getExternalWorkflowHandle(m.itemWorkflowId).signal(batchResultSignal, { customId: m.customId });
        } catch {
          // The item is gone (cancelled, terminated): nobody waits for this result.
        }
      }),
    );
    if (page.length === 0) return true;
    g.notifiedAfter = page[page.length - 1]!.customId;
    return false;
  }

  /** A cancel arrived and something is left to do for it. */
  const cancelDue = (): boolean => st.cancelled !== undefined && (st.open !== null || st.submitted.some((g) => !g.ended && g.providerBatchId !== undefined && !g.cancelRequested));

  const details = (): void =>
    setCurrentDetails(
      [
        `**${label}**: provider batches of ${input.batchId}`,
        `open group: ${st.open ? `${st.open.count + st.open.unassigned.length} requests` : 'none'}`,
        ...(st.cancelled !== undefined ? [`batch cancelled: ${st.cancelled}`] : []),
        ...st.submitted.map(
          (g) =>
            `- ${g.key}: ${g.providerBatchId ?? 'not submitted'} (${g.count} requests, ${g.ended ? 'ended' : `${g.polls ?? 0} polls${g.cancelRequested ? ', cancelling' : ''}`})`,
        ),
      ].join('\n\n'),
    );

  for (;;) {
    if (st.cancelled !== undefined && patched('cost2-cancel')) {
      if (st.inbox.length > 0 || st.open) {
        // Requests of cancelled items: their group ends without being submitted.
        st.open ??= newGroup();
        st.open.unassigned.push(...st.inbox.splice(0));
        await submit(st.open);
      }
      for (const g of st.submitted) if (!g.ended && g.providerBatchId !== undefined && !g.cancelRequested) await cancelAtProvider(g);
    }
    // Take in what arrived: a request that would push the open group past a limit closes it first.
    while (st.inbox.length > 0) {
      const r: BatchRequestRef = st.inbox.shift()!;
      const g = st.open;
      if (g && (g.count + g.unassigned.length + 1 > opts.maxRequests || g.bytes + g.unassigned.reduce((n, u) => n + u.bytes, 0) + r.bytes > opts.maxBytes)) await submit(g);
      st.open ??= newGroup();
      st.open.unassigned.push(r);
      if (st.open.unassigned.length >= ASSIGN_CHUNK) await assign(st.open);
      // A full group goes at once, without waiting for its window.
      if (st.open && st.open.count + st.open.unassigned.length >= opts.maxRequests) await submit(st.open);
    }
    const now = Date.now();
    if (st.open && now >= st.open.openedAt + opts.windowMs) await submit(st.open);
    for (const g of st.submitted) {
      if (!g.ended && g.nextPollAt !== undefined && Date.now() >= g.nextPollAt) await poll(g);
      while (g.ended && !workflowInfo().continueAsNewSuggested) {
        if (await notifyPage(g)) {
          st.submitted = st.submitted.filter((x) => x !== g);
          st.ended += 1;
          break;
        }
      }
    }
    details();
    if (workflowInfo().continueAsNewSuggested) {
      await condition(allHandlersFinished);
      return await continueAsNew<typeof providerBatch>({ ...input, carry: st });
    }
    // Nothing open or in flight: done. A later request starts a new run (signalWithStart), and a
    // request that arrives while this run completes makes the server refuse the completion and
    // hand it to this run first.
    if (!st.open && st.submitted.length === 0 && st.inbox.length === 0) break;
    if (st.submitted.some((g) => g.ended)) continue;
    const wakes = [...(st.open ? [st.open.openedAt + opts.windowMs] : []), ...st.submitted.flatMap((g) => (g.nextPollAt !== undefined && !g.ended ? [g.nextPollAt] : []))];
    const wait = Math.max(1, Math.min(...wakes) - Date.now());
    await condition(() => st.inbox.length > 0 || cancelDue(), wait);
  }
  await condition(allHandlersFinished);
  return { providerBatches: st.ended };
}
