import * as Anthropic from '@anthropic-ai/sdk';
import { ApplicationFailure, ApplicationFailureCategory, CancelledFailure } from '@temporalio/common';
import * as OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { MAX_RETRY_DELAY_MS, castToError, classifyError, classifyStatus } from '../../activities/classify.ts';
import { jitteredBackoff } from '../../src/shared/policies.ts';
import { parseOpenAIDuration, retryDelayFromHeaders } from '../../activities/retry-after.ts';
import { FailureType, NON_RETRYABLE_TYPES } from '../../src/shared/failures.ts';

const ctx = { provider: 'primary', model: 'gpt-4o-mini', env: {} };
const NOW = Date.parse('2025-06-01T12:00:00Z');

/** An OpenAI SDK error exactly as the SDK builds it from a response. */
function oai(status: number, error: Record<string, unknown>, headers: Record<string, string> = {}): OpenAI.APIError {
  return OpenAI.APIError.generate(status, { error }, undefined, new Headers(headers));
}
/** An Anthropic SDK error exactly as the SDK builds it from a response. */
function ant(status: number, type: string, message: string, headers: Record<string, string> = {}): Anthropic.APIError {
  return Anthropic.APIError.generate(status, { type: 'error', error: { type, message } }, undefined, new Headers(headers));
}

function classify(err: unknown, extra: Partial<Parameters<typeof classifyError>[1]> = {}): ApplicationFailure {
  return classifyError(err, { ...ctx, now: () => NOW, ...extra });
}

