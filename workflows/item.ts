/**
 * `itemPipeline`: one item, run as a child of the batch with workflow id
 * `<batchId>/<itemId>`. It runs the provider chain; when the item fails for good
 * it records why, tells the batch and waits for a human (`review`), with the
 * spec's timeout and default decision. It persists its own row, then reports.
 */
import { CancellationScope, condition, getExternalWorkflowHandle, isCancellation, log, patched, setCurrentDetails, setHandler, upsertSearchAttributes } from '@temporalio/workflow';
import { itemSteps, STEPS_PATCH } from './item-steps.ts';
import type { ItemInput, ItemOutcome } from '../src/shared/types.ts';
import { FailureType } from '../src/shared/failures.ts';
import { ItemRun } from './item-run.ts';
import {
  circuitSignal,
  described,
  itemAwaitingSignal,
  itemDoneSignal,
  itemStateQuery,
  reviewDetailsQuery,
  reviewSignal,
  reviewUpdate,
  shortReason,
} from '../src/shared/messages.ts';
import type { ReviewDecision } from '../src/shared/messages.ts';
import { loadOutputCheck, ReviewGate, resolveTier } from './review.ts';
import { ERROR_TYPE, ITEM_STATUS, PROVIDER, REVIEW_SINCE } from '../src/shared/search-attributes.ts';

export async function itemPipeline(input: ItemInput): Promise<ItemOutcome> {
  // A multi-step spec walks its steps (item-steps.ts); a one-prompt spec keeps the command sequence it always had.
  if (input.pipeline.steps && patched(STEPS_PATCH)) return await itemSteps(input);
  const run = new ItemRun(input);
  const gate = new ReviewGate(input.pipeline);
  setHandler(circuitSignal, ({ openTiers }) => run.setOpenTiers(openTiers), described(circuitSignal));
  setHandler(reviewSignal, (d) => gate.receive(d), described(reviewSignal));
  setHandler(reviewUpdate, (d) => (gate.receive(d), { accepted: true as const, itemId: input.item.id }), { ...described(reviewUpdate), validator: (d) => gate.validate(d) });
  setHandler(reviewDetailsQuery, () => run.details(), described(reviewDetailsQuery));
  setHandler(
    itemStateQuery,
    () => ({ status: run.status, errorType: run.lastError?.type ?? null, reason: run.lastError ? run.reviewReason : null, tier: run.tier }),
    described(itemStateQuery),
  );

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

/**
 * Records the failure, tells the batch, and waits for a decision or the review timeout.
 * `step`: the step of a multi-step item that waits (named to the batch and in the Web UI).
 */
export async function awaitReview(run: ItemRun, gate: ReviewGate, step?: string): Promise<ReviewDecision> {
  const { review } = run.spec;
  await loadOutputCheck();
  run.status = 'awaiting_review';
  gate.open();
  await run.persist();
  const errorType = run.lastError?.type ?? FailureType.Unknown;
  const since = new Date();
  upsertSearchAttributes([
    { key: ITEM_STATUS, value: 'awaiting_review' },
    { key: ERROR_TYPE, value: errorType },
    { key: REVIEW_SINCE, value: since },
  ]);
  const pending = { itemId: run.itemId, errorType, reason: shortReason(run.reviewReason), since: since.toISOString(), ...(step !== undefined ? { step } : {}) };
  await report(run.input, () => getExternalWorkflowHandle(run.input.parentWorkflowId!).signal(itemAwaitingSignal, pending));
  const deadline = new Date(since.getTime() + review.timeout).toISOString().replace(/\.\d+Z$/, 'Z');
  setCurrentDetails(reviewDetailsMarkdown(run, errorType, deadline, step));
  const at = step !== undefined ? ` at step ${step}` : '';
  const decided = await condition(() => gate.decision !== null, review.timeout, {
    summary: `waiting for review${at} (${errorType}); default ${review.defaultDecision} at ${deadline}`,
  });
  const decision = gate.take();
  run.status = 'failed';
  if (decided && decision) return decision;
  log.info('review timed out; applying the default decision', { itemId: run.itemId, decision: review.defaultDecision });
  return { decision: review.defaultDecision, note: 'review timeout' };
}

export async function report(input: ItemInput, send: () => Promise<void>): Promise<void> {
  if (!input.parentWorkflowId) return;
  try {
    await send();
  } catch (err) {
    // The batch was terminated or reset: the row is persisted, so nothing is lost.
    log.warn('could not report to the batch', { parent: input.parentWorkflowId, error: String(err) });
  }
}

/** The Web UI's current details of an item waiting for review: why, the tiers tried, and how to decide it. */
export function reviewDetailsMarkdown(run: ItemRun, errorType: string, deadline: string, step?: string): string {
  const batch = run.input.parentWorkflowId ?? run.input.batchId;
  const id = JSON.stringify(run.itemId);
  const { defaultDecision } = run.spec.review;
  const at = step !== undefined ? ` at step **${step}** (approve supplies this step's output; retry reruns from it)` : '';
  return [
    `**waiting for review**${at} (${errorType}); without a decision: ${defaultDecision} at ${deadline}`,
    `**why**: ${run.reviewReason.slice(0, 1_500)}`,
    `**decide** with the steadfast CLI:`,
    '```',
    `steadfast review approve ${batch} ${run.itemId} [--output output.json]`,
    `steadfast review retry ${batch} ${run.itemId} [--input fields.json] [--provider <tier>]`,
    `steadfast review skip ${batch} ${run.itemId} --note "..."`,
    '```',
    `or the Temporal CLI (the batch forwards the decision):`,
    '```',
    `temporal workflow signal --workflow-id ${batch} --name review --input '{"itemId":${id},"decision":"skip"}'`,
    '```',
  ].join('\n\n');
}
