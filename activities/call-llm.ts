/**
 * The `callLlm` activity: ONE attempt of ONE tier. Temporal retries it per the
 * tier's RetryPolicy; the workflow moves to the next tier when it gives up.
 *
 * Per attempt: the timeout grows (`provider.timeout * timeoutGrowth^(attempt-1)`),
 * the call heartbeats while it waits (so cancellation and heartbeat timeouts
 * reach it), errors are classified into failure types, and the answer is
 * checked: refused, cut at max tokens, or not matching the schema are
 * non-retryable failures that carry the text and usage for the workflow.
 */
import { Context } from '@temporalio/activity';
import { WorkflowNotFoundError } from '@temporalio/client';
import type { RetryPolicy } from '@temporalio/common';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { errorMessage, FailureType } from '../src/shared/failures.ts';
import { CANCELLED_OUTCOME, steadfastMetrics } from './metrics.ts';
import type { LlmCallRecord } from './metrics.ts';
import { costOf, tierName } from '../src/shared/tiers.ts';
import type { EndpointInfo, InvalidOutputDetails, LlmRequest, LlmResult, StoredSummary, TokenUsage } from '../src/shared/types.ts';
import { classifyError } from './classify.ts';
import { createAdapter } from './llm.ts';
import { resolveEndpoint } from './endpoints.ts';
import type { EndpointPolicy } from './endpoints.ts';
import type { AdapterOptions, ChatAdapter, RawCompletion } from './llm.ts';
import { attemptTimeoutMs } from '../src/shared/policies.ts';
import type { BackoffPolicy } from '../src/shared/policies.ts';
import { scrubSecrets } from './scrub.ts';
import { compileSchema, parseJsonOutput, validateOutput } from '../src/shared/validate.ts';
import { redactValues, redactValuesDeep } from '../src/shared/secrets.ts';
import { callDoneSignal } from '../src/shared/messages.ts';
import { cachedResult, cacheEntryOf, requestCacheKey } from './cache.ts';
import type { ResponseCache } from './cache.ts';
import { callShedSignal, callSlotUpdate } from '../src/shared/limiter.ts';
import type { PersistRequest } from './index.ts';

/** Heartbeat at most this often while waiting for a provider (ms). */
export const HEARTBEAT_EVERY_MS = 5_000;

/** A fast run's own write of its row gives up this long before the call's start-to-close timeout. */
const PERSIST_MARGIN_MS = 3_000;

/**
 * Largest answer (text, refusal and parsed JSON, UTF-8 bytes) an attempt may return.
 * The answer travels in the activity result, the item's history, the repair prompt and
 * the persisted row, each a payload under Temporal's 2 MB limit, so the budget stays
 * well below it. @default 262144 (256 KiB: about 64k output tokens)
 */
export const DEFAULT_MAX_ANSWER_BYTES = 256 * 1024;

/** What `callLlm` needs from the activity dependencies. */
export interface CallLlmDeps {
  /** Where tiers may go and which keys they may carry (activities/endpoints.ts). */
  policy: EndpointPolicy;
  env: NodeJS.ProcessEnv;
  fetch?: typeof fetch;
  /** @default DEFAULT_MAX_ANSWER_BYTES */
  maxAnswerBytes?: number;
  /** The response cache (activities/cache.ts); used only for requests that ask for it (`req.cache`). */
  cache?: ResponseCache;
  /** The item's stored row, for requests that ask `ifNotStored`. */
  storedRow?: (batchId: string, itemId: string) => Promise<StoredSummary | null>;
  /** Writes an item's row, for requests that ask `persistRow` (the `persistResult` activity's function). */
  persist?: (rec: PersistRequest) => Promise<void>;
}

/** The activity's retry policy in ms, for the jittered backoff (the server sends durations decompiled to ms). */
function backoffOf(policy: RetryPolicy | undefined): BackoffPolicy {
  const ms = (d: unknown): number | undefined => (typeof d === 'number' && Number.isFinite(d) ? d : undefined);
  const initialIntervalMs = ms(policy?.initialInterval);
  const maximumIntervalMs = ms(policy?.maximumInterval);
  return {
    ...(initialIntervalMs !== undefined ? { initialIntervalMs } : {}),
    ...(policy?.backoffCoefficient !== undefined ? { backoffCoefficient: policy.backoffCoefficient } : {}),
    ...(maximumIntervalMs !== undefined ? { maximumIntervalMs } : {}),
  };
}

