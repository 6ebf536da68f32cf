/**
 * Provider adapters: one request shape in, one {@link RawCompletion} out.
 *
 * The SDKs' own retries are off (`maxRetries: 0`): Temporal owns retries so
 * every attempt is visible in history. Errors are not caught here; the
 * activity classifies them (classify.ts).
 */
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import type { LlmRequest, RateLimitInfo, TokenUsage } from '../src/shared/types.ts';
import type { Endpoint } from './endpoints.ts';
import { strictSchemaProblem } from './strict-schema.ts';
import { RESERVED_HEADERS } from '../src/shared/spec.ts';

export type { Endpoint } from './endpoints.ts';

/** Header the fault-injecting provider sets on every answer (src/provider/server.ts). */
export const SIMULATED_HEADER = 'x-steadfast-simulated';

/** What a provider answered, before validation. */
export interface RawCompletion {
  /** The answer text; for a tool call, the JSON text of its input. */
  text: string;
  /** Structured value when the provider returned one (Anthropic tool input). */
  json?: unknown;
  /** Normalised: `stop`, `length`, `refusal`, `content_filter`, or the provider's own value. */
  finishReason: string;
  refusal?: string;
  usage: TokenUsage;
  model: string;
  /** The provider's advertised limits, from its rate-limit headers (for pacing). */
  rateLimit?: RateLimitInfo;
  /** The answer carried the fault-injecting provider's header. */
  simulated?: boolean;
}

/** Per-attempt call options. */
export interface CallOptions {
  timeoutMs: number;
  signal?: AbortSignal;
}

/** One provider API. */
export interface ChatAdapter {
  complete(req: LlmRequest, opts: CallOptions): Promise<RawCompletion>;
}

/** Options shared by both SDK clients. */
export interface AdapterOptions {
  fetch?: typeof fetch;
  /** Told once per schema when OpenAI's strict mode cannot take it (the reason). */
  onLooseSchema?: (reason: string) => void;
}

/** Builds the adapter of an endpoint. */
export function createAdapter(ep: Endpoint, opts: AdapterOptions = {}): ChatAdapter {
  return ep.kind === 'anthropic' ? anthropicAdapter(ep, opts) : openaiAdapter(ep, opts);
}

/** Name of the tool that carries structured output on Anthropic. */
export const OUTPUT_TOOL = 'emit_output';
const JSON_HINT = 'Respond with a single JSON value only.';

/** Adds the JSON instruction OpenAI's json_object mode requires (the word "JSON" must appear). */
function withJsonHint(req: LlmRequest): LlmRequest['messages'] {
  if (req.output.format !== 'json' || req.messages.some((m) => /json/i.test(m.content))) return req.messages;
  return [{ role: 'system', content: JSON_HINT }, ...req.messages];
}

/** Per-tier headers (OpenAI-Organization, OpenRouter's HTTP-Referer, ...), without the reserved ones. */
export function tierHeaders(req: LlmRequest): Record<string, string> | undefined {
  const h = req.provider.headers;
  if (!h) return undefined;
  return Object.fromEntries(Object.entries(h).filter(([k]) => !RESERVED_HEADERS.includes(k.toLowerCase())));
}

/** Strict mode per schema text, computed once: OpenAI then guarantees the shape instead of trying. */
const strictness = new Map<string, string | null>();

/** The OpenAI chat request body of a call (synchronous or one line of a provider batch). */
export function openaiChatBody(req: LlmRequest, opts: AdapterOptions = {}): OpenAI.ChatCompletionCreateParamsNonStreaming {
  const p = req.provider;
  const schema = req.output.format === 'json' ? req.output.schema : undefined;
  let strict = false;
  if (schema) {
    const key = JSON.stringify(schema);
    let problem = strictness.get(key);
    if (problem === undefined) {
      problem = strictSchemaProblem(schema);
      if (strictness.size > 100) strictness.clear();
      strictness.set(key, problem);
      if (problem) opts.onLooseSchema?.(problem);
    }
    strict = problem === null;
  }
  const responseFormat =
    req.output.format !== 'json' ? undefined : schema ? ({ type: 'json_schema', json_schema: { name: 'output', schema, strict } } as const) : ({ type: 'json_object' } as const);
  return {
    model: p.model,
    messages: withJsonHint(req).map((m) => ({ role: m.role, content: m.content })),
    // OpenAI's newer models reject max_tokens; compatible servers often only know it.
    ...(p.kind === 'openai' ? { max_completion_tokens: p.maxOutputTokens } : { max_tokens: p.maxOutputTokens }),
    ...(p.temperature !== undefined ? { temperature: p.temperature } : {}),
    ...(responseFormat ? { response_format: responseFormat } : {}),
  };
}

