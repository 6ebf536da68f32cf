/**
 * The review gate of one item: an item that failed for
 * good waits here for `approve`, `retry` or `skip`, by signal or Update; a
 * decision that arrives while the item is not waiting changes nothing.
 */
import { log } from '@temporalio/workflow';
import type { PipelineSpec } from '../src/shared/spec.ts';
import { tierName } from '../src/shared/tiers.ts';
import { loadValidate } from './lazy.ts';
import type { ReviewDecision } from '../src/shared/messages.ts';

const DECISIONS = ['approve', 'retry', 'skip'] as const;

/** The JSON Schema check of approved outputs (zod): loaded by {@link loadOutputCheck} before reviews are taken. */
let checkOutput: ((value: unknown, schema: Record<string, unknown>) => string[]) | null = null;

/** Loads the output check; a workflow calls it before it accepts review decisions. */
export async function loadOutputCheck(): Promise<void> {
  checkOutput ??= (await loadValidate()).validateOutput;
}

/** Why a decision cannot be taken, or null when it can. Pure: used by Update validators. */
export function reviewProblem(d: unknown, spec: PipelineSpec, awaiting: boolean): string | null {
  if (typeof d !== 'object' || d === null) return 'a review must be an object like {"decision":"approve"}';
  const r = d as Partial<ReviewDecision>;
  if (!DECISIONS.includes(r.decision as (typeof DECISIONS)[number])) return `decision must be one of ${DECISIONS.join(', ')}; got ${JSON.stringify(r.decision)}`;
  if (r.reviewer !== undefined && (typeof r.reviewer !== 'string' || r.reviewer.length > 200)) return 'reviewer must be a name of at most 200 characters';
  if (r.note !== undefined && typeof r.note !== 'string') return 'note must be a text';
  if (!awaiting) return 'the item is not awaiting review';
  if (r.decision === 'approve' && r.output !== undefined && spec.output.format === 'json' && spec.output.schema) {
    if (!checkOutput) return 'the output check is not loaded yet; try again';
    const errors = checkOutput(r.output, spec.output.schema);
    if (errors.length > 0) return `output does not match the pipeline's schema: ${errors.join('; ')}`;
  }
  if (r.decision === 'retry') {
    if (r.input !== undefined && (typeof r.input !== 'object' || r.input === null || Array.isArray(r.input))) return 'input must be an object of fields';
    if (r.provider !== undefined && resolveTier(spec, r.provider) === null)
      return `provider ${JSON.stringify(r.provider)} is not a tier of this pipeline (${spec.providers.map(tierName).join(', ')})`;
  }
  return null;
}

/** Index of a tier given by name or index; null when there is none. */
export function resolveTier(spec: PipelineSpec, provider: string | number): number | null {
  const byName = spec.providers.findIndex((p, i) => tierName(p, i) === provider || p.model === provider);
  if (byName >= 0) return byName;
  const n = Number(provider);
  return Number.isInteger(n) && n >= 0 && n < spec.providers.length ? n : null;
}

export class ReviewGate {
  awaiting = false;
  decision: ReviewDecision | null = null;
  readonly spec: PipelineSpec;

  constructor(spec: PipelineSpec) {
    this.spec = spec;
  }

  /** Signal path: an invalid or untimely decision is logged and ignored. */
  receive(d: ReviewDecision): void {
    const problem = reviewProblem(d, this.spec, this.awaiting && this.decision === null);
    if (problem) {
      log.warn('review ignored', { problem, decision: d?.decision });
      return;
    }
    this.decision = d;
  }

  /** Update validator: throws to reject before the Update reaches history. */
  validate(d: ReviewDecision): void {
    const problem = reviewProblem(d, this.spec, this.awaiting && this.decision === null);
    if (problem) throw new Error(problem);
  }

  open(): void {
    this.awaiting = true;
    this.decision = null;
  }

  /** Takes the decision and closes the gate. */
  take(): ReviewDecision | null {
    const d = this.decision;
    this.awaiting = false;
    this.decision = null;
    return d;
  }
}
