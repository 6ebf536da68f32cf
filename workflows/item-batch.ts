/**
 * One call of an item on a `mode: batch` tier: the request is staged and joins the
 * tier's provider batch (`providerBatch` collector), the item waits for the collector's
 * signal (a durable wait: hours, across worker restarts), then reads and checks its
 * answer. It resolves with the answer or throws an `ApplicationFailure` of the same types
 * a synchronous call fails with (plus `BatchExpired`, `BatchCancelled`, `BatchFailed`), so
 * the chain walker repairs, refits or moves to the next tier exactly as after `callLlm`.
 */
import {
  ApplicationFailure,
  CancellationScope,
  condition,
  getExternalWorkflowHandle,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.ts';
import { FailureType } from '../src/shared/failures.ts';
import { PERSIST_RETRY } from '../src/shared/policies.ts';
import { batchResultSignal, itemParkedSignal, providerBatchWorkflowId } from '../src/shared/provider-batch.ts';
import { batchOptionsOf } from '../src/shared/tiers.ts';
import type { LlmRequest, LlmResult } from '../src/shared/types.ts';

/** Staging: a store write and a signal; retried like a persist so a database restart loses nothing. */
const staging = proxyActivities<Activities>({ startToCloseTimeout: '1 minute', retry: PERSIST_RETRY });

/** How long an item waits past the completion window before it gives the provider batch up (ms): polls and downloads take time too. */
const WAIT_MARGIN_MS = 6 * 3_600_000;

/**
 * This item's batch calls: a counter (a distinct custom_id per call, across steps and tiers)
 * and the results announced to it. Module state is per workflow (each workflow evaluates its
 * imports afresh), so it is this item's alone, and it is rebuilt the same way on replay.
 */
const inbox = { calls: 0, arrived: [] as string[], listening: false };

/** Makes one call through the tier's provider batch (of the item's step, in a multi-step pipeline). */
export async function callViaBatch(req: LlmRequest, parentWorkflowId: string | undefined): Promise<LlmResult> {
  const info = workflowInfo();
  if (!inbox.listening) {
    // Registered before the first request is staged, so no announcement can come earlier.
    setHandler(batchResultSignal, ({ customId }) => void inbox.arrived.push(customId), { description: 'the provider batch that carried a request of this item ended' });
    inbox.listening = true;
  }
  inbox.calls += 1;
  // The response cache serves batch tiers too (the synchronous path's key): a hit is not staged.
  const { cache, ...uncached } = req;
  const sent: LlmRequest = cache !== undefined && patched('cost2-cache') ? req : uncached;
  const staged = await staging.enqueueBatchRequest({ ...sent, seq: inbox.calls, itemWorkflowId: info.workflowId, itemRunId: info.runId });
  if (staged.hit) return staged.hit;
  const { customId } = staged;
  const park = async (parked: boolean): Promise<void> => {
    if (!parentWorkflowId) return;
    try {
      await getExternalWorkflowHandle(parentWorkflowId).signal(itemParkedSignal, { itemId: req.itemId, parked });
    } catch {
      // The batch is gone: nothing to free.
    }
  };
  await park(true);
  // The Web UI's current details of the item while it waits (a query answer, not a command).
  setCurrentDetails(
    `**waiting in a provider batch** (${req.provider.name ?? req.provider.model}, request \`${customId}\`); its collector: \`${providerBatchWorkflowId(req.batchId, req.tier, req.step)}\``,
  );
  let arrived: boolean;
  try {
    arrived = await condition(() => inbox.arrived.includes(customId), 24 * 3_600_000 + WAIT_MARGIN_MS);
  } finally {
    setCurrentDetails('');
    await CancellationScope.nonCancellable(() => park(false));
  }
  inbox.arrived = inbox.arrived.filter((id) => id !== customId);
  if (!arrived) {
    throw ApplicationFailure.create({
      type: FailureType.BatchExpired,
      message: `no result from the provider batch within ${batchOptionsOf(req.provider).completionWindow} and a margin`,
      nonRetryable: true,
      details: [{ attempt: 1 }],
    });
  }
  const a = await staging.readBatchResult({ ...sent, customId });
  if (a.ok) return a.result;
  throw ApplicationFailure.create({ type: a.type, message: a.message, nonRetryable: true, details: [{ ...a.details, attempt: 1 }] });
}
