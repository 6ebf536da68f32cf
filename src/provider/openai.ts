/**
 * The OpenAI Chat Completions wire format (`POST /v1/chat/completions`), with the
 * error bodies and rate-limit headers openai-node reads: `error.code`/`type`/`param`,
 * `retry-after-ms` before `retry-after`, `x-ratelimit-*-requests|tokens`.
 */
import type { JsonSchema } from './answers.ts';
import { goDuration, isRecord, positiveInt, textOf } from './dialect.ts';
import type { Answer, ChatRequest, Dialect, ErrorCtx, ErrorKind, Reply, Usage } from './dialect.ts';

const REFUSAL = "I'm sorry, but I can't help with that request.";

function parse(body: unknown): ChatRequest | { error: string; param?: string } {
  if (!isRecord(body)) return { error: 'The request body must be a JSON object.' };
  const model = body['model'];
  if (typeof model !== 'string' || !model) return { error: 'you must provide a model parameter', param: 'model' };
  const messages = body['messages'];
  if (!Array.isArray(messages) || messages.length === 0 || !messages.every(isRecord)) {
    return { error: "Missing required parameter: 'messages'.", param: 'messages' };
  }
  if (body['stream'] === true) return { error: 'Streaming is not supported by the Steadfast fault provider.', param: 'stream' };
  const maxTokens = positiveInt(body['max_completion_tokens'] ?? body['max_tokens'], body['max_completion_tokens'] !== undefined ? 'max_completion_tokens' : 'max_tokens');
  if (typeof maxTokens === 'object') return maxTokens;

  const texts = messages.map((m) => textOf(m['content']));
  const userIdx = messages.findLastIndex((m) => m['role'] === 'user');
  const lastUserText = texts[userIdx >= 0 ? userIdx : texts.length - 1] ?? '';

  let mode: ChatRequest['mode'] = 'text';
  let schema: JsonSchema | undefined;
  let toolName: string | undefined;
  const rf = body['response_format'];
  if (isRecord(rf) && rf['type'] === 'json_schema') {
    const js = rf['json_schema'];
    if (!isRecord(js) || !isRecord(js['schema'])) return { error: "Missing required parameter: 'response_format.json_schema.schema'.", param: 'response_format' };
    mode = 'schema';
    schema = js['schema'];
  } else if (isRecord(rf) && rf['type'] === 'json_object') {
    mode = 'json';
  }

  const tools = Array.isArray(body['tools']) ? body['tools'].filter(isRecord) : [];
  const choice = body['tool_choice'];
  const forced = choice === 'required' || isRecord(choice);
  // After a tool result the model answers in text unless the caller insists on a tool.
  const afterTool = messages[messages.length - 1]?.['role'] === 'tool';
  if (tools.length > 0 && choice !== 'none' && (forced || !afterTool)) {
    const wanted = isRecord(choice) && isRecord(choice['function']) ? choice['function']['name'] : undefined;
    const tool = tools.find((t) => isRecord(t['function']) && (wanted === undefined || t['function']['name'] === wanted));
    if (!tool || !isRecord(tool['function'])) return { error: `Tool '${String(wanted)}' not found in 'tools'.`, param: 'tool_choice' };
    const fn = tool['function'];
    mode = 'tool';
    toolName = typeof fn['name'] === 'string' ? fn['name'] : 'tool';
    schema = isRecord(fn['parameters']) ? fn['parameters'] : { type: 'object', properties: {} };
  }
  return {
    model,
    texts,
    lastUserText,
    maxTokens,
    mode,
    schema,
    toolName,
    identitySource: JSON.stringify([model, messages, schema ?? null, toolName ?? null]),
    // Automatic prompt caching: the leading system message (and the tools before it) is the shared prefix.
    ...(messages[0]?.['role'] === 'system' || messages[0]?.['role'] === 'developer' ? { cachePrefix: JSON.stringify([tools, texts[0]]) } : {}),
  };
}

