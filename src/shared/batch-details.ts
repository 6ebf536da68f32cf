/**
 * The batch's description for the Web UI: its tier chain and review policy,
 * as static details (set by whoever starts the batch) and at the top of the
 * batch's current details (for batches started with the Temporal CLI).
 */
import type { PipelineSpec } from './spec.ts';
import { tierName } from './tiers.ts';

/** Milliseconds as `7d`, `2h`, `30m`, `45s`. */
function span(ms: number): string {
  for (const [unit, n] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1_000],
  ] as const) {
    if (ms >= n && ms % n === 0) return `${ms / n}${unit}`;
  }
  return `${ms}ms`;
}

/** Markdown lines: the tiers in order with their models, and what happens to items that fail for good. */
export function batchPolicyMarkdown(spec: PipelineSpec): string {
  const tiers = spec.providers.map((p, i) => `${i + 1}. **${tierName(p, i)}**: ${p.kind} ${p.model}`).join('\n');
  const { review, batch } = spec;
  return [
    `**pipeline** ${spec.name}; concurrency ${batch.concurrency}`,
    `**tier chain**\n\n${tiers}`,
    `**review**: an item that failed on every tier waits ${span(review.timeout)} for a person (approve, retry or skip), then ${review.defaultDecision}s by default`,
  ].join('\n\n');
}
