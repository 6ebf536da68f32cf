/**
 * The one place where a provider error becomes a Steadfast failure type.
 *
 * Like openai-node's `APIError.generate`, it maps HTTP statuses (plus the
 * body's code/type where a status is ambiguous) to a named class; here the
 * class is an `ApplicationFailure.type` from `src/shared/failures.ts`, non-retryable
 * when a retry of the same request cannot help, with `nextRetryDelay` taken
 * from the provider's Retry-After / rate-limit headers (capped) or, when it
 * sent none, a jittered exponential backoff.
 */
import * as Anthropic from '@anthropic-ai/sdk';
import { ApplicationFailure, ApplicationFailureCategory, CancelledFailure } from '@temporalio/common';
import * as OpenAI from 'openai';
import { FailureType, NON_RETRYABLE_TYPES } from '../src/shared/failures.ts';
import { MAX_RETRY_DELAY_MS, jitteredBackoff, type BackoffPolicy } from '../src/shared/policies.ts';
import { retryDelayFromHeaders, headerValue, type HeaderSource } from './retry-after.ts';
import { scrubSecrets } from './scrub.ts';

export { MAX_RETRY_DELAY_MS };

/** Status code to failure type where the status alone decides (see {@link classifyStatus} for the rest). */
export const STATUS_TYPES: Readonly<Record<number, FailureType>> = {
  400: FailureType.InvalidRequest,
  401: FailureType.AuthFailed,
  402: FailureType.QuotaExhausted,
  403: FailureType.AuthFailed,
  404: FailureType.ModelNotFound,
  408: FailureType.Timeout,
  409: FailureType.ProviderUnavailable,
  413: FailureType.ContextWindowExceeded,
  422: FailureType.InvalidRequest,
  429: FailureType.RateLimited,
  500: FailureType.ProviderUnavailable,
  502: FailureType.ProviderUnavailable,
  503: FailureType.ProviderUnavailable,
  504: FailureType.ProviderUnavailable,
  529: FailureType.ProviderOverloaded,
};

/** Body codes/messages that turn a 429 into a permanent quota failure (no retry fixes an empty balance). */
const QUOTA = /insufficient_quota|billing|quota|spend(?:ing)? limit|credit balance|usage limit/i;
/** Body codes/messages of a prompt that is longer than the model's window. */
const CONTEXT = /context_length_exceeded|context length|context window|context limit|prompt is too long|maximum context|too many tokens|input is too long|string_above_max_length/i;

/**
 * The failure type of an HTTP error: status first, refined by the body's
 * `code` / `type` / message where one status covers several causes
 * (429 rate limit vs. quota; 400 bad request vs. context overflow).
 */
export function classifyStatus(status: number, body: { code?: string | null; type?: string | null; message?: string }): FailureType {
  const text = `${body.code ?? ''} ${body.type ?? ''} ${body.message ?? ''}`;
  if (body.type === 'overloaded_error' || status === 529) return FailureType.ProviderOverloaded;
  if (status === 429 || body.type === 'rate_limit_error') return QUOTA.test(text) ? FailureType.QuotaExhausted : FailureType.RateLimited;
  // Anthropic reports an empty prepaid balance or a reached spend limit as a 400
  // ("credit balance is too low", "reached your specified API usage limits").
  if (body.type === 'billing_error' || (status === 400 && /credit balance|usage limit/i.test(text))) return FailureType.QuotaExhausted;
  if ((status === 400 || status === 413 || status === 422) && CONTEXT.test(text)) return FailureType.ContextWindowExceeded;
  const mapped = STATUS_TYPES[status];
  if (mapped) return mapped;
  if (status >= 500) return FailureType.ProviderUnavailable;
  return FailureType.InvalidRequest;
}

