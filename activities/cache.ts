/**
 * The response cache: a validated answer is stored under a hash of everything that
 * shapes it, and a later call with the same request (another item, another batch, a
 * re-run, another worker on the same database) gets it back without calling the
 * provider, at no cost.
 *
 * The key is the sha256 of the canonical JSON (sorted keys, safe-stable-stringify) of
 * the provider kind, the endpoint that would answer (vendor, host, simulated or not:
 * a tier that asks for a real vendor never gets a simulated answer), the model, the
 * messages as sent (after truncation), the output format and schema, temperature and
 * max output tokens. The API key, its env var name and extra headers are left out:
 * they choose who pays, not what is answered.
 *
 * Only answers that passed every check of `callLlm` (not refused, not cut at max
 * tokens, parsed and valid against the schema) are written; a hit is validated again
 * against the request's schema before it is served, so an answer whose validation
 * failed is never served. Entries are scrubbed like result rows.
 */
import { createHash } from 'node:crypto';
import { stringify } from 'safe-stable-stringify';
import type { ChatMessage, EndpointInfo, LlmRequest, LlmResult, TokenUsage } from '../src/shared/types.ts';
import { validateOutput } from '../src/shared/validate.ts';
import { scrubValue } from './scrub.ts';
import type { ResultStore } from './store.ts';

/** Version of the key's layout: bumping it retires every stored entry. */
const KEY_VERSION = 1;

/** What the key is made of. */
export interface CacheKeyParts {
  kind: string;
  endpoint: EndpointInfo;
  model: string;
  messages: readonly ChatMessage[];
  output: LlmRequest['output'];
  temperature: number | undefined;
  maxOutputTokens: number;
}

/** The cache key of a request: sha256 hex of its canonical JSON. */
export function cacheKey(p: CacheKeyParts): string {
  const canonical = stringify({
    v: KEY_VERSION,
    kind: p.kind,
    endpoint: { vendor: p.endpoint.vendor, host: p.endpoint.host, simulated: p.endpoint.simulated },
    model: p.model,
    messages: p.messages.map((m) => ({ role: m.role, content: m.content })),
    output: { format: p.output.format, schema: p.output.format === 'json' ? (p.output.schema ?? null) : null },
    temperature: p.temperature ?? null,
    maxOutputTokens: p.maxOutputTokens,
  });
  return createHash('sha256')
    .update(canonical ?? '')
    .digest('hex');
}

/**
 * The key of a request as `endpoint` would answer it: the same for a synchronous call and
 * for a request sent through a provider batch (`mode: batch`), so either path serves the other.
 */
export function requestCacheKey(req: Pick<LlmRequest, 'provider' | 'messages' | 'output'>, endpoint: EndpointInfo): string {
  const p = req.provider;
  return cacheKey({ kind: p.kind, endpoint, model: p.model, messages: req.messages, output: req.output, temperature: p.temperature, maxOutputTokens: p.maxOutputTokens });
}

/** A hit as a call's result: no provider request, usage 0, cost 0; `cached.savedUsd` is what it saved. */
export function cachedResult(answer: CachedAnswer, latencyMs: number, attempt: number): LlmResult {
  return {
    text: answer.text,
    ...(answer.json !== undefined ? { json: answer.json } : {}),
    finishReason: answer.finishReason,
    usage: { inputTokens: 0, outputTokens: 0 },
    costUsd: 0,
    model: answer.model,
    latencyMs,
    attempt,
    endpoint: answer.endpoint,
    cached: { savedUsd: answer.costUsd },
  };
}

/** A validated answer as the cache stores it. */
export function cacheEntryOf(r: LlmResult): CachedAnswer {
  return {
    text: r.text,
    ...(r.json !== undefined ? { json: r.json } : {}),
    finishReason: r.finishReason,
    model: r.model,
    endpoint: r.endpoint!,
    usage: r.usage,
    costUsd: r.costUsd,
  };
}

/** A stored answer. */
export interface CachedAnswer {
  text: string;
  json?: unknown;
  finishReason: string;
  model: string;
  endpoint: EndpointInfo;
  /** Usage and cost of the call that produced it (what a hit saves). */
  usage: TokenUsage;
  costUsd: number;
}

/** Reads and writes cached answers in the results store. */
export interface ResponseCache {
  /** The valid answer stored under `key`, or null (none, too old, or no longer valid against `output`). */
  get(key: string, output: LlmRequest['output'], maxAgeMs?: number): Promise<CachedAnswer | null>;
  /** Stores a validated answer (scrubbed); the first answer stored under a key stays. */
  put(key: string, answer: CachedAnswer, secretValues: readonly string[]): Promise<void>;
}

/** The cache on the results store; `env` names the secrets that are scrubbed from entries. */
export function responseCache(store: Pick<ResultStore, 'cacheGet' | 'cachePut'>, env: NodeJS.ProcessEnv, now: () => number = Date.now): ResponseCache {
  return {
    async get(key, output, maxAgeMs) {
      const e = await store.cacheGet(key);
      if (!e) return null;
      if (maxAgeMs !== undefined && now() - Date.parse(e.createdAt) > maxAgeMs) return null;
      let answer: CachedAnswer;
      try {
        answer = JSON.parse(e.answer) as CachedAnswer;
      } catch {
        return null;
      }
      if (typeof answer.text !== 'string') return null;
      if (output.format === 'json' && (answer.json === undefined || validateOutput(answer.json, output.schema).length > 0)) return null;
      return answer;
    },
    async put(key, answer, secretValues) {
      const clean = scrubValue(answer, { values: secretValues, env });
      await store.cachePut({ key, model: answer.model, answer: JSON.stringify(clean), createdAt: new Date(now()).toISOString() });
    },
  };
}
