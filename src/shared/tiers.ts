/**
 * The parts of the pipeline spec that workflows use on every item, without zod.
 *
 * Each workflow evaluates its imports afresh (the SDK gives every workflow its own
 * module cache), so an item workflow that imported `spec.ts` would rebuild every zod
 * schema when it starts: about 8 ms of CPU per item. The batch loads the schemas
 * lazily (`workflows/lazy.ts`); items import only this module.
 */
import type { ProviderSpec } from './spec.ts';

/**
 * Longest item id, in characters. An item's workflow id is `<batchId>/<itemId>` and Temporal
 * refuses workflow ids past 1,000 characters, so both parts are bounded at the boundary.
 */
export const MAX_ITEM_ID_CHARS = 512;
/** Longest batch id, in characters (see {@link MAX_ITEM_ID_CHARS}). */
export const MAX_BATCH_ID_CHARS = 256;

/** Field set on an item made from a bad input line; the item goes to review with this reason. */
export const INVALID_LINE_FIELD = '_invalid';

/** Default tier name when the spec gives none. */
export function tierName(p: ProviderSpec, index: number): string {
  return p.name ?? `tier${index + 1}:${p.kind}:${p.model}`;
}

/** A tier's prices in USD per million tokens; the cache prices default to the input price. */
export interface Pricing {
  inputPerMTok: number;
  outputPerMTok: number;
  cachedInputPerMTok?: number | undefined;
  cacheWritePerMTok?: number | undefined;
}

/**
 * Cost in USD of a call under the tier's pricing. `inputTokens` counts all prompt
 * tokens; those read from or written to the prompt cache are billed at their own prices.
 */
export function costOf(pricing: Pricing, usage: { inputTokens: number; outputTokens: number; cachedInputTokens?: number; cacheWriteTokens?: number }): number {
  const cached = usage.cachedInputTokens ?? 0;
  const written = usage.cacheWriteTokens ?? 0;
  const plain = Math.max(0, usage.inputTokens - cached - written);
  return (
    (plain * pricing.inputPerMTok +
      cached * (pricing.cachedInputPerMTok ?? pricing.inputPerMTok) +
      written * (pricing.cacheWritePerMTok ?? pricing.inputPerMTok) +
      usage.outputTokens * pricing.outputPerMTok) /
    1_000_000
  );
}

/** The default context window of an openai-compatible tier: set `contextWindow` to the served model's. */
export const COMPATIBLE_CONTEXT_WINDOW = 32_768;

/** The default context window of a provider kind, in tokens. */
export function contextWindowOf(p: ProviderSpec): number {
  return p.contextWindow ?? (p.kind === 'anthropic' ? 200_000 : p.kind === 'openai' ? 128_000 : COMPATIBLE_CONTEXT_WINDOW);
}

/** Share taken off a tier's prices for requests sent through a provider batch, when the spec sets none. */
export const DEFAULT_BATCH_DISCOUNT = 0.5;

/** Cost in USD of a request answered inside a provider batch: {@link costOf} x (1 - batchDiscount). */
export function batchCostOf(pricing: Pricing & { batchDiscount?: number | undefined }, usage: Parameters<typeof costOf>[1]): number {
  return costOf(pricing, usage) * (1 - (pricing.batchDiscount ?? DEFAULT_BATCH_DISCOUNT));
}

/** A `mode: batch` tier's grouping and polling, with the defaults filled in (durations in ms). */
export interface BatchOptions {
  maxRequests: number;
  maxBytes: number;
  windowMs: number;
  pollIntervalMs: number;
  completionWindow: '24h';
}

/** The vendors' limits per provider batch: OpenAI 50,000 requests / 200 MB per file, Anthropic 100,000 / 256 MB. */
export const VENDOR_BATCH_LIMITS = {
  openai: { maxRequests: 50_000, maxBytes: 200 * 1024 * 1024 },
  anthropic: { maxRequests: 100_000, maxBytes: 256 * 1024 * 1024 },
} as const;

/** The batch options of a tier: the spec's, else defaults a little under the vendor's limits. */
export function batchOptionsOf(p: ProviderSpec): BatchOptions {
  const vendor = p.kind === 'anthropic' ? VENDOR_BATCH_LIMITS.anthropic : VENDOR_BATCH_LIMITS.openai;
  const b = p.batch ?? {};
  return {
    maxRequests: Math.min(b.maxRequests ?? vendor.maxRequests, vendor.maxRequests),
    // A margin under the byte limit: the vendors count multipart framing and JSON escaping differently.
    maxBytes: Math.min(b.maxBytes ?? Math.floor(vendor.maxBytes * (p.kind === 'anthropic' ? 0.9375 : 0.95)), vendor.maxBytes),
    windowMs: b.window ?? 30_000,
    pollIntervalMs: b.pollInterval ?? 60_000,
    completionWindow: b.completionWindow ?? '24h',
  };
}