/** How long the best-effort slot release may take before it is abandoned (ms). */
const RELEASE_DEADLINE_MS = 5_000;

/**
 * Tells the batch that this item's call succeeded, so it starts the next item while this one
 * persists and reports (a workflow task sooner than the item's own report). Best effort and
 * not awaited: the activity's result never waits for it (a worker that dies meanwhile would
 * otherwise lose an answer it already has), and when it fails the item's report frees the slot.
 */
function releaseSlot(ctx: Context, batchWorkflowId: string, itemId: string, latencyMs?: number): void {
  const started = Date.now();
  const warn = (msg: string, extra: Record<string, unknown> = {}): void => ctx.log.warn(msg, { batchWorkflowId, itemId, ms: Date.now() - started, ...extra });
  let client;
  try {
    client = ctx.client;
  } catch {
    return; // no client (an activity run outside a worker): the item's report frees the slot
  }
  client
    .withDeadline(started + RELEASE_DEADLINE_MS, () =>
      client.workflow.getHandle(batchWorkflowId).signal(callDoneSignal, { itemId, ...(latencyMs !== undefined ? { latencyMs } : {}) }),
    )
    .then(
      () => Date.now() - started > 1_000 && warn('slow slot release'),
      (err: unknown) => {
        const error = errorMessage(err);
        // The batch already finished (the last items' releases can arrive after it): nothing to free.
        if (err instanceof WorkflowNotFoundError) ctx.log.debug('batch already finished; no slot to release', { batchWorkflowId, itemId, error });
        else warn('could not release the slot early; the item report will', { error });
      },
    );
}

/** Failure types that say the provider shed the call (adaptive concurrency and the shared limiter back off on them). */
const SHED_TYPES: readonly string[] = [FailureType.RateLimited, FailureType.ProviderOverloaded, FailureType.ProviderUnavailable];

/** Tells the batch that the provider shed this attempt. Best effort and not awaited, like {@link releaseSlot}. */
function reportShed(ctx: Context, batchWorkflowId: string, itemId: string, type: string): void {
  let client;
  try {
    client = ctx.client;
  } catch {
    return;
  }
  client
    .withDeadline(Date.now() + RELEASE_DEADLINE_MS, () => client.workflow.getHandle(batchWorkflowId).signal(callShedSignal, { itemId, type }))
    .catch((err: unknown) => ctx.log.debug('could not report a shed call to the batch', { batchWorkflowId, itemId, error: errorMessage(err) }));
}

/** Heartbeats now and every few seconds until the returned function is called. */
function keepAlive(ctx: Context): () => void {
  const hb = ctx.info.heartbeatTimeoutMs;
  const every = hb ? Math.max(200, Math.min(HEARTBEAT_EVERY_MS, Math.floor(hb / 3))) : HEARTBEAT_EVERY_MS;
  const started = Date.now();
  ctx.heartbeat({ waitingMs: 0 });
  const timer = setInterval(() => ctx.heartbeat({ waitingMs: Date.now() - started }), every);
  return () => clearInterval(timer);
}

/** The failure with the item's secret values redacted from its message and cause (a provider may echo the prompt). */
function redactFailure(f: ApplicationFailure, secrets: readonly string[]): ApplicationFailure {
  if (secrets.length === 0) return f;
  const cause = f.cause
    ? Object.assign(new Error(redactValues(f.cause.message, secrets)), { name: f.cause.name, stack: f.cause.stack && redactValues(f.cause.stack, secrets) })
    : undefined;
  return ApplicationFailure.create({
    type: f.type ?? FailureType.Unknown,
    message: redactValues(f.message, secrets),
    nonRetryable: f.nonRetryable ?? false,
    details: redactValuesDeep(f.details ?? [], secrets),
    ...(f.nextRetryDelay !== undefined ? { nextRetryDelay: f.nextRetryDelay } : {}),
    ...(cause ? { cause } : {}),
  });
}

function outputFailure(type: FailureType, message: string, details: InvalidOutputDetails): ApplicationFailure {
  return ApplicationFailure.create({ type, message, nonRetryable: true, details: [details] });
}

