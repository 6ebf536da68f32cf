/**
 * The seam between the API-neutral engine and the two wire formats (OpenAI and
 * Anthropic). Each dialect parses its request body into a {@link ChatRequest} and
 * renders answers and errors in the exact shapes its official SDK parses.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { JsonSchema } from './answers.ts';
import type { ModelConfig } from './models.ts';
import type { RateInfo } from './ratelimit.ts';

export type Api = 'openai' | 'anthropic';

/** A chat request reduced to what the provider needs. */
export interface ChatRequest {
  model: string;
  /** All message texts, system prompt first: the input of the token estimate. */
  texts: string[];
  /** Text of the last user message: the input of the deterministic answer. */
  lastUserText: string;
  /** Requested output tokens (max_tokens / max_completion_tokens), if any. */
  maxTokens: number | undefined;
  /** `text`: plain; `json`: any JSON object; `schema`: JSON text for `schema`; `tool`: a tool call. */
  mode: 'text' | 'json' | 'schema' | 'tool';
  schema: JsonSchema | undefined;
  toolName: string | undefined;
  /** Canonical JSON of (model, messages, schema): hashed into the request identity. */
  identitySource: string;
  /**
   * The request's cacheable prefix: OpenAI caches the leading system message by itself,
   * Anthropic everything up to the last `cache_control` breakpoint. Undefined: nothing to cache.
   */
  cachePrefix?: string;
}

/** The content the engine decided on, before the dialect renders it. */
export interface Answer {
  /** Plain text, or JSON text (also the tool arguments when `asTool`). */
  text: string;
  asTool: boolean;
  /** `end`: natural stop; `length`: cut at max tokens; `refusal`: the model declined. */
  stop: 'end' | 'length' | 'refusal';
}

/** Token counts billed for one call. */
export interface Usage {
  /** All prompt tokens, cached and cache-written ones included. */
  input: number;
  output: number;
  /** Prompt tokens read from the prompt cache. */
  cachedInput?: number;
  /** Prompt tokens written to the prompt cache. */
  cacheWrite?: number;
}

/** An HTTP answer: status, extra headers and a JSON body. */
export interface Reply {
  status: number;
  headers: Record<string, string>;
  body: unknown;
}

/** Error answers every dialect can render. */
export type ErrorKind =
  'auth' | 'bad_request' | 'not_found' | 'model_not_found' | 'context_length' | 'rate_limit' | 'insufficient_quota' | 'server_error' | 'unavailable' | 'overloaded';

/** Details an error body or its headers may need. */
export interface ErrorCtx {
  requestId: string;
  model?: string;
  message?: string;
  param?: string;
  promptTokens?: number;
  maxTokens?: number;
  contextWindow?: number;
  retryAfterMs?: number;
  limitedBy?: 'requests' | 'tokens';
  requested?: number;
  rate?: RateInfo;
}

/** One wire format. */
export interface Dialect {
  api: Api;
  /** The API key the client sent, if any (never logged). */
  apiKeyOf(headers: IncomingHttpHeaders): string | undefined;
  /** Parses a request body, or returns the 400 message (and offending parameter). */
  parse(body: unknown): ChatRequest | { error: string; param?: string };
  /** The 200 body of a completed call. */
  success(req: ChatRequest, answer: Answer, usage: Usage, id: string): unknown;
  error(kind: ErrorKind, ctx: ErrorCtx): Reply;
  /** Rate-limit headers that describe the limiter's state. */
  rateHeaders(info: RateInfo): Record<string, string>;
  /** Header that carries the request id. */
  requestIdHeader: string;
  /** The `GET /v1/models` body. */
  modelList(models: readonly ModelConfig[]): unknown;
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Text of an OpenAI or Anthropic content value: a string or a list of parts/blocks. */
export function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  const parts: string[] = [];
  for (const p of content) {
    if (typeof p === 'string') parts.push(p);
    else if (isRecord(p)) {
      if (typeof p['text'] === 'string') parts.push(p['text']);
      else if (p['type'] === 'tool_result') parts.push(textOf(p['content']));
      else if (p['type'] === 'tool_use') parts.push(JSON.stringify(p['input'] ?? {}));
    }
  }
  return parts.join('\n');
}

/** Parses an optional positive integer parameter; returns an error text when invalid. */
export function positiveInt(v: unknown, name: string): number | undefined | { error: string; param: string } {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
    return { error: `Invalid '${name}': expected an integer >= 1, got ${JSON.stringify(v)}.`, param: name };
  }
  return v;
}

/** Formats milliseconds the way OpenAI's x-ratelimit-reset-* headers do: `20ms`, `1.5s`, `6m0s`. */
export function goDuration(ms: number): string {
  const v = Math.max(0, Math.ceil(ms));
  if (v < 1000) return `${v}ms`;
  const h = Math.floor(v / 3_600_000);
  const m = Math.floor((v % 3_600_000) / 60_000);
  const s = (v % 60_000) / 1000;
  const sec = `${Number.isInteger(s) ? s : s.toFixed(3).replace(/0+$/, '')}s`;
  return h > 0 ? `${h}h${m}m${sec}` : m > 0 ? `${m}m${sec}` : sec;
}