/** Reads an OpenAI chat completion (a synchronous answer, or the body of a batch result line). */
export function openaiCompletion(r: OpenAI.ChatCompletion, fallbackModel: string): RawCompletion {
  const choice = r.choices?.[0];
  if (!choice) throw new SyntaxError('the provider answered without a choice');
  const refusal = choice.message.refusal ?? undefined;
  const finish = refusal ? 'refusal' : choice.finish_reason === 'tool_calls' ? 'stop' : choice.finish_reason;
  return {
    text: choice.message.content ?? '',
    finishReason: finish,
    ...(refusal ? { refusal } : {}),
    usage: openaiUsage(r.usage),
    model: r.model || fallbackModel,
  };
}

function openaiAdapter(ep: Endpoint, opts: AdapterOptions): ChatAdapter {
  const client = new OpenAI({ apiKey: ep.apiKey, ...(ep.baseURL ? { baseURL: ep.baseURL } : {}), maxRetries: 0, ...(opts.fetch ? { fetch: opts.fetch } : {}) });
  return {
    async complete(req, { timeoutMs, signal }) {
      const headers = tierHeaders(req);
      const { data: r, response } = await client.chat.completions
        .create(openaiChatBody(req, opts), { timeout: timeoutMs, maxRetries: 0, ...(signal ? { signal } : {}), ...(headers ? { headers } : {}) })
        .withResponse();
      return {
        ...openaiCompletion(r, req.provider.model),
        ...rateLimitOf(response.headers, 'x-ratelimit-limit-requests', 'x-ratelimit-limit-tokens'),
        ...(response.headers.get(SIMULATED_HEADER) === 'true' ? { simulated: true } : {}),
      };
    },
  };
}

/** Anthropic tool input must be an object: other schemas are wrapped in `{ value }`. */
function toolSchema(schema: Record<string, unknown>): { input: Record<string, unknown>; wrapped: boolean } {
  if (schema['type'] === 'object') return { input: schema, wrapped: false };
  return { input: { type: 'object', properties: { value: schema }, required: ['value'] }, wrapped: true };
}

const STOP_REASONS: Record<string, string> = { end_turn: 'stop', stop_sequence: 'stop', tool_use: 'stop', max_tokens: 'length', refusal: 'refusal' };

/** The Anthropic Messages request params of a call (synchronous or one request of a message batch). */
export function anthropicParams(req: LlmRequest): Anthropic.MessageCreateParamsNonStreaming {
  const p = req.provider;
  const messages = withJsonHint(req);
  const systemText = messages
    .filter((m) => m.role === 'system')
    .map((m) => m.content)
    .join('\n\n');
  // Every item of a batch shares the system prompt (after the tool definition) and the
  // template's leading text: both are cache breakpoints, so the provider bills them at
  // the cache-read price from the second item on (a prefix under the model's minimum is
  // simply not cached).
  const system = systemText ? [{ type: 'text' as const, text: systemText, cache_control: { type: 'ephemeral' as const } }] : undefined;
  let firstUser = true;
  const turns = messages
    .filter((m) => m.role !== 'system')
    .map((m) => {
      const role = m.role as 'user' | 'assistant';
      const cut = req.sharedPrefixChars ?? 0;
      if (role !== 'user' || !firstUser || cut <= 0 || cut >= m.content.length) {
        if (role === 'user') firstUser = false;
        return { role, content: m.content };
      }
      firstUser = false;
      return {
        role,
        content: [
          { type: 'text' as const, text: m.content.slice(0, cut), cache_control: { type: 'ephemeral' as const } },
          { type: 'text' as const, text: m.content.slice(cut) },
        ],
      };
    });
  const schema = req.output.format === 'json' ? req.output.schema : undefined;
  const tool = schema ? toolSchema(schema) : undefined;
  return {
    model: p.model,
    max_tokens: p.maxOutputTokens,
    messages: turns,
    ...(system ? { system } : {}),
    ...(p.temperature !== undefined ? { temperature: Math.min(1, p.temperature) } : {}),
    ...(tool
      ? {
          tools: [{ name: OUTPUT_TOOL, description: 'Return the answer as structured data matching the input schema.', input_schema: tool.input as Anthropic.Tool.InputSchema }],
          tool_choice: { type: 'tool' as const, name: OUTPUT_TOOL },
        }
      : {}),
  };
}

