/**
 * The Anthropic Messages wire format (`POST /v1/messages`), with the error bodies
 * (`{type:'error', error:{type, message}}`) and `anthropic-ratelimit-*` headers the
 * official SDK parses; 529 `overloaded_error` becomes its InternalServerError subclass.
 */
import type { JsonSchema } from './answers.ts';
import { isRecord, positiveInt, textOf } from './dialect.ts';
import type { Answer, ChatRequest, Dialect, ErrorCtx, ErrorKind, Reply, Usage } from './dialect.ts';
import type { RateInfo } from './ratelimit.ts';

const REFUSAL = "I can't help with that request.";

function parse(body: unknown): ChatRequest | { error: string; param?: string } {
  if (!isRecord(body)) return { error: 'The request body must be a JSON object.' };
  const model = body['model'];
  if (typeof model !== 'string' || !model) return { error: 'model: Field required' };
  if (body['max_tokens'] === undefined) return { error: 'max_tokens: Field required' };
  const maxTokens = positiveInt(body['max_tokens'], 'max_tokens');
  if (typeof maxTokens === 'object') return { error: `max_tokens: ${maxTokens.error}` };
  const messages = body['messages'];
  if (!Array.isArray(messages) || !messages.every(isRecord)) return { error: 'messages: Field required' };
  if (messages.length === 0) return { error: 'messages: at least one message is required' };
  if (body['stream'] === true) return { error: 'stream: not supported by the Steadfast fault provider' };

  const system = textOf(body['system']);
  const texts = [...(system ? [system] : []), ...messages.map((m) => textOf(m['content']))];
  const last = messages[messages.length - 1];
  const lastUser = messages.findLast((m) => m['role'] === 'user') ?? last;
  const lastUserText = textOf(lastUser?.['content']);

  let mode: ChatRequest['mode'] = 'text';
  let schema: JsonSchema | undefined;
  let toolName: string | undefined;
  const outCfg = isRecord(body['output_config']) ? body['output_config']['format'] : body['output_format'];
  if (isRecord(outCfg) && outCfg['type'] === 'json_schema' && isRecord(outCfg['schema'])) {
    mode = 'schema';
    schema = outCfg['schema'];
  }

  const tools = Array.isArray(body['tools']) ? body['tools'].filter(isRecord) : [];
  const choice = isRecord(body['tool_choice']) ? body['tool_choice'] : { type: 'auto' };
  const forced = choice['type'] === 'any' || choice['type'] === 'tool';
  // After tool results the model answers in text unless the caller insists on a tool.
  const lastContent = last?.['content'];
  const afterTool = Array.isArray(lastContent) && lastContent.length > 0 && lastContent.every((b) => isRecord(b) && b['type'] === 'tool_result');
  if (tools.length > 0 && choice['type'] !== 'none' && (forced || !afterTool)) {
    const wanted = choice['type'] === 'tool' ? choice['name'] : undefined;
    const tool = tools.find((t) => wanted === undefined || t['name'] === wanted);
    if (!tool) return { error: `tool_choice: tool '${String(wanted)}' not found in tools` };
    mode = 'tool';
    toolName = typeof tool['name'] === 'string' ? tool['name'] : 'tool';
    schema = isRecord(tool['input_schema']) ? tool['input_schema'] : { type: 'object', properties: {} };
  }
  return {
    model,
    texts,
    lastUserText,
    maxTokens,
    mode,
    schema,
    toolName,
    identitySource: JSON.stringify([model, system, messages, schema ?? null, toolName ?? null]),
    ...cachePrefixOf(tools, body['system'], messages),
  };
}

/**
 * The prompt up to its last `cache_control` breakpoint, in Anthropic's order (tools,
 * system, messages): what the cache holds. Nothing when no block carries one.
 */
function cachePrefixOf(tools: unknown[], system: unknown, messages: Record<string, unknown>[]): { cachePrefix?: string } {
  const blocks: Array<{ text: string; mark: boolean }> = tools.map((t) => ({ text: JSON.stringify(t), mark: isRecord(t) && t['cache_control'] !== undefined }));
  const add = (content: unknown): void => {
    if (typeof content === 'string') blocks.push({ text: content, mark: false });
    else if (Array.isArray(content)) for (const b of content) blocks.push({ text: textOf([b]), mark: isRecord(b) && b['cache_control'] !== undefined });
  };
  add(system);
  for (const m of messages) add(m['content']);
  const last = blocks.findLastIndex((b) => b.mark);
  if (last < 0) return {};
  return {
    cachePrefix: blocks
      .slice(0, last + 1)
      .map((b) => b.text)
      .join('\n'),
  };
}

