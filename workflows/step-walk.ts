/**
 * The state of a multi-step item ({@link StepWalk}): the finished steps' results, the
 * current step's chain walker and review gate, and the row and outcome built from them.
 * Pure workflow state: every I/O goes through the step's {@link ItemRun}.
 */
import type { ItemInput, ItemOutcome } from '../src/shared/types.ts';
import type { Item } from '../src/shared/spec.ts';
import { ItemRun } from './item-run.ts';
import type { PersistRequest } from '../activities/index.ts';
import type { ReviewDetails } from '../src/shared/messages.ts';
import { ReviewGate } from './review.ts';
import { planSteps } from '../src/shared/pipeline-steps.ts';
import type { PlannedStep, StepBrief, StepResult } from '../src/shared/pipeline-steps.ts';
import { FailureType } from '../src/shared/failures.ts';
import { maskText, secretValues } from '../src/shared/review-details.ts';

/** Longest step output, in characters of its JSON, that a reviewer sees for an earlier step. */
const EARLIER_OUTPUT_CHARS = 1_000;

/** The item's steps: the finished ones with their results, the current one's chain walker. */
export class StepWalk {
  readonly input: ItemInput;
  readonly plan: PlannedStep[];
  /** The item's own fields (edited by `retry` with input); `steps` is added for the templates. */
  item: Item;
  readonly results: StepResult[] = [];
  run: ItemRun;
  gate: ReviewGate;
  current = 0;
  openTiers: number[];
  status: ItemOutcome['status'] = 'failed';
  readonly startedAt = new Date().toISOString();

  constructor(input: ItemInput) {
    this.input = input;
    this.plan = planSteps(input.pipeline);
    this.item = input.item;
    this.openTiers = input.openTiers ?? [];
    this.run = this.newRun(this.plan[0]!);
    this.gate = new ReviewGate(this.plan[0]!.spec);
  }

  get step(): PlannedStep {
    return this.plan[this.current]!;
  }

  /** Outputs of the steps that finished, by name (a skipped step's is null): what templates and conditions read. */
  outputs(): Record<string, unknown> {
    return Object.fromEntries(this.results.map((r) => [r.name, r.output]));
  }

  private newRun(step: PlannedStep): ItemRun {
    const item = { ...this.item, steps: this.outputs() } as Item;
    const run = new ItemRun(
      { ...this.input, item, pipeline: step.spec, openTiers: this.openTiers },
      { name: step.name, sharedTiers: step.sharedTiers, pipeline: this.input.pipeline, firstStep: this.current === 0 },
      this.startedAt,
    );
    run.persistAs = (row) => this.row(row);
    return run;
  }

  /** Moves to step `i`: a fresh chain walker and review gate for its spec. */
  enter(i: number): void {
    this.current = i;
    this.run = this.newRun(this.step);
    this.gate = new ReviewGate(this.step.spec);
  }

  setOpenTiers(openTiers: number[]): void {
    this.openTiers = openTiers;
    this.run.setOpenTiers(openTiers);
  }

  editInput(fields: Record<string, unknown>): void {
    const { steps: _ignored, ...own } = fields;
    this.item = { ...this.item, ...own, id: this.item.id };
    this.run.editInput({ ...own, steps: this.outputs() });
  }

  /** Calls answered by the response cache in the finished steps. */
  private finishedHits = 0;

  /** Calls of the item answered by the response cache, the current step's included while it runs. */
  private cacheHits(): number {
    return this.finishedHits + (this.results.length > this.current ? 0 : this.run.cacheHits);
  }

  /** Every call of the item was a cache hit: at least one, and no provider request in any step. */
  private allFromCache(status: ItemOutcome['status'], attempts: number): boolean {
    return status === 'succeeded' && attempts === 0 && this.cacheHits() > 0;
  }

  /** Records how the current step ended. */
  finishStep(status: StepResult['status']): void {
    const r = this.run;
    this.finishedHits += r.cacheHits;
    const ok = status === 'succeeded' || status === 'approved';
    if (r.review) this.lastReview = r.review;
    if (ok && r.endpoint) this.endpoint = r.endpoint;
    if (r.truncation) this.truncation = r.truncation;
    // The batch paces the pipeline's first tier: only a step on the pipeline's chain tells its limits.
    if (this.step.sharedTiers && r.rateLimit) this.rateLimit = r.rateLimit;
    this.results.push({
      name: this.step.name,
      status,
      output: ok ? r.output : null,
      tier: ok ? r.tier : null,
      provider: ok ? r.providerName : null,
      model: ok ? r.model : null,
      attempts: r.attempts,
      inputTokens: r.inputTokens,
      outputTokens: r.outputTokens,
      costUsd: r.costUsd,
      truncated: r.truncation !== null,
      reviewed: r.review !== null,
      errorType: r.review !== null || status === 'failed' ? (r.lastError?.type ?? null) : null,
    });
  }

  /** A succeeded step whose output would push the item's outputs over {@link STEP_OUTPUTS_CHARS} fails to review instead. */
  checkBudget(): void {
    if (this.run.status !== 'succeeded') return;
    const total = this.results.reduce((n, r) => n + outputChars(r.output), 0) + outputChars(this.run.output);
    if (total <= STEP_OUTPUTS_CHARS) return;
    this.run.status = 'failed';
    this.run.fail(
      FailureType.InvalidOutput,
      `the outputs of the steps up to ${this.step.name} are ${total} characters, over the ${STEP_OUTPUTS_CHARS} an item may carry; ask for shorter answers`,
    );
  }

