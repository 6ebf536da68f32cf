/**
 * The parts of the pipeline spec that workflows use on every item, without zod.
 *
 * Each workflow evaluates its imports afresh (the SDK gives every workflow its own
 * module cache), so an item workflow that imported `spec.ts` would rebuild every zod
 * schema when it starts: about 8 ms of CPU per item. The batch loads the schemas
 * lazily (`workflows/lazy.ts`); items import only this module.
 */
import type { ProviderSpec } from './spec.ts';

/** Field set on an item made from a bad input line; the item goes to review with this reason. */
export const INVALID_LINE_FIELD = '_invalid';

/** Default tier name when the spec gives none. */
export function tierName(p: ProviderSpec, index: number): string {
  return p.name ?? `tier${index + 1}:${p.kind}:${p.model}`;
}

/** Cost in USD of a call under the tier's pricing (USD per million tokens). */
export function costOf(pricing: { inputPerMTok: number; outputPerMTok: number }, usage: { inputTokens: number; outputTokens: number }): number {
  return (usage.inputTokens * pricing.inputPerMTok + usage.outputTokens * pricing.outputPerMTok) / 1_000_000;
}

/** The default context window of a provider kind, in tokens. */
export function contextWindowOf(p: ProviderSpec): number {
  return p.contextWindow ?? (p.kind === 'anthropic' ? 200_000 : p.kind === 'openai' ? 128_000 : 8_192);
}