/** Reads an Anthropic message (a synchronous answer, or a succeeded batch result). */
export function anthropicMessage(r: Anthropic.Message, req: LlmRequest): RawCompletion {
  const schema = req.output.format === 'json' ? req.output.schema : undefined;
  const wrapped = schema ? toolSchema(schema).wrapped : false;
  const use = r.content.find((b) => b.type === 'tool_use' && b.name === OUTPUT_TOOL);
  const text = r.content.flatMap((b) => (b.type === 'text' ? [b.text] : [])).join('');
  const usage = anthropicUsage(r.usage);
  const finishReason = STOP_REASONS[r.stop_reason ?? ''] ?? r.stop_reason ?? 'stop';
  const base = { finishReason, usage, model: r.model || req.provider.model, ...(finishReason === 'refusal' ? { refusal: text } : {}) };
  if (use && use.type === 'tool_use') {
    const input = use.input as Record<string, unknown> | null;
    const value = wrapped && input && typeof input === 'object' ? input['value'] : input;
    return { ...base, text: JSON.stringify(value), json: value };
  }
  return { ...base, text };
}

function anthropicAdapter(ep: Endpoint, opts: AdapterOptions): ChatAdapter {
  const client = new Anthropic({ apiKey: ep.apiKey, ...(ep.baseURL ? { baseURL: ep.baseURL } : {}), maxRetries: 0, ...(opts.fetch ? { fetch: opts.fetch } : {}) });
  return {
    async complete(req, { timeoutMs, signal }) {
      const headers = tierHeaders(req);
      const { data: r, response } = await client.messages
        .create(anthropicParams(req), { timeout: timeoutMs, maxRetries: 0, ...(signal ? { signal } : {}), ...(headers ? { headers } : {}) })
        .withResponse();
      return {
        ...anthropicMessage(r, req),
        ...rateLimitOf(response.headers, 'anthropic-ratelimit-requests-limit', 'anthropic-ratelimit-tokens-limit'),
        ...(response.headers.get(SIMULATED_HEADER) === 'true' ? { simulated: true } : {}),
      };
    },
  };
}

/** OpenAI usage: `prompt_tokens` includes the cached ones (`prompt_tokens_details.cached_tokens`). */
export function openaiUsage(u: OpenAI.CompletionUsage | undefined): TokenUsage {
  const cached = u?.prompt_tokens_details?.cached_tokens ?? 0;
  return { inputTokens: u?.prompt_tokens ?? 0, outputTokens: u?.completion_tokens ?? 0, ...(cached > 0 ? { cachedInputTokens: cached } : {}) };
}

/** Anthropic usage: `input_tokens` excludes cache reads and writes, so they are added to the total. */
export function anthropicUsage(u: {
  input_tokens: number;
  output_tokens: number;
  cache_read_input_tokens?: number | null;
  cache_creation_input_tokens?: number | null;
}): TokenUsage {
  const read = u.cache_read_input_tokens ?? 0;
  const write = u.cache_creation_input_tokens ?? 0;
  return {
    inputTokens: u.input_tokens + read + write,
    outputTokens: u.output_tokens,
    ...(read > 0 ? { cachedInputTokens: read } : {}),
    ...(write > 0 ? { cacheWriteTokens: write } : {}),
  };
}

/**
 * The per-minute limits a provider advertises on every answer (OpenAI
 * `x-ratelimit-limit-*`, Anthropic `anthropic-ratelimit-*-limit`): the batch
 * paces its dispatch to them when the spec gives no tighter limit.
 */
export function rateLimitOf(headers: Headers, requestsHeader: string, tokensHeader: string): { rateLimit?: RateLimitInfo } {
  const num = (name: string) => {
    const v = Number(headers.get(name));
    return Number.isFinite(v) && v > 0 ? v : undefined;
  };
  const requestsPerMinute = num(requestsHeader);
  const tokensPerMinute = num(tokensHeader);
  if (requestsPerMinute === undefined && tokensPerMinute === undefined) return {};
  return { rateLimit: { ...(requestsPerMinute ? { requestsPerMinute } : {}), ...(tokensPerMinute ? { tokensPerMinute } : {}) } };
}