/** Builds the `callLlm` activity; adapters (and their HTTP connections) are reused per endpoint. */
export function makeCallLlm(deps: CallLlmDeps): (req: LlmRequest) => Promise<LlmResult> {
  const adapters = new Map<string, ChatAdapter>();
  const adapterOpts: AdapterOptions = {
    ...(deps.fetch ? { fetch: deps.fetch } : {}),
    onLooseSchema: (reason) => Context.current().log.warn('output schema sent with strict: false (outside OpenAI strict mode); the answer is validated here', { reason }),
  };
  const maxAnswerBytes = deps.maxAnswerBytes ?? DEFAULT_MAX_ANSWER_BYTES;

  return async function callLlm(req: LlmRequest): Promise<LlmResult> {
    try {
      return await callOnce(req);
    } catch (err: unknown) {
      // The workflow counts every call a failed tier made (retries included) from the last attempt's number.
      if (err instanceof ApplicationFailure) stampAttempt(err, Context.current().info.attempt);
      throw err;
    }
  };

  async function callOnce(req: LlmRequest): Promise<LlmResult> {
    const ctx = Context.current();
    const began = Date.now();
    const { attempt: run, startToCloseTimeoutMs } = ctx.info;
    // The tier's attempt: calls of this item on this tier before this activity count (timeouts grow, backoff, metrics).
    const attempt = run + (req.priorAttempts ?? 0);
    if (req.ifNotStored && deps.storedRow) {
      // A re-run or reset of the batch: an item with a row is counted by the batch, never called again.
      const stored = await deps.storedRow(req.batchId, req.itemId);
      if (stored)
        return { text: '', finishReason: 'stored', usage: { inputTokens: 0, outputTokens: 0 }, costUsd: 0, model: req.provider.model, latencyMs: 0, attempt: run, stored };
    }
    const p = req.provider;
    const tier = tierName(p, req.tier);
    // The model may quote its input: the item's secret values never leave in an answer or a failure.
    const secrets = req.secretValues ?? [];
    const schema = req.output.format === 'json' ? req.output.schema : undefined;
    if (schema) {
      try {
        compileSchema(schema);
      } catch (err: unknown) {
        throw ApplicationFailure.create({ type: FailureType.InvalidSpec, message: errorMessage(err), nonRetryable: true });
      }
    }
    let ep;
    try {
      ep = resolveEndpoint(p, req.tier, deps.policy, deps.env);
    } catch (err: unknown) {
      const type = err instanceof ApplicationFailure ? err.type : undefined;
      steadfastMetrics(ctx.metricMeter).llmCall({
        provider: tier,
        model: p.model,
        tier: req.tier,
        outcome: type ?? FailureType.Unknown,
        attempt,
        latencyMs: 0,
        ...(req.step !== undefined ? { step: req.step } : {}),
      });
      ctx.log.warn('tier not callable on this worker', { tier, model: p.model, type, error: err instanceof Error ? err.message : String(err) });
      throw err;
    }
    const endpoint = { vendor: ep.vendor, host: ep.host, simulated: ep.simulated };
    const cached = await cacheLookup(ctx, req, endpoint);
    if (cached.hit) return cached.hit;
    const key = `${ep.kind}|${ep.baseURL ?? ''}|${ep.keyEnv ?? ''}|${ep.apiKey}`;
    let adapter = adapters.get(key);
    if (!adapter) adapters.set(key, (adapter = createAdapter(ep, adapterOpts)));

    // A shared-limiter permit is a send time: the first attempt waits for it on the worker's clock,
    // which is precise where workflow timers are not, so the provider sees evenly spaced requests.
    // The other calls of a paced item ask the batch for theirs first (a permit, room under its limit).
    const asked = Date.now();
    const at = run === 1 && req.notBefore !== undefined ? req.notBefore : req.pace && run >= req.pace.fromAttempt ? await askSlot(ctx, req, attempt) : null;
    if (at !== null) await waitForSlot(ctx, at);
    const waited = Date.now() - asked;

    // The SDK timeout must fire before Temporal's start-to-close, so the failure is a classified Timeout.
    let timeoutMs = attemptTimeoutMs(p, attempt);
    if (startToCloseTimeoutMs && startToCloseTimeoutMs > 2_000) timeoutMs = Math.max(1_000, Math.min(timeoutMs, startToCloseTimeoutMs - 1_000 - waited));

    const started = Date.now();
    // One metric sample per HTTP request, so our counters add up with the provider's own.
    const record = (outcome: string, answered?: { usage: TokenUsage }): void => {
      const r: LlmCallRecord = {
        provider: tier,
        model: p.model,
        tier: req.tier,
        outcome,
        attempt,
        latencyMs: Date.now() - started,
        ...(req.step !== undefined ? { step: req.step } : {}),
      };
      if (answered) Object.assign(r, { usage: answered.usage, costUsd: costOf(p.pricing, answered.usage) });
      steadfastMetrics(ctx.metricMeter).llmCall(r);
    };
    const stop = keepAlive(ctx);
    let raw;
    try {
      raw = await adapter.complete(req, { timeoutMs, signal: ctx.cancellationSignal });
    } catch (err: unknown) {
      let failure: ApplicationFailure;
      try {
        failure = classifyError(err, {
          provider: tier,
          model: p.model,
          attempt,
          backoff: backoffOf(ctx.info.retryPolicy),
          signal: ctx.cancellationSignal,
          env: deps.env,
          secrets: ep.apiKey.length >= 6 ? [ep.apiKey] : [],
        });
      } catch (cancelled: unknown) {
        if (cancelled instanceof CancelledFailure) record(CANCELLED_OUTCOME);
        throw cancelled;
      }
      failure = redactFailure(failure, secrets);
      record(failure.type ?? FailureType.Unknown);
      if (req.reportTo && SHED_TYPES.includes(failure.type ?? '')) reportShed(ctx, req.reportTo, req.itemId, failure.type!);
      ctx.log.warn('llm call failed', { tier, model: p.model, attempt, type: failure.type, nextRetryDelay: failure.nextRetryDelay, endpoint: `${ep.vendor} ${ep.host}` });
      throw failure;
    } finally {
      stop();
    }
    const latencyMs = Date.now() - started;
    const usage = raw.usage;
    const scrub = (s: string): string => scrubSecrets(s, ep.apiKey.length >= 6 ? [ep.apiKey, ...secrets] : secrets, deps.env);

    const { json } = checkAnswer(raw, req, { tier, maxAnswerBytes, scrub, record });
    record('ok', raw);
    ctx.log.debug('llm call succeeded', { tier, model: raw.model, attempt, latencyMs, ...usage });
    if (req.reportTo) releaseSlot(ctx, req.reportTo, req.itemId, latencyMs);
    const result: LlmResult = {
      text: redactValues(raw.text, secrets),
      ...(json !== undefined ? { json: redactValuesDeep(json, secrets) } : {}),
      finishReason: raw.finishReason,
      usage,
      costUsd: costOf(p.pricing, usage),
      model: raw.model,
      latencyMs,
      attempt: run,
      endpoint: raw.simulated ? { ...endpoint, vendor: 'simulated', simulated: true } : endpoint,
      ...(raw.rateLimit ? { rateLimit: raw.rateLimit } : {}),
    };
    // Every check above passed: this answer is valid for this request, so it may be served again.
    if (cached.key) await cacheStore(ctx, cached.key, result, secrets);
    return await persistFast(ctx, req, result, startToCloseTimeoutMs ? began + startToCloseTimeoutMs - PERSIST_MARGIN_MS : null);
  }

  /**
   * A fast run's answer: the row is written here, so the answer never travels through the
   * batch's history. When the store refuses, the answer goes back whole and the workflow
   * writes it (with the retries of `persistResult`); the call is never repeated for it.
   * The write heartbeats (a store that waits on a lock must not look like a dead worker) and
   * gives up before the activity's start-to-close timeout (`deadline`): either timeout would
   * fail an answered call, and the item's workflow would call the provider again.
   */
  async function persistFast(ctx: Context, req: LlmRequest, r: LlmResult, deadline: number | null): Promise<LlmResult> {
    const row = req.persistRow;
    if (!row || !deps.persist) return r;
    const { text, json, ...rest } = r;
    const stop = keepAlive(ctx);
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const write = deps.persist({
        batchId: req.batchId,
        itemId: req.itemId,
        status: 'succeeded',
        output: json !== undefined ? json : text,
        provider: tierName(req.provider, req.tier),
        model: r.model,
        tier: req.tier,
        attempts: r.cached ? r.attempt - 1 : r.attempt,
        inputTokens: r.usage.inputTokens,
        outputTokens: r.usage.outputTokens,
        costUsd: r.costUsd,
        truncation: null,
        error: null,
        endpoint: r.endpoint ?? null,
        ...(row.cache ? { cacheHit: r.cached !== undefined } : {}),
        startedAt: row.startedAt,
        finishedAt: new Date().toISOString(),
        ...(row.secretFields ? { secretFields: row.secretFields } : {}),
        ...(req.secretValues ? { secretValues: req.secretValues } : {}),
        firstFailureAt: null,
      });
      if (deadline !== null) {
        const late = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error('the store did not answer before the call had to return')), Math.max(0, deadline - Date.now()));
        });
        // The write may still land after this; the workflow's write of the same row is an idempotent upsert.
        write.catch(() => undefined);
        await Promise.race([write, late]);
      } else {
        await write;
      }
    } catch (err: unknown) {
      ctx.log.warn('the answer could not be stored by the call; the workflow stores it', { itemId: req.itemId, error: errorMessage(err) });
      return r;
    } finally {
      clearTimeout(timer);
      stop();
    }
    return { ...rest, text: '', persisted: true };
  }

  /**
   * The cached answer of a request that asks for the cache, as this attempt's result (no
   * provider call, cost 0, usage 0), and the key to store a fresh answer under. A cache
   * that cannot be read is a miss: the provider answers instead.
   */
  async function cacheLookup(ctx: Context, req: LlmRequest, endpoint: EndpointInfo): Promise<{ key?: string; hit?: LlmResult }> {
    if (!req.cache || !deps.cache) return {};
    const p = req.provider;
    const key = requestCacheKey(req, endpoint);
    const started = Date.now();
    let answer;
    try {
      answer = await deps.cache.get(key, req.output, req.cache.maxAgeMs);
    } catch (err: unknown) {
      ctx.log.warn('response cache unreadable; calling the provider', { error: scrubSecrets(errorMessage(err), [], deps.env) });
      return { key };
    }
    const labels = { provider: tierName(p, req.tier), model: p.model };
    if (!answer) {
      steadfastMetrics(ctx.metricMeter).cacheLookup({ ...labels, hit: false });
      return { key };
    }
    steadfastMetrics(ctx.metricMeter).cacheLookup({ ...labels, hit: true, savedUsd: answer.costUsd });
    ctx.log.debug('response cache hit', { ...labels, savedUsd: answer.costUsd });
    if (req.reportTo) releaseSlot(ctx, req.reportTo, req.itemId);
    return { key, hit: cachedResult(answer, Date.now() - started, ctx.info.attempt) };
  }

  /** Stores a validated answer; a failure is logged and never fails the call (the answer is paid for). */
  async function cacheStore(ctx: Context, key: string, r: LlmResult, secrets: readonly string[]): Promise<void> {
    try {
      await deps.cache!.put(key, cacheEntryOf(r), secrets);
    } catch (err: unknown) {
      ctx.log.warn('could not store the answer in the response cache', { error: scrubSecrets(errorMessage(err), [], deps.env) });
    }
  }
}