/** Extra context for {@link classifyError}; only `provider` and `model` are required. */
export interface ClassifyContext {
  provider: string;
  model: string;
  /** Current activity attempt (1-based); with it, retryable failures get a jittered `nextRetryDelay`. */
  attempt?: number;
  /** The activity's retry policy in ms, for the jittered backoff. @default Temporal's (1 s, x2, 100 s) */
  backoff?: BackoffPolicy;
  /** The activity's cancellation signal: an abort while it is aborted is a cancellation, not a failure. */
  signal?: AbortSignal;
  /** Extra literal secrets to scrub from the message. */
  secrets?: readonly string[];
  env?: NodeJS.ProcessEnv;
  /** @default Date.now */
  now?: () => number;
  /** @default Math.random */
  random?: () => number;
}

/** First element of the failure's `details`: what a post-mortem or a circuit breaker wants to know. */
export interface ProviderErrorDetails {
  provider: string;
  model: string;
  status?: number;
  code?: string;
  errorType?: string;
  requestId?: string;
  /** Delay the provider asked for (uncapped), when it sent one. */
  retryAfterMs?: number;
  remainingRequests?: number;
  remainingTokens?: number;
}

/** Normalises anything thrown into an `Error` (openai-node `castToError`), never via `as Error`. */
export function castToError(err: unknown): Error {
  if (err instanceof Error) return err;
  if (typeof err === 'object' && err !== null) {
    const rec = err as Record<string, unknown>;
    const e = new Error(typeof rec['message'] === 'string' ? rec['message'] : safeJson(err));
    if (typeof rec['name'] === 'string') e.name = rec['name'];
    return e;
  }
  return new Error(String(err));
}

function safeJson(v: unknown): string {
  try {
    return JSON.stringify(v);
  } catch {
    return String(v);
  }
}

const isSdkError = (e: unknown): e is OpenAI.APIError | Anthropic.APIError => e instanceof OpenAI.APIError || e instanceof Anthropic.APIError;

function isAbort(e: Error): boolean {
  return e instanceof OpenAI.APIUserAbortError || e instanceof Anthropic.APIUserAbortError || e.name === 'AbortError';
}

function networkCode(e: Error): string | undefined {
  for (let cur: unknown = e, depth = 0; cur && depth < 5; cur = (cur as { cause?: unknown }).cause, depth++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === 'string' && /^(E[A-Z]+|UND_ERR_[A-Z_]+)$/.test(code)) return code;
  }
  return undefined;
}

/**
 * Maps any provider error to an `ApplicationFailure` with a Steadfast type.
 * An `ApplicationFailure` passes through unchanged (already classified).
 *
 * @throws CancelledFailure when `err` is the abort caused by the activity's cancellation:
 *   it must propagate as a cancellation, not be reported as a failure.
 */
