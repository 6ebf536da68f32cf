/**
 * `itemPipeline`: one item, run as a child of the batch with workflow id
 * `<batchId>/<itemId>`. It runs the provider chain; when the item fails for good
 * it records why, tells the batch and waits for a human (`review`), with the
 * spec's timeout and default decision. It persists its own row, then reports.
 */
import { CancellationScope, condition, getExternalWorkflowHandle, isCancellation, log, setHandler, upsertSearchAttributes } from '@temporalio/workflow';
import type { ItemInput, ItemOutcome } from '../src/shared/types.ts';
import { FailureType } from '../src/shared/failures.ts';
import { ItemRun } from './item-run.ts';
import { circuitSignal, itemAwaitingSignal, itemDoneSignal, itemStateQuery, reviewDetailsQuery, reviewSignal, reviewUpdate } from '../src/shared/messages.ts';
import type { ReviewDecision } from '../src/shared/messages.ts';
import { loadOutputCheck, ReviewGate, resolveTier } from './review.ts';
import { ITEM_STATUS, PROVIDER } from '../src/shared/search-attributes.ts';

export async function itemPipeline(input: ItemInput): Promise<ItemOutcome> {
  const run = new ItemRun(input);
  const gate = new ReviewGate(input.pipeline);
  setHandler(circuitSignal, ({ openTiers }) => run.setOpenTiers(openTiers));
  setHandler(reviewSignal, (d) => gate.receive(d));
  setHandler(reviewUpdate, (d) => (gate.receive(d), { accepted: true as const, itemId: input.item.id }), { validator: (d) => gate.validate(d) });
  setHandler(reviewDetailsQuery, () => run.details());
  setHandler(itemStateQuery, () => ({ status: run.status, errorType: run.lastError?.type ?? null, reason: run.lastError ? run.reviewReason : null, tier: run.tier }));

  try {
    await run.execute(0);
    while (run.status === 'failed') {
      const decision = await awaitReview(run, gate);
      run.recordReview(decision);
      if (decision.decision === 'skip') run.status = 'skipped';
      else if (decision.decision === 'approve') run.approve(decision.output);
      else {
        run.retried += 1;
        if (decision.input) run.editInput(decision.input);
        await run.execute(decision.provider === undefined ? 0 : (resolveTier(input.pipeline, decision.provider) ?? 0));
      }
    }
  } catch (err) {
    // The batch (or an operator) cancelled this item: its in-flight call was cancelled with it.
    // The row says so and the batch hears of it; nothing after this point may be cancelled.
    if (!isCancellation(err)) throw err;
    run.status = 'cancelled';
  }
  return await CancellationScope.nonCancellable(async () => {
    await run.persist();
    upsertSearchAttributes([{ key: ITEM_STATUS, value: run.status }, ...(run.providerName ? [{ key: PROVIDER, value: run.providerName }] : [])]);
    await report(input, () => getExternalWorkflowHandle(input.parentWorkflowId!).signal(itemDoneSignal, run.outcome()));
    return run.outcome();
  });
}

/** Records the failure, tells the batch, and waits for a decision or the review timeout. */
async function awaitReview(run: ItemRun, gate: ReviewGate): Promise<ReviewDecision> {
  const { review } = run.spec;
  await loadOutputCheck();
  run.status = 'awaiting_review';
  gate.open();
  await run.persist();
  upsertSearchAttributes([{ key: ITEM_STATUS, value: 'awaiting_review' }]);
  const pending = { itemId: run.itemId, errorType: run.lastError?.type ?? FailureType.Unknown, reason: run.reviewReason, since: new Date().toISOString() };
  await report(run.input, () => getExternalWorkflowHandle(run.input.parentWorkflowId!).signal(itemAwaitingSignal, pending));
  const decided = await condition(() => gate.decision !== null, review.timeout);
  const decision = gate.take();
  run.status = 'failed';
  if (decided && decision) return decision;
  log.info('review timed out; applying the default decision', { itemId: run.itemId, decision: review.defaultDecision });
  return { decision: review.defaultDecision, note: 'review timeout' };
}

async function report(input: ItemInput, send: () => Promise<void>): Promise<void> {
  if (!input.parentWorkflowId) return;
  try {
    await send();
  } catch (err) {
    // The batch was terminated or reset: the row is persisted, so nothing is lost.
    log.warn('could not report to the batch', { parent: input.parentWorkflowId, error: String(err) });
  }
}