function success(req: ChatRequest, answer: Answer, usage: Usage, id: string): unknown {
  const message: Record<string, unknown> = { role: 'assistant', content: answer.text, refusal: null, annotations: [] };
  let finish = answer.stop === 'length' ? 'length' : 'stop';
  if (answer.stop === 'refusal') {
    // Both refusal signals: the refusal field (structured outputs) and content_filter.
    message['content'] = null;
    message['refusal'] = REFUSAL;
    finish = 'content_filter';
  } else if (answer.asTool) {
    message['content'] = null;
    message['tool_calls'] = [{ id: `call_${id.slice(0, 24)}`, type: 'function', function: { name: req.toolName ?? 'tool', arguments: answer.text } }];
    if (finish === 'stop') finish = 'tool_calls';
  }
  return {
    id: `chatcmpl-${id.slice(0, 29)}`,
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: req.model,
    choices: [{ index: 0, message, logprobs: null, finish_reason: finish }],
    usage: {
      prompt_tokens: usage.input,
      completion_tokens: usage.output,
      total_tokens: usage.input + usage.output,
      prompt_tokens_details: { cached_tokens: usage.cachedInput ?? 0, audio_tokens: 0 },
      completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
    },
    service_tier: 'default',
    system_fingerprint: 'fp_steadfast',
  };
}

function rateHeaders(info: NonNullable<ErrorCtx['rate']>): Record<string, string> {
  return {
    'x-ratelimit-limit-requests': String(info.limitRequests),
    'x-ratelimit-remaining-requests': String(info.remainingRequests),
    'x-ratelimit-reset-requests': goDuration(info.resetRequestsMs),
    'x-ratelimit-limit-tokens': String(info.limitTokens),
    'x-ratelimit-remaining-tokens': String(info.remainingTokens),
    'x-ratelimit-reset-tokens': goDuration(info.resetTokensMs),
  };
}

function err(status: number, message: string, type: string, code: string | null, param: string | null = null, headers: Record<string, string> = {}): Reply {
  return { status, headers, body: { error: { message, type, param, code } } };
}

function error(kind: ErrorKind, c: ErrorCtx): Reply {
  switch (kind) {
    case 'auth':
      return err(401, 'Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.', 'invalid_request_error', 'invalid_api_key');
    case 'bad_request':
      return err(400, c.message ?? 'Bad request.', 'invalid_request_error', null, c.param ?? null);
    case 'not_found':
      return err(404, c.message ?? 'Not found.', 'invalid_request_error', null);
    case 'model_not_found':
      return err(404, `The model \`${c.model}\` does not exist or you do not have access to it.`, 'invalid_request_error', 'model_not_found');
    case 'context_length': {
      const p = c.promptTokens ?? 0;
      const m = c.maxTokens ?? 0;
      const msg = `This model's maximum context length is ${c.contextWindow} tokens. However, you requested ${p + m} tokens (${p} in the messages, ${m} in the completion). Please reduce the length of the messages or completion.`;
      return err(400, msg, 'invalid_request_error', 'context_length_exceeded', 'messages');
    }
    case 'rate_limit': {
      const ms = Math.max(1, Math.ceil(c.retryAfterMs ?? 1000));
      const by = c.limitedBy ?? 'requests';
      const info = c.rate;
      const [unit, limit, used] =
        by === 'requests'
          ? ['requests per min (RPM)', info?.limitRequests, info ? info.limitRequests - info.remainingRequests : undefined]
          : ['tokens per min (TPM)', info?.limitTokens, info ? info.limitTokens - info.remainingTokens : undefined];
      const requested = by === 'requests' ? 1 : (c.requested ?? 0);
      const msg = `Rate limit reached for ${c.model} in organization org-steadfast on ${unit}: Limit ${limit ?? 'n/a'}, Used ${used ?? 'n/a'}, Requested ${requested}. Please try again in ${goDuration(ms)}. Visit https://platform.openai.com/account/rate-limits to learn more.`;
      const headers = { 'retry-after-ms': String(ms), 'retry-after': String(Math.ceil(ms / 1000)), ...(info ? rateHeaders(info) : {}) };
      return err(429, msg, by, 'rate_limit_exceeded', null, headers);
    }
    case 'insufficient_quota':
      return err(
        429,
        'You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.',
        'insufficient_quota',
        'insufficient_quota',
      );
    case 'server_error':
      return err(500, 'The server had an error while processing your request. Sorry about that!', 'server_error', null);
    case 'unavailable':
    case 'overloaded':
      return err(503, 'The server is overloaded or not ready yet.', 'server_error', null);
  }
}

/** The OpenAI dialect. */
export const openaiDialect: Dialect = {
  api: 'openai',
  apiKeyOf(headers) {
    const auth = headers['authorization'];
    return typeof auth === 'string' && auth.startsWith('Bearer ') ? auth.slice(7) : undefined;
  },
  parse,
  success,
  error,
  rateHeaders,
  requestIdHeader: 'x-request-id',
  modelList(models) {
    return { object: 'list', data: models.map((m) => ({ id: m.id, object: 'model', created: 1_700_000_000, owned_by: 'steadfast' })) };
  },
};