/** How {@link checkAnswer} labels, scrubs and records what it rejects. */
export interface AnswerCheck {
  /** The tier's label, for messages. */
  tier: string;
  maxAnswerBytes: number;
  /** Removes keys and secret values from a message. */
  scrub: (s: string) => string;
  /** Records the outcome of the call (a metric sample); `answered` when the answer was billed. */
  record: (outcome: string, answered?: { usage: TokenUsage }) => void;
}

/**
 * Checks an answer as the workflow needs it, whether it came from a synchronous call or
 * from a provider batch: too large, refused, cut at max tokens, or not matching the
 * schema are non-retryable failures that carry the (redacted) text and the usage.
 * Returns the parsed JSON value for format `json`.
 */
export function checkAnswer(raw: RawCompletion, req: LlmRequest, c: AnswerCheck): { json?: unknown } {
  const { tier, maxAnswerBytes, scrub, record } = c;
  const p = req.provider;
  const secrets = req.secretValues ?? [];
  const schema = req.output.format === 'json' ? req.output.schema : undefined;
  const usage = raw.usage;
  // Checked before anything carries the text (a result, or an output failure's details):
  // too large a payload would fail the task after the answer was paid for, and be retried and paid again.
  const answerBytes = Buffer.byteLength(raw.text) + Buffer.byteLength(raw.refusal ?? '') + (raw.json !== undefined ? Buffer.byteLength(JSON.stringify(raw.json)) : 0);
  if (answerBytes > maxAnswerBytes) {
    record(FailureType.PayloadsTooLarge, raw);
    const errors = [`the answer is ${answerBytes} bytes, over the ${maxAnswerBytes}-byte limit (STEADFAST_MAX_ANSWER_BYTES); lower maxOutputTokens or ask for a shorter answer`];
    throw ApplicationFailure.create({
      type: FailureType.PayloadsTooLarge,
      message: `${tier} ${p.model}: ${errors[0]}`,
      nonRetryable: true,
      // No text: it is what does not fit. The usage still counts (the answer was billed).
      details: [{ errors, usage, bytes: answerBytes, limit: maxAnswerBytes }],
    });
  }

  if (raw.finishReason === 'refusal' || raw.finishReason === 'content_filter') {
    const text = raw.refusal ?? raw.text;
    record(FailureType.ContentRefused, raw);
    throw outputFailure(FailureType.ContentRefused, scrub(`${tier} ${p.model} refused: ${text.slice(0, 200)}`), {
      text: redactValues(text, secrets),
      errors: [`the model refused (${raw.finishReason})`],
      usage,
    });
  }
  if (raw.finishReason === 'length') {
    const errors = [`the answer was cut at max tokens (${p.maxOutputTokens}); raise maxOutputTokens or shorten the task`];
    record(FailureType.OutputTruncated, raw);
    throw outputFailure(FailureType.OutputTruncated, `${tier} ${p.model}: output truncated at ${p.maxOutputTokens} tokens`, {
      text: redactValues(raw.text, secrets),
      errors,
      usage,
    });
  }
  let json: unknown;
  if (req.output.format === 'json') {
    const parsed = raw.json !== undefined ? { ok: true as const, value: raw.json } : parseJsonOutput(raw.text);
    const errors = parsed.ok ? validateOutput(parsed.value, schema) : [parsed.error];
    if (errors.length > 0) {
      const message = `${tier} ${p.model}: output does not match the schema: ${errors.slice(0, 3).join('; ')}`;
      record(FailureType.InvalidOutput, raw);
      throw outputFailure(FailureType.InvalidOutput, scrub(message), { text: redactValues(raw.text, secrets), errors: errors.map((e) => redactValues(e, secrets)), usage });
    }
    json = parsed.ok ? parsed.value : undefined;
  }
  return json !== undefined ? { json } : {};
}

