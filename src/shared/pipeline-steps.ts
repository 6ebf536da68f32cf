/**
 * Multi-step pipelines: the plan of a spec's `steps` (each step's own spec, the
 * pipeline's defaults merged with the step's overrides) and the per-step results
 * an item keeps, stores and reports. Pure, so workflows use it.
 */
import type { PipelineSpec } from './spec.ts';
import { parseWhen } from './when.ts';
import type { WhenNode } from './when.ts';

/** One step as the item workflow runs it. */
export interface PlannedStep {
  name: string;
  index: number;
  /** The spec the one-step chain walker runs: the step's prompt and output, its overrides over the pipeline's settings. */
  spec: PipelineSpec;
  when: WhenNode | null;
  /** The step uses the pipeline's provider chain, so the batch's circuit breakers apply to it. */
  sharedTiers: boolean;
}

/** The steps of a multi-step spec, in order; empty for a one-prompt spec. */
export function planSteps(spec: PipelineSpec): PlannedStep[] {
  const steps = spec.steps ?? [];
  const base: PipelineSpec = { ...spec };
  delete base.steps;
  return steps.map((step, index) => ({
    name: step.name,
    index,
    spec: {
      ...base,
      prompt: step.prompt,
      output: step.output,
      providers: step.providers ?? spec.providers,
      retry: { ...spec.retry, ...definedOnly(step.retry ?? {}) },
      truncation: step.truncation ?? spec.truncation,
      repair: step.repair ?? spec.repair,
    },
    when:
      step.when === undefined
        ? null
        : parseWhen(
            step.when,
            steps.slice(0, index).map((s) => s.name),
          ),
    sharedTiers: step.providers === undefined,
  }));
}

/** The spec of the step named `name` (pipeline defaults merged), or null when there is no such step. */
export function stepSpec(spec: PipelineSpec, name: string): PipelineSpec | null {
  return planSteps(spec).find((st) => st.name === name)?.spec ?? null;
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/**
 * How a step ended for an item: `succeeded` (a model answered), `approved` (a reviewer
 * supplied or accepted the output), `skipped` (its `when` was false), `failed` (a
 * reviewer skipped the item at this step, or the batch cancelled it there).
 */
export type StepStatus = 'succeeded' | 'approved' | 'skipped' | 'failed';

/** One step's result in the item's row (the `steps` column). */
export interface StepResult {
  name: string;
  status: StepStatus;
  /** The step's validated output (null when it did not run or failed). */
  output: unknown;
  tier: number | null;
  provider: string | null;
  model: string | null;
  attempts: number;
  inputTokens: number;
  outputTokens: number;
  costUsd: number;
  truncated: boolean;
  /** The step waited for review at least once. */
  reviewed: boolean;
  /** The failure that sent the step to review (its last one); null when it never failed for good. */
  errorType: string | null;
}

/** A step's figures in the item's outcome (what the batch counts): a {@link StepResult} without its output. */
export type StepBrief = Omit<StepResult, 'output' | 'model'>;

/** Per-step figures of a batch summary. */
export interface StepStats {
  /** Items whose step ran and gave an output (succeeded or approved). */
  succeeded: number;
  approved: number;
  /** Items that skipped the step by its `when`. */
  skipped: number;
  /** Items that waited for review at this step. */
  reviewed: number;
  /** Items that ended at this step without an output (skipped by a reviewer, cancelled). */
  failed: number;
  attempts: number;
  inputTokens: number;
  outputTokens: number;
  costUsd: number;
  /** Items whose step was answered by a tier after the first. */
  fallbacks: number;
  /** Items answered per tier name. */
  tierUse: Record<string, number>;
}

/** Adds one item's step figures to the batch's per-step stats (pure: returns the new record). */
export function addStepStats(stats: Record<string, StepStats>, steps: readonly StepBrief[]): Record<string, StepStats> {
  const out = { ...stats };
  for (const s of steps) {
    const cur: StepStats = out[s.name]
      ? { ...out[s.name]!, tierUse: { ...out[s.name]!.tierUse } }
      : { succeeded: 0, approved: 0, skipped: 0, reviewed: 0, failed: 0, attempts: 0, inputTokens: 0, outputTokens: 0, costUsd: 0, fallbacks: 0, tierUse: {} };
    if (s.status === 'succeeded') cur.succeeded += 1;
    else if (s.status === 'approved') cur.approved += 1;
    else if (s.status === 'skipped') cur.skipped += 1;
    else cur.failed += 1;
    if (s.reviewed) cur.reviewed += 1;
    cur.attempts += s.attempts;
    cur.inputTokens += s.inputTokens;
    cur.outputTokens += s.outputTokens;
    cur.costUsd += s.costUsd;
    if (s.status === 'succeeded' && s.tier !== null && s.tier > 0) cur.fallbacks += 1;
    if (s.status === 'succeeded' && s.provider) cur.tierUse[s.provider] = (cur.tierUse[s.provider] ?? 0) + 1;
    out[s.name] = cur;
  }
  return out;
}