export function classifyError(err: unknown, ctx: ClassifyContext): ApplicationFailure {
  if (err instanceof ApplicationFailure) return err;
  if (err instanceof CancelledFailure) throw err;
  const e = castToError(err);
  if (isAbort(e) && (ctx.signal === undefined || ctx.signal.aborted)) {
    const reason: unknown = ctx.signal?.reason;
    throw reason instanceof CancelledFailure ? reason : new CancelledFailure('activity cancelled', undefined, e);
  }
  const now = (ctx.now ?? Date.now)();
  let type: FailureType;
  const details: ProviderErrorDetails = { provider: ctx.provider, model: ctx.model };
  let headers: HeaderSource | undefined;
  let readable: string | undefined;

  if (e instanceof OpenAI.APIConnectionTimeoutError || e instanceof Anthropic.APIConnectionTimeoutError || e.name === 'TimeoutError') {
    type = FailureType.Timeout;
  } else if (e instanceof OpenAI.APIConnectionError || e instanceof Anthropic.APIConnectionError || isAbort(e) || networkCode(e)) {
    type = FailureType.ConnectionFailed;
    const code = networkCode(e);
    if (code) details.code = code;
  } else if (isSdkError(e) && typeof e.status === 'number') {
    const body = sdkBody(e);
    type = classifyStatus(e.status, body);
    headers = e.headers;
    Object.assign(details, dropUndefined({ status: e.status, code: body.code ?? undefined, errorType: body.type ?? undefined, requestId: e.requestID ?? undefined }));
    readable = readableMessage(e.status, body);
  } else {
    // Anything else (a 2xx body that is not JSON, a proxy page, an SDK surprise) is
    // treated as a transient provider fault: bounded retries, then the next tier.
    type = FailureType.ProviderUnavailable;
  }

  const nonRetryable = NON_RETRYABLE_TYPES.includes(type);
  const headerDelay = retryDelayFromHeaders(headers, now);
  if (headerDelay !== undefined) details.retryAfterMs = headerDelay;
  const remReq = headerValue(headers, 'x-ratelimit-remaining-requests') ?? headerValue(headers, 'anthropic-ratelimit-requests-remaining');
  const remTok = headerValue(headers, 'x-ratelimit-remaining-tokens') ?? headerValue(headers, 'anthropic-ratelimit-tokens-remaining');
  if (remReq !== undefined && !Number.isNaN(Number(remReq))) details.remainingRequests = Number(remReq);
  if (remTok !== undefined && !Number.isNaN(Number(remTok))) details.remainingTokens = Number(remTok);

  let nextRetryDelay: number | undefined;
  if (!nonRetryable) {
    if (headerDelay !== undefined && headerDelay > 0) nextRetryDelay = Math.min(headerDelay, MAX_RETRY_DELAY_MS);
    else if (ctx.attempt !== undefined) nextRetryDelay = jitteredBackoff(ctx.attempt, ctx.backoff ?? {}, (ctx.random ?? Math.random)());
  }

  const scrub = (s: string): string => scrubSecrets(s, ctx.secrets, ctx.env);
  const message = scrub(`${ctx.provider} ${ctx.model}: ${readable ?? (e.message || e.name)}`);
  // The cause is serialised into history with its message and stack: send a scrubbed copy, never the SDK object.
  const cause = new Error(scrub(e.message));
  cause.name = e.constructor?.name && e.constructor.name !== 'Error' ? e.constructor.name : e.name;
  cause.stack = e.stack === undefined ? undefined : scrub(e.stack);
  return ApplicationFailure.create({
    type,
    message,
    nonRetryable,
    details: [details],
    cause,
    ...(nextRetryDelay !== undefined ? { nextRetryDelay } : {}),
    // 429s are expected under load: logged at debug level by the worker, not as errors.
    ...(type === FailureType.RateLimited ? { category: ApplicationFailureCategory.BENIGN } : {}),
  });
}

/** Longest provider message kept in a failure message. */
const MAX_PROVIDER_MESSAGE = 500;

/** The `code`, `type` and the provider's own message of an SDK error body, for either vendor. */
function sdkBody(e: OpenAI.APIError | Anthropic.APIError): { code?: string | null; type?: string | null; message?: string } {
  if (e instanceof Anthropic.APIError) return { code: e.errorCode, type: e.type, message: e.apiMessage ?? stripStatus(e.message) };
  const err: unknown = e.error;
  const own = typeof err === 'object' && err !== null && typeof (err as { message?: unknown }).message === 'string' ? (err as { message: string }).message : undefined;
  return { code: e.code, type: e.type, message: own ?? stripStatus(e.message) };
}

/** The SDKs prefix the status to the message (`401 {...}`); the status is reported on its own. */
function stripStatus(message: string): string {
  return message.replace(/^\d{3}\s+/, '');
}

/**
 * What a reviewer reads: the provider's own message, then the HTTP status and the
 * error type/code (`Incorrect API key provided (HTTP 401, invalid_request_error, invalid_api_key)`),
 * instead of the SDK's `<status> <escaped JSON body>`.
 */
export function readableMessage(status: number, body: { code?: string | null; type?: string | null; message?: string }): string {
  let text = (body.message ?? '').replace(/\s+/g, ' ').trim() || 'no message';
  if (text.length > MAX_PROVIDER_MESSAGE) text = `${text.slice(0, MAX_PROVIDER_MESSAGE)}...`;
  const tags = [`HTTP ${status}`, body.type, body.code].filter((t): t is string => typeof t === 'string' && t !== '');
  return `${text} (${[...new Set(tags)].join(', ')})`;
}

function dropUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