  /** Records a step its `when` skipped. */
  skipStep(): void {
    const s = { name: this.step.name, status: 'skipped' as const, output: null, tier: null, provider: null, model: null };
    this.results.push({ ...s, attempts: 0, inputTokens: 0, outputTokens: 0, costUsd: 0, truncated: false, reviewed: false, errorType: null });
  }

  /** The steps as the row stores them: the finished ones, then the current one while it is not finished. */
  private allResults(): StepResult[] {
    if (this.results.length > this.current) return this.results;
    const r = this.run;
    const pending: StepResult = {
      name: this.step.name,
      status: 'failed',
      output: null,
      tier: null,
      provider: null,
      model: null,
      attempts: r.attempts,
      inputTokens: r.inputTokens,
      outputTokens: r.outputTokens,
      costUsd: r.costUsd,
      truncated: r.truncation !== null,
      reviewed: true,
      errorType: r.lastError?.type ?? null,
    };
    return [...this.results, pending];
  }

  /** The last step that gave an output: its output is the item's. */
  private last(): StepResult | undefined {
    return [...this.results].reverse().find((r) => r.status === 'succeeded' || r.status === 'approved');
  }

  private totals(steps: readonly StepResult[]): { attempts: number; inputTokens: number; outputTokens: number; costUsd: number } {
    const t = { attempts: 0, inputTokens: 0, outputTokens: 0, costUsd: 0 };
    for (const s of steps) {
      t.attempts += s.attempts;
      t.inputTokens += s.inputTokens;
      t.outputTokens += s.outputTokens;
      t.costUsd += s.costUsd;
    }
    return t;
  }

  /** The item's row: the current run's (status, error, review), the final output, every step's results, the sums. */
  row(base: PersistRequest): PersistRequest {
    const steps = this.allResults();
    const last = this.last();
    const ok = base.status === 'succeeded' || base.status === 'approved';
    const review = base.review ?? this.lastReview;
    const totals = this.totals(steps);
    return {
      ...base,
      output: ok ? (last?.output ?? null) : null,
      provider: last?.provider ?? null,
      model: last?.model ?? null,
      tier: last?.tier ?? null,
      ...totals,
      truncation: base.truncation ?? this.truncation,
      error: base.status === 'succeeded' || base.status === 'approved' ? null : base.error,
      ...(review ? { review } : {}),
      endpoint: ok ? (base.endpoint ?? this.endpoint) : null,
      // The flag is the item's, not its last step's: true only when no step called a provider.
      ...(base.cacheHit !== undefined ? { cacheHit: this.allFromCache(base.status, totals.attempts) } : {}),
      steps,
    };
  }

  /** The last human decision on any step, and the last answer's endpoint and truncation (the row shows them). */
  lastReview: PersistRequest['review'] = null;
  endpoint: PersistRequest['endpoint'] = null;
  truncation: PersistRequest['truncation'] = null;
  rateLimit: ItemOutcome['rateLimit'];

  outcome(): ItemOutcome {
    const steps = this.allResults();
    const last = this.last();
    const briefs: StepBrief[] = steps.map(({ output: _o, model: _m, ...b }) => b);
    const { endpoint: _e, rateLimit: _r, cacheHit: _c, cacheHits: _h, ...run } = this.run.outcome();
    const ok = this.status === 'succeeded' || this.status === 'approved';
    const totals = this.totals(steps);
    const hits = this.cacheHits();
    return {
      ...run,
      // The answer's endpoint is the last step's that gave one (the current run may be a step `when` skipped).
      ...(ok && this.endpoint ? { endpoint: this.endpoint } : {}),
      ...(this.rateLimit ? { rateLimit: this.rateLimit } : {}),
      status: this.status,
      tier: last?.tier ?? null,
      provider: last?.provider ?? null,
      ...totals,
      ...(this.allFromCache(this.status, totals.attempts) ? { cacheHit: true } : {}),
      ...(hits > 0 ? { cacheHits: hits } : {}),
      truncated: steps.some((s) => s.truncated),
      errorType: this.status === 'succeeded' ? null : run.errorType,
      retried: this.retried,
      steps: briefs,
    };
  }

  retried = 0;

  details(): ReviewDetails {
    const d = this.run.details();
    // A model may quote a secret field back: earlier outputs are masked like the rest of the answer.
    const secrets = secretValues(this.item, this.input.pipeline.secretFields);
    const earlier = this.results.map((r) => {
      const text = r.output === null ? null : maskText(typeof r.output === 'string' ? r.output : JSON.stringify(r.output), secrets);
      return { name: r.name, status: r.status, output: text === null ? null : text.length > EARLIER_OUTPUT_CHARS ? `${text.slice(0, EARLIER_OUTPUT_CHARS)}...` : text };
    });
    const { steps: _s, ...input } = d.input;
    return { ...d, input, retried: this.retried, step: { name: this.step.name, index: this.current, of: this.plan.length, earlier } };
  }
}

/**
 * Most characters (of their JSON) the step outputs of one item may hold together. They
 * live in the item's workflow state, travel in later prompts and in the row's persist
 * call; payloads over the claim threshold go by reference (claim check), so this bounds
 * the item's memory and its row rather than a history event. One answer is bounded by
 * the worker's answer limit.
 */
export const STEP_OUTPUTS_CHARS = 32 * 1024 * 1024;

/** Characters of an output as JSON (a text output counts its quotes). */
export function outputChars(v: unknown): number {
  return v === undefined ? 0 : JSON.stringify(v).length;
}