describe('classifyError: every class', () => {
  const cases: [string, unknown, FailureType][] = [
    ['openai 429 rate limit', oai(429, { message: 'Rate limit reached for gpt-4o-mini', type: 'requests', code: 'rate_limit_exceeded' }), FailureType.RateLimited],
    ['openai 429 insufficient_quota', oai(429, { message: 'You exceeded your current quota', type: 'insufficient_quota', code: 'insufficient_quota' }), FailureType.QuotaExhausted],
    ['openai 429 spend limit text', oai(429, { message: 'You have hit your monthly spend limit' }), FailureType.QuotaExhausted],
    ['openai 500', oai(500, { message: 'The server had an error', type: 'server_error' }), FailureType.ProviderUnavailable],
    ['openai 502', oai(502, { message: 'Bad gateway' }), FailureType.ProviderUnavailable],
    ['openai 503', oai(503, { message: 'The server is overloaded or not ready yet.' }), FailureType.ProviderUnavailable],
    ['openai 504', oai(504, { message: 'Gateway timeout' }), FailureType.ProviderUnavailable],
    ['openai 401', oai(401, { message: 'Incorrect API key provided', code: 'invalid_api_key' }), FailureType.AuthFailed],
    ['openai 403', oai(403, { message: 'Country not supported' }), FailureType.AuthFailed],
    ['openai 404 model', oai(404, { message: 'The model `gpt-9` does not exist', code: 'model_not_found' }), FailureType.ModelNotFound],
    ['openai 400 context', oai(400, { message: "This model's maximum context length is 4096 tokens.", code: 'context_length_exceeded' }), FailureType.ContextWindowExceeded],
    ['openai 400 other', oai(400, { message: "Invalid 'temperature'", param: 'temperature' }), FailureType.InvalidRequest],
    ['openai 422', oai(422, { message: 'Unprocessable' }), FailureType.InvalidRequest],
    ['openai 409', oai(409, { message: 'Conflict' }), FailureType.ProviderUnavailable],
    ['openai timeout', new OpenAI.APIConnectionTimeoutError(), FailureType.Timeout],
    [
      'openai connection',
      new OpenAI.APIConnectionError({ message: 'Connection error.', cause: Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }) }),
      FailureType.ConnectionFailed,
    ],
    ['anthropic 529', ant(529, 'overloaded_error', 'Overloaded'), FailureType.ProviderOverloaded],
    ['anthropic 429', ant(429, 'rate_limit_error', 'This request would exceed the rate limit'), FailureType.RateLimited],
    ['anthropic 400 credit', ant(400, 'invalid_request_error', 'Your credit balance is too low to access the Anthropic API.'), FailureType.QuotaExhausted],
    [
      'anthropic 400 usage limit',
      ant(400, 'invalid_request_error', 'You have reached your specified API usage limits. You will regain access on 2025-07-01.'),
      FailureType.QuotaExhausted,
    ],
    ['anthropic 402 billing', ant(402, 'billing_error', 'Payment required'), FailureType.QuotaExhausted],
    ['anthropic 400 prompt too long', ant(400, 'invalid_request_error', 'prompt is too long: 210000 tokens > 200000 maximum'), FailureType.ContextWindowExceeded],
    [
      'anthropic 400 input + max_tokens',
      ant(400, 'invalid_request_error', 'input length and `max_tokens` exceed context limit: 199000 + 4096 > 200000'),
      FailureType.ContextWindowExceeded,
    ],
    ['anthropic 413', ant(413, 'request_too_large', 'Request exceeds the maximum allowed number of bytes.'), FailureType.ContextWindowExceeded],
    ['anthropic 401', ant(401, 'authentication_error', 'invalid x-api-key'), FailureType.AuthFailed],
    ['anthropic 403', ant(403, 'permission_error', 'no access'), FailureType.AuthFailed],
    ['anthropic 404', ant(404, 'not_found_error', 'model: claude-9'), FailureType.ModelNotFound],
    ['anthropic 500', ant(500, 'api_error', 'Internal server error'), FailureType.ProviderUnavailable],
    ['anthropic 503', ant(503, 'api_error', 'Service unavailable'), FailureType.ProviderUnavailable],
    ['anthropic 408', ant(408, 'timeout_error', 'Request timeout'), FailureType.Timeout],
    ['anthropic timeout', new Anthropic.APIConnectionTimeoutError(), FailureType.Timeout],
    ['anthropic connection', new Anthropic.APIConnectionError({ message: 'Connection error.' }), FailureType.ConnectionFailed],
    [
      'fetch failed ECONNREFUSED',
      new TypeError('fetch failed', { cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }) }),
      FailureType.ConnectionFailed,
    ],
    ['AbortSignal.timeout', new DOMException('The operation was aborted due to timeout', 'TimeoutError'), FailureType.Timeout],
    ['unknown error', new RangeError('something odd'), FailureType.ProviderUnavailable],
    ['a thrown string', 'boom', FailureType.ProviderUnavailable],
  ];

  it.each(cases)('%s', (_name, err, type) => {
    const f = classify(err);
    expect(f).toBeInstanceOf(ApplicationFailure);
    expect(f.type).toBe(type);
    expect(f.nonRetryable).toBe(NON_RETRYABLE_TYPES.includes(type));
    expect(f.message.startsWith('primary gpt-4o-mini: ')).toBe(true);
    expect(f.details?.[0]).toMatchObject({ provider: 'primary', model: 'gpt-4o-mini' });
  });

  it('puts status, code and request id in the details, and marks 429 as benign', () => {
    const f = classify(
      oai(
        429,
        { message: 'slow down', code: 'rate_limit_exceeded', type: 'requests' },
        { 'x-request-id': 'req_1', 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-remaining-tokens': '900' },
      ),
    );
    expect(f.details?.[0]).toEqual({
      provider: 'primary',
      model: 'gpt-4o-mini',
      status: 429,
      code: 'rate_limit_exceeded',
      errorType: 'requests',
      requestId: 'req_1',
      remainingRequests: 0,
      remainingTokens: 900,
    });
    expect(f.category).toBe(ApplicationFailureCategory.BENIGN);
  });

  it('passes an ApplicationFailure through unchanged', () => {
    const original = ApplicationFailure.create({ type: FailureType.InvalidOutput, nonRetryable: true });
    expect(classify(original)).toBe(original);
  });

  it('rethrows cancellation as CancelledFailure, using the signal reason', () => {
    const ac = new AbortController();
    const reason = new CancelledFailure('CANCELLED');
    ac.abort(reason);
    expect(() => classify(new OpenAI.APIUserAbortError(), { signal: ac.signal })).toThrow(reason);
    expect(() => classify(new Anthropic.APIUserAbortError(), { signal: ac.signal })).toThrow(reason);
    expect(() => classify(reason)).toThrow(reason);
    // An abort that is not ours (signal still live) is a broken connection, not a cancellation.
    expect(classify(new OpenAI.APIUserAbortError(), { signal: new AbortController().signal }).type).toBe(FailureType.ConnectionFailed);
  });
});

