/**
 * The fault-injecting LLM provider: a local HTTP server that speaks the OpenAI
 * and Anthropic APIs and injects seeded, reproducible faults. See docs/provider.md.
 */
export { startProvider } from './server.ts';
export type { ProviderOptions, RunningProvider } from './server.ts';
export { DEFAULT_MODELS, countTokensApprox, countPromptTokens } from './models.ts';
export type { ModelConfig } from './models.ts';
export type { BatchStats, ProviderStats } from './stats.ts';
export { BATCH_DEFAULTS } from './batch.ts';
export { FAULT_KINDS, PERMANENT_FAULTS, decideFault, parseProfile } from './faults.ts';
export type { BatchFaults, FaultKind, FaultProfile, FaultSpec, Outage, RateLimitConfig } from './faults.ts';
export { BUILTIN_PROFILES, resolveProfile } from './profiles.ts';
export { expectedAnswer, plainAnswer, itemRefOf, digestOf } from './answers.ts';
export type { JsonSchema } from './answers.ts';
export { BATCH_DISCOUNT, FAULT_HEADER } from './engine.ts';
export { rateLimiter, tokenBucket } from './ratelimit.ts';
export type { RateInfo, RateLimiter, TokenBucket } from './ratelimit.ts';