/** Longest wait for a permit's send time (ms): a slot further off is a clock problem, not a plan. */
const MAX_SLOT_WAIT_MS = 5_000;

/** Sleeps until `at` (epoch ms; at most {@link MAX_SLOT_WAIT_MS}); cancellation ends the wait. Returns the ms waited. */
async function waitForSlot(ctx: Context, at: number): Promise<number> {
  const ms = Math.min(MAX_SLOT_WAIT_MS, at - Date.now());
  if (!(ms > 0)) return 0;
  ctx.heartbeat({ waitingForSlotMs: ms });
  await ctx.sleep(ms);
  return ms;
}

/** Longest wait for the batch to answer a call's slot request (ms), within what the attempt's start-to-close leaves. */
const MAX_CALL_SLOT_WAIT_MS = 60_000;

/**
 * Asks the batch for this call's slot (`itemCallSlot`), heartbeating while it waits: the send time
 * of a limiter permit, or null to send now. A batch that cannot answer in time (gone, busy, older
 * code) does not hold the call back: it is sent unpaced and the reason is logged.
 */
async function askSlot(ctx: Context, req: LlmRequest, attempt: number): Promise<number | null> {
  const pace = req.pace!;
  let client;
  try {
    client = ctx.client;
  } catch {
    return null;
  }
  const { startToCloseTimeoutMs } = ctx.info;
  const room = (startToCloseTimeoutMs ?? MAX_CALL_SLOT_WAIT_MS) - attemptTimeoutMs(req.provider, attempt) - 2_000;
  const started = Date.now();
  const stop = keepAlive(ctx);
  try {
    const slot = await client.withDeadline(started + Math.max(1_000, Math.min(MAX_CALL_SLOT_WAIT_MS, room)), () =>
      client.withAbortSignal(ctx.cancellationSignal, () =>
        client.workflow.getHandle(pace.batch).executeUpdate(callSlotUpdate, { args: [{ itemId: req.itemId, permit: pace.permit }] }),
      ),
    );
    return slot.notBefore;
  } catch (err: unknown) {
    if (ctx.cancellationSignal.aborted) throw new CancelledFailure('cancelled while waiting for a call slot');
    ctx.log.warn('no call slot from the batch; sending unpaced', { batch: pace.batch, itemId: req.itemId, attempt, ms: Date.now() - started, error: errorMessage(err) });
    return null;
  } finally {
    stop();
  }
}

/** Writes the attempt number into the failure's first details object (`attempt`), where the workflow reads it. */
function stampAttempt(failure: ApplicationFailure, attempt: number): void {
  const first = failure.details?.[0];
  if (first !== null && typeof first === 'object') (first as { attempt?: number }).attempt = attempt;
}