describe('classifyError: Retry-After becomes nextRetryDelay', () => {
  const cases: [string, Record<string, string>, number][] = [
    ['retry-after-ms', { 'retry-after-ms': '1500', 'retry-after': '9' }, 1500],
    ['retry-after seconds', { 'retry-after': '7' }, 7000],
    ['retry-after fractional seconds', { 'retry-after': '0.25' }, 250],
    ['retry-after HTTP date', { 'retry-after': new Date(NOW + 30_000).toUTCString() }, 30_000],
    ['x-ratelimit-reset-requests 6m0s (capped)', { 'x-ratelimit-reset-requests': '6m0s' }, MAX_RETRY_DELAY_MS],
    ['x-ratelimit-reset-requests 1s', { 'x-ratelimit-reset-requests': '1s' }, 1000],
    ['x-ratelimit-reset-tokens 20ms', { 'x-ratelimit-reset-tokens': '20ms' }, 20],
    [
      'x-ratelimit exhausted limit wins',
      { 'x-ratelimit-reset-requests': '2s', 'x-ratelimit-remaining-requests': '5', 'x-ratelimit-reset-tokens': '1m3s', 'x-ratelimit-remaining-tokens': '0' },
      63_000,
    ],
    ['anthropic-ratelimit reset RFC 3339', { 'anthropic-ratelimit-requests-reset': new Date(NOW + 12_000).toISOString(), 'anthropic-ratelimit-requests-remaining': '0' }, 12_000],
    ['retry-after above the cap', { 'retry-after': '3600' }, MAX_RETRY_DELAY_MS],
  ];

  it.each(cases)('%s', (_name, headers, expected) => {
    const f = classify(oai(429, { message: 'Rate limit reached', code: 'rate_limit_exceeded' }, headers), { attempt: 3, random: () => 0.99 });
    expect(f.type).toBe(FailureType.RateLimited);
    expect(f.nextRetryDelay).toBe(expected);
  });

  it('honours Retry-After on 529 and 503 too', () => {
    expect(classify(ant(529, 'overloaded_error', 'Overloaded', { 'retry-after': '4' })).nextRetryDelay).toBe(4000);
    expect(classify(oai(503, { message: 'overloaded' }, { 'retry-after-ms': '250' })).nextRetryDelay).toBe(250);
  });

  it('without a header: jittered exponential backoff from the attempt and the policy', () => {
    const backoff = { initialIntervalMs: 1000, backoffCoefficient: 2, maximumIntervalMs: 60_000 };
    const at = (attempt: number, r: number) => classify(oai(500, { message: 'x' }), { attempt, backoff, random: () => r }).nextRetryDelay;
    expect(at(1, 0.5)).toBe(1000);
    expect(at(3, 0.5)).toBe(4000);
    expect(at(3, 0)).toBe(3200);
    expect(at(3, 0.999999)).toBe(4800);
    expect(at(20, 0.5)).toBe(60_000);
    expect(jitteredBackoff(2, {}, 0.5)).toBe(2000);
    // No attempt given: the RetryPolicy decides.
    expect(classify(oai(500, { message: 'x' })).nextRetryDelay).toBeUndefined();
  });

  it('never sets a delay on non-retryable failures', () => {
    const f = classify(oai(429, { message: 'quota', code: 'insufficient_quota' }, { 'retry-after': '5' }), { attempt: 1 });
    expect(f.nonRetryable).toBe(true);
    expect(f.nextRetryDelay).toBeUndefined();
  });
});

describe('classifyError: secrets', () => {
  it('never puts API keys or auth headers in the message or the cause', () => {
    const key = 'sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789';
    const env = { OPENAI_API_KEY: key, OTHER_TOKEN: 'tok_secret_value_42' };
    const err = oai(401, { message: `Incorrect API key provided: ${key}. Header was Authorization: Bearer ${key}; also tok_secret_value_42` });
    const f = classifyError(err, { ...ctx, env });
    const everything = `${f.message}\n${f.cause?.message}\n${f.cause?.stack}\n${JSON.stringify(f.details)}`;
    expect(everything).not.toContain(key);
    expect(everything).not.toContain('sk-proj');
    expect(everything).not.toContain('tok_secret_value_42');
    expect(f.message).toContain('[redacted]');
    expect(f.cause?.name).toBe('AuthenticationError');
  });

  it('scrubs key patterns even when they are not in the env', () => {
    const f = classify(new Error('failed with x-api-key: sk-ant-api03-zzzzzzzzzzzzzzzz and Bearer abc.def.ghi'));
    expect(f.message).not.toMatch(/sk-ant|abc\.def\.ghi/);
  });
});

describe('helpers', () => {
  it('classifyStatus covers the status table', () => {
    expect(classifyStatus(529, {})).toBe(FailureType.ProviderOverloaded);
    expect(classifyStatus(418, {})).toBe(FailureType.InvalidRequest);
    expect(classifyStatus(599, {})).toBe(FailureType.ProviderUnavailable);
  });

  it('parses OpenAI reset durations', () => {
    expect(parseOpenAIDuration('6m0s')).toBe(360_000);
    expect(parseOpenAIDuration('1s')).toBe(1000);
    expect(parseOpenAIDuration('20ms')).toBe(20);
    expect(parseOpenAIDuration('1h2m3.5s')).toBe(3_723_500);
    expect(parseOpenAIDuration('soon')).toBeUndefined();
    expect(retryDelayFromHeaders(new Headers({ 'retry-after': 'garbage' }), NOW)).toBeUndefined();
    expect(retryDelayFromHeaders({ 'Retry-After-Ms': '42' }, NOW)).toBe(42);
  });

  it('castToError normalises anything', () => {
    expect(castToError('x').message).toBe('x');
    expect(castToError({ message: 'm', name: 'N' })).toMatchObject({ message: 'm', name: 'N' });
    expect(castToError({ a: 1 }).message).toBe('{"a":1}');
    const e = new Error('same');
    expect(castToError(e)).toBe(e);
  });
});
