/**
 * The models the fault-injecting provider serves, and its own token estimate.
 *
 * The estimate is deliberately crude and documented (one token per four UTF-16
 * code units) so that a test can predict exactly when the provider answers with
 * a context-length error; it is not meant to match any real tokenizer.
 */

/** One model served by the provider. */
export interface ModelConfig {
  /** Model id as sent in the request body, e.g. `gpt-4o-mini`. */
  id: string;
  /** Context window in tokens (prompt plus requested output). */
  contextWindow: number;
  /** Simulated latency of one call: `fixed + jitter * u`, u seeded in [0,1), in milliseconds. */
  latencyMs: { fixed: number; jitter: number };
  /** USD per million tokens, used for the cost figure in `/admin/stats`. */
  pricing: { inputPerMTok: number; outputPerMTok: number };
}

/** Default latency: small, so the demo and tests run fast. */
const FAST = { fixed: 20, jitter: 10 } as const;

/**
 * Models served when {@link ProviderOptions.models} is not given. Every model is
 * served on both APIs (OpenAI and Anthropic), so a test can pick the dialect freely.
 */
export const DEFAULT_MODELS: ModelConfig[] = [
  { id: 'gpt-4o-mini', contextWindow: 128_000, latencyMs: { ...FAST }, pricing: { inputPerMTok: 0.15, outputPerMTok: 0.6 } },
  { id: 'gpt-4o', contextWindow: 128_000, latencyMs: { ...FAST }, pricing: { inputPerMTok: 2.5, outputPerMTok: 10 } },
  // A small "local model" behind an OpenAI-compatible endpoint: the context-overflow path.
  { id: 'small-4k', contextWindow: 4096, latencyMs: { ...FAST }, pricing: { inputPerMTok: 0, outputPerMTok: 0 } },
  {
    id: 'claude-3-5-haiku-latest',
    contextWindow: 200_000,
    latencyMs: { ...FAST },
    pricing: { inputPerMTok: 0.8, outputPerMTok: 4 },
  },
  { id: 'claude-sonnet-4-5', contextWindow: 200_000, latencyMs: { ...FAST }, pricing: { inputPerMTok: 3, outputPerMTok: 15 } },
  // @anthropic-ai/sdk console.warns on every call to claude-sonnet-4-5 (deprecated); these two do not warn.
  { id: 'claude-sonnet-4-6', contextWindow: 200_000, latencyMs: { ...FAST }, pricing: { inputPerMTok: 3, outputPerMTok: 15 } },
  { id: 'claude-haiku-4-5', contextWindow: 200_000, latencyMs: { ...FAST }, pricing: { inputPerMTok: 1, outputPerMTok: 5 } },
];

/**
 * The provider's token estimate: `ceil(text.length / 4)`, where length counts
 * UTF-16 code units. Used for `usage` blocks, rate-limit token buckets and the
 * context-window check.
 */
export function countTokensApprox(text: string): number {
  return Math.ceil(text.length / 4);
}

/**
 * Prompt tokens of a request: {@link countTokensApprox} of all message texts
 * (system prompt included) joined with `\n`. Tool definitions and schemas are not
 * counted, so callers can predict the figure from the messages alone.
 */
export function countPromptTokens(texts: readonly string[]): number {
  return countTokensApprox(texts.join('\n'));
}

/** Cost in USD of one call under a model's pricing. */
export function costOf(model: ModelConfig, inputTokens: number, outputTokens: number): number {
  return (inputTokens * model.pricing.inputPerMTok + outputTokens * model.pricing.outputPerMTok) / 1_000_000;
}
