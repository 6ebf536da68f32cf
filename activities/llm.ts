/**
 * Provider adapters: one request shape in, one {@link RawCompletion} out.
 *
 * The SDKs' own retries are off (`maxRetries: 0`): Temporal owns retries so
 * every attempt is visible in history. Errors are not caught here; the
 * activity classifies them (classify.ts).
 */
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import type { ProviderSpec } from '../src/shared/spec.ts';
import type { LlmRequest, RateLimitInfo, TokenUsage } from '../src/shared/types.ts';

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

/** Where a tier's calls go. */
export interface Endpoint {
  kind: ProviderSpec['kind'];
  /** Undefined means the vendor's default API URL. */
  baseURL: string | undefined;
  apiKey: string;
  /** `custom`: the spec's baseURL; `vendor`: the real API (a key is set); `local`: the fault-injecting provider. */
  target: 'custom' | 'vendor' | 'local';
}

const DEFAULT_KEY_ENV: Record<ProviderSpec['kind'], string> = {
  openai: 'OPENAI_API_KEY',
  anthropic: 'ANTHROPIC_API_KEY',
  'openai-compatible': 'OPENAI_API_KEY',
};

/** Placeholder key for endpoints that need none (local model servers, the fault provider). */
export const LOCAL_API_KEY = 'local';

/**
 * Resolves endpoint and key: the spec's `baseURL` wins (key from `apiKeyEnv`, or
 * a placeholder); else the vendor API when its key env var is set; else the
 * local fault-injecting provider, so nothing reaches a paid API by accident.
 */
export function resolveEndpoint(provider: ProviderSpec, providerUrl: string, env: NodeJS.ProcessEnv): Endpoint {
  const keyEnv = provider.apiKeyEnv ?? DEFAULT_KEY_ENV[provider.kind];
  const key = env[keyEnv];
  if (provider.baseURL) return { kind: provider.kind, baseURL: provider.baseURL, apiKey: key || LOCAL_API_KEY, target: 'custom' };
  // An openai-compatible tier names a server of its own; without a baseURL only the local provider fits.
  if (key && provider.kind !== 'openai-compatible') return { kind: provider.kind, baseURL: undefined, apiKey: key, target: 'vendor' };
  const local = providerUrl.replace(/\/+$/, '');
  return { kind: provider.kind, baseURL: provider.kind === 'anthropic' ? local : `${local}/v1`, apiKey: LOCAL_API_KEY, target: 'local' };
}

/** Options shared by both SDK clients. */
export interface AdapterOptions {
  fetch?: typeof fetch;
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

function openaiAdapter(ep: Endpoint, opts: AdapterOptions): ChatAdapter {
  const client = new OpenAI({ apiKey: ep.apiKey, ...(ep.baseURL ? { baseURL: ep.baseURL } : {}), maxRetries: 0, ...(opts.fetch ? { fetch: opts.fetch } : {}) });
  return {
    async complete(req, { timeoutMs, signal }) {
      const p = req.provider;
      const schema = req.output.format === 'json' ? req.output.schema : undefined;
      const responseFormat =
        req.output.format !== 'json'
          ? undefined
          : schema
            ? ({ type: 'json_schema', json_schema: { name: 'output', schema, strict: false } } as const)
            : ({ type: 'json_object' } as const);
      const { data: r, response } = await client.chat.completions
        .create(
          {
            model: p.model,
            messages: withJsonHint(req).map((m) => ({ role: m.role, content: m.content })),
            // OpenAI's newer models reject max_tokens; compatible servers often only know it.
            ...(p.kind === 'openai' ? { max_completion_tokens: p.maxOutputTokens } : { max_tokens: p.maxOutputTokens }),
            ...(p.temperature !== undefined ? { temperature: p.temperature } : {}),
            ...(responseFormat ? { response_format: responseFormat } : {}),
          },
          { timeout: timeoutMs, maxRetries: 0, ...(signal ? { signal } : {}) },
        )
        .withResponse();
      const choice = r.choices[0];
      if (!choice) throw new SyntaxError('the provider answered without a choice');
      const refusal = choice.message.refusal ?? undefined;
      const finish = refusal ? 'refusal' : choice.finish_reason === 'tool_calls' ? 'stop' : choice.finish_reason;
      return {
        text: choice.message.content ?? '',
        finishReason: finish,
        ...(refusal ? { refusal } : {}),
        usage: { inputTokens: r.usage?.prompt_tokens ?? 0, outputTokens: r.usage?.completion_tokens ?? 0 },
        model: r.model || p.model,
        ...rateLimitOf(response.headers, 'x-ratelimit-limit-requests', 'x-ratelimit-limit-tokens'),
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

function anthropicAdapter(ep: Endpoint, opts: AdapterOptions): ChatAdapter {
  const client = new Anthropic({ apiKey: ep.apiKey, ...(ep.baseURL ? { baseURL: ep.baseURL } : {}), maxRetries: 0, ...(opts.fetch ? { fetch: opts.fetch } : {}) });
  return {
    async complete(req, { timeoutMs, signal }) {
      const p = req.provider;
      const messages = withJsonHint(req);
      const system = messages
        .filter((m) => m.role === 'system')
        .map((m) => m.content)
        .join('\n\n');
      const turns = messages.filter((m) => m.role !== 'system').map((m) => ({ role: m.role as 'user' | 'assistant', content: m.content }));
      const schema = req.output.format === 'json' ? req.output.schema : undefined;
      const tool = schema ? toolSchema(schema) : undefined;
      const { data: r, response } = await client.messages
        .create(
          {
            model: p.model,
            max_tokens: p.maxOutputTokens,
            messages: turns,
            ...(system ? { system } : {}),
            ...(p.temperature !== undefined ? { temperature: Math.min(1, p.temperature) } : {}),
            ...(tool
              ? {
                  tools: [
                    { name: OUTPUT_TOOL, description: 'Return the answer as structured data matching the input schema.', input_schema: tool.input as Anthropic.Tool.InputSchema },
                  ],
                  tool_choice: { type: 'tool' as const, name: OUTPUT_TOOL },
                }
              : {}),
          },
          { timeout: timeoutMs, maxRetries: 0, ...(signal ? { signal } : {}) },
        )
        .withResponse();
      const use = r.content.find((b) => b.type === 'tool_use' && b.name === OUTPUT_TOOL);
      const text = r.content.flatMap((b) => (b.type === 'text' ? [b.text] : [])).join('');
      const usage = { inputTokens: r.usage.input_tokens, outputTokens: r.usage.output_tokens };
      const finishReason = STOP_REASONS[r.stop_reason ?? ''] ?? r.stop_reason ?? 'stop';
      const limits = rateLimitOf(response.headers, 'anthropic-ratelimit-requests-limit', 'anthropic-ratelimit-tokens-limit');
      const base = { finishReason, usage, model: r.model || p.model, ...limits, ...(finishReason === 'refusal' ? { refusal: text } : {}) };
      if (use && use.type === 'tool_use') {
        const input = use.input as Record<string, unknown> | null;
        const value = tool?.wrapped && input && typeof input === 'object' ? input['value'] : input;
        return { ...base, text: JSON.stringify(value), json: value };
      }
      return { ...base, text };
    },
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
