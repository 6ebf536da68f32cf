/**
 * `itemPipeline` for a multi-step spec: the steps in order, each run by the one-call
 * chain walker (`ItemRun`, item-run.ts) with its own spec. A step's validated output feeds
 * the later steps' templates (`{{steps.<name>.field}}`) and conditions (`when`).
 *
 * Durability: a finished step's activity results are in the item's history, so a
 * replay after any crash rebuilds its output without calling the model again; only
 * the calls in flight are redone. A step that fails for good waits for review at that
 * step: `approve` supplies its output and the item goes on with the next step, `retry`
 * reruns that step (the earlier outputs are kept), `skip` ends the item there.
 */
import { CancellationScope, getExternalWorkflowHandle, isCancellation, setCurrentDetails, setHandler, upsertSearchAttributes } from '@temporalio/workflow';
import type { ItemInput, ItemOutcome } from '../src/shared/types.ts';
import { circuitSignal, described, itemDoneSignal, itemStateQuery, itemStepSignal, reviewDetailsQuery, reviewSignal, reviewUpdate } from '../src/shared/messages.ts';
import { resolveTier } from './review.ts';
import { awaitReview, report } from './item.ts';
import { ITEM_STATUS, PROVIDER } from '../src/shared/search-attributes.ts';
import { evaluateWhen } from '../src/shared/when.ts';
import { StepWalk } from './step-walk.ts';

/** The patch that introduced multi-step items (histories of one-prompt items have no marker). */
export const STEPS_PATCH = 'steps-v1';

/** Runs a multi-step item to its end, then persists its row and reports to the batch. */
export async function itemSteps(input: ItemInput): Promise<ItemOutcome> {
  const walk = new StepWalk(input);
  setHandler(circuitSignal, ({ openTiers }) => walk.setOpenTiers(openTiers), described(circuitSignal));
  setHandler(reviewSignal, (d) => walk.gate.receive(d), described(reviewSignal));
  setHandler(reviewUpdate, (d) => (walk.gate.receive(d), { accepted: true as const, itemId: input.item.id }), {
    ...described(reviewUpdate),
    validator: (d) => walk.gate.validate(d),
  });
  setHandler(reviewDetailsQuery, () => walk.details(), described(reviewDetailsQuery));
  setHandler(
    itemStateQuery,
    () => ({
      status: walk.run.status,
      errorType: walk.run.lastError?.type ?? null,
      reason: walk.run.lastError ? walk.run.reviewReason : null,
      tier: walk.run.tier,
      step: walk.step.name,
    }),
    described(itemStateQuery),
  );

  try {
    walk.status = 'succeeded';
    for (let i = 0; i < walk.plan.length; i++) {
      walk.enter(i);
      const step = walk.step;
      if (step.when && !evaluateWhen(step.when, { item: walk.item, steps: walk.outputs() })) {
        walk.skipStep();
        continue;
      }
      if (i > 0) await report(input, () => getExternalWorkflowHandle(input.parentWorkflowId!).signal(itemStepSignal, { itemId: input.item.id, step: step.name }));
      setCurrentDetails(`**step ${i + 1} of ${walk.plan.length}**: ${step.name}`);
      const ended = await runStep(walk);
      if (ended !== null) {
        walk.status = ended;
        break;
      }
    }
  } catch (err) {
    if (!isCancellation(err)) throw err;
    walk.status = 'cancelled';
    if (walk.results.length <= walk.current) walk.finishStep('failed');
  }
  return await CancellationScope.nonCancellable(async () => {
    // A step a reviewer approved makes the whole item approved.
    if (walk.status === 'succeeded' && walk.results.some((r) => r.status === 'approved')) walk.status = 'approved';
    // A finished walk leaves the run of the last step; its status is the item's own from here on.
    walk.run.status = walk.status;
    await walk.run.persist();
    const outcome = walk.outcome();
    upsertSearchAttributes([{ key: ITEM_STATUS, value: walk.status }, ...(outcome.provider ? [{ key: PROVIDER, value: outcome.provider }] : [])]);
    await report(input, () => getExternalWorkflowHandle(input.parentWorkflowId!).signal(itemDoneSignal, outcome));
    return outcome;
  });
}

/** One step to its end: null when the item goes on, `skipped` when a reviewer ended the item at this step. */
async function runStep(walk: StepWalk): Promise<'skipped' | null> {
  await walk.run.execute(0);
  walk.checkBudget();
  let approved = false;
  while (walk.run.status === 'failed') {
    const run = walk.run;
    const decision = await awaitReview(run, walk.gate, walk.step.name);
    run.recordReview(decision);
    if (decision.decision === 'skip') {
      run.status = 'skipped';
      walk.finishStep('failed');
      return 'skipped';
    }
    if (decision.decision === 'approve') {
      run.approve(decision.output);
      approved = true;
    } else {
      run.retried += 1;
      walk.retried += 1;
      if (decision.input) walk.editInput(decision.input);
      await run.execute(decision.provider === undefined ? 0 : (resolveTier(walk.step.spec, decision.provider) ?? 0));
      walk.checkBudget();
    }
  }
  walk.finishStep(approved ? 'approved' : 'succeeded');
  return null;
}