function success(req: ChatRequest, answer: Answer, usage: Usage, id: string): unknown {
  let content: unknown[] = [{ type: 'text', text: answer.text }];
  let stop = answer.stop === 'length' ? 'max_tokens' : answer.stop === 'refusal' ? 'refusal' : 'end_turn';
  if (answer.stop === 'refusal') {
    content = [{ type: 'text', text: REFUSAL }];
  } else if (answer.asTool) {
    // tool_use.input must be an object; output that does not parse is sent as text, as a model would.
    let input: unknown;
    try {
      input = JSON.parse(answer.text);
    } catch {
      input = undefined;
    }
    if (isRecord(input)) {
      content = [{ type: 'tool_use', id: `toolu_${id.slice(0, 24)}`, name: req.toolName ?? 'tool', input }];
      if (stop === 'end_turn') stop = 'tool_use';
    }
  }
  return {
    id: `msg_${id.slice(0, 24)}`,
    type: 'message',
    role: 'assistant',
    model: req.model,
    content,
    stop_reason: stop,
    stop_sequence: null,
    // input_tokens excludes what was read from or written to the cache, as Anthropic reports it.
    usage: {
      input_tokens: usage.input - (usage.cachedInput ?? 0) - (usage.cacheWrite ?? 0),
      output_tokens: usage.output,
      cache_creation_input_tokens: usage.cacheWrite ?? 0,
      cache_read_input_tokens: usage.cachedInput ?? 0,
      service_tier: 'standard',
    },
  };
}

/** RFC 3339 time `ms` from now, rounded up to the second as Anthropic sends it. */
function rfc3339In(ms: number): string {
  const t = Math.ceil((Date.now() + Math.max(0, ms)) / 1000) * 1000;
  return new Date(t).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function rateHeaders(info: RateInfo): Record<string, string> {
  return {
    'anthropic-ratelimit-requests-limit': String(info.limitRequests),
    'anthropic-ratelimit-requests-remaining': String(info.remainingRequests),
    'anthropic-ratelimit-requests-reset': rfc3339In(info.resetRequestsMs),
    'anthropic-ratelimit-tokens-limit': String(info.limitTokens),
    'anthropic-ratelimit-tokens-remaining': String(info.remainingTokens),
    'anthropic-ratelimit-tokens-reset': rfc3339In(info.resetTokensMs),
    'anthropic-ratelimit-input-tokens-limit': String(info.limitTokens),
    'anthropic-ratelimit-input-tokens-remaining': String(info.remainingTokens),
    'anthropic-ratelimit-input-tokens-reset': rfc3339In(info.resetTokensMs),
  };
}

function err(status: number, type: string, message: string, requestId: string, headers: Record<string, string> = {}): Reply {
  return { status, headers, body: { type: 'error', error: { type, message }, request_id: requestId } };
}

function error(kind: ErrorKind, c: ErrorCtx): Reply {
  const rid = c.requestId;
  switch (kind) {
    case 'auth':
      return err(401, 'authentication_error', 'invalid x-api-key', rid);
    case 'bad_request':
      return err(400, 'invalid_request_error', c.message ?? 'Bad request', rid);
    case 'not_found':
      return err(404, 'not_found_error', c.message ?? 'Not found', rid);
    case 'model_not_found':
      return err(404, 'not_found_error', `model: ${c.model}`, rid);
    case 'context_length': {
      const p = c.promptTokens ?? 0;
      const m = c.maxTokens ?? 0;
      const n = c.contextWindow ?? 0;
      // Anthropic words the two cases differently: the prompt alone, or prompt plus max_tokens.
      const msg =
        p > n
          ? `prompt is too long: ${p} tokens > ${n} maximum`
          : `input length and \`max_tokens\` exceed context limit: ${p} + ${m} > ${n}, decrease input length or \`max_tokens\` and try again`;
      return err(400, 'invalid_request_error', msg, rid);
    }
    case 'rate_limit': {
      const ms = Math.max(1, Math.ceil(c.retryAfterMs ?? 1000));
      const info = c.rate;
      const what = c.limitedBy === 'tokens' ? `${info?.limitTokens ?? 'n/a'} input tokens per minute` : `${info?.limitRequests ?? 'n/a'} requests per minute`;
      const msg = `This request would exceed the rate limit for your organization (steadfast) of ${what}. For details, refer to: https://docs.claude.com/en/api/rate-limits. You can see the response headers for current usage. Please reduce the prompt length or the maximum tokens requested, or try again later.`;
      return err(429, 'rate_limit_error', msg, rid, { 'retry-after': String(Math.ceil(ms / 1000)), ...(info ? rateHeaders(info) : {}) });
    }
    case 'insufficient_quota':
      return err(400, 'invalid_request_error', 'Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.', rid);
    case 'server_error':
      return err(500, 'api_error', 'Internal server error', rid);
    case 'unavailable':
      return err(503, 'api_error', 'Service unavailable', rid);
    case 'overloaded':
      return err(529, 'overloaded_error', 'Overloaded', rid);
  }
}

/** The Anthropic dialect. */
export const anthropicDialect: Dialect = {
  api: 'anthropic',
  apiKeyOf(headers) {
    const key = headers['x-api-key'];
    if (typeof key === 'string') return key;
    const auth = headers['authorization'];
    return typeof auth === 'string' && auth.startsWith('Bearer ') ? auth.slice(7) : undefined;
  },
  parse,
  success,
  error,
  rateHeaders,
  requestIdHeader: 'request-id',
  modelList(models) {
    const data = models.map((m) => ({ type: 'model', id: m.id, display_name: m.id, created_at: '2025-01-01T00:00:00Z' }));
    return { data, has_more: false, first_id: data[0]?.id ?? null, last_id: data[data.length - 1]?.id ?? null };
  },
};
