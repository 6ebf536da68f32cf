/**
 * Activities of `mode: batch` tiers, with the real `openai` and `@anthropic-ai/sdk`
 * batch clients (their own retries off; Temporal retries).
 *
 * - `enqueueBatchRequest`: renders the vendor request (the synchronous call's body), stages
 *   it in `batch_requests` and signals the tier's collector (signalWithStart).
 * - `assignBatchGroup`: writes a group's membership into the store.
 * - `submitProviderBatch`: submits a group once: the provider batch id is recorded in
 *   `provider_batches` before the activity returns, and a retry looks there first (and, on
 *   OpenAI, for a batch carrying the group key in its `metadata`), so a crash after the
 *   provider accepted the batch never submits the same requests again.
 * - `pollProviderBatch`: one status poll; once the batch ended, its results are written to
 *   each request's row (idempotent: a row keeps its first result).
 * - `failBatchGroup`, `batchGroupPage`: a group that could not be submitted; the members to tell.
 * - `readBatchResult`: checks one request's answer exactly as `callLlm` checks a synchronous
 *   one (schema, refusal, cut-off, size) and prices it at the batch price.
 */
import { createHash } from 'node:crypto';
import { Context } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure, WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI, { toFile } from 'openai';
import { errorMessage, FailureType } from '../src/shared/failures.ts';
import { PROVIDER_BATCH_WORKFLOW, batchRequestSignal, providerBatchWorkflowId } from '../src/shared/provider-batch.ts';
import type { BatchAnswer, BatchEnqueueRequest, BatchResultStatus, ProviderBatchInput } from '../src/shared/provider-batch.ts';
import type { ProviderSpec } from '../src/shared/spec.ts';
import { batchCostOf, batchOptionsOf, tierName } from '../src/shared/tiers.ts';
import type { EndpointInfo, LlmRequest, LlmResult, TokenUsage } from '../src/shared/types.ts';
import { redactValues, redactValuesDeep } from '../src/shared/secrets.ts';
import { cachedResult, cacheEntryOf, requestCacheKey } from './cache.ts';
import type { ResponseCache } from './cache.ts';
import { checkAnswer, DEFAULT_MAX_ANSWER_BYTES } from './call-llm.ts';
import { classifyError } from './classify.ts';
import { resolveEndpoint } from './endpoints.ts';
import type { Endpoint, EndpointPolicy } from './endpoints.ts';
import { anthropicMessage, anthropicParams, openaiChatBody, openaiCompletion, tierHeaders } from './llm.ts';
import { steadfastMetrics } from './metrics.ts';
import { scrubSecrets } from './scrub.ts';
import type { ResultStore, SqlValue } from './store.ts';

/** The one endpoint a batch line targets: the provider answers chat here. */
export const OPENAI_BATCH_ENDPOINT = '/v1/chat/completions';
/** Metadata key on an OpenAI batch that names its group: a retried submission finds the batch by it. */
export const GROUP_METADATA_KEY = 'steadfast_group';
/**
 * How far before a recorded submit intent a provider batch's `created_at` may lie and still be
 * the one that attempt created: the provider's clock and the worker's may disagree.
 */
export const ADOPT_CLOCK_SKEW_MS = 5 * 60_000;
/** Members told per page when a provider batch ended. */
export const GROUP_PAGE = 500;
/** Timeout of one batch API request (an upload of 200 MB takes a while). */
const REQUEST_TIMEOUT_MS = 10 * 60_000;

/** What the batch activities need. */
export interface ProviderBatchDeps {
  store: ResultStore;
  policy: EndpointPolicy;
  env: NodeJS.ProcessEnv;
  fetch?: typeof fetch;
  /** @default DEFAULT_MAX_ANSWER_BYTES */
  maxAnswerBytes?: number;
  /** The response cache (activities/cache.ts), for requests that ask for it (`req.cache`): the same entries as synchronous calls. */
  cache?: ResponseCache;
}

/**
 * A request's custom_id: `r` + 40 hex of (item run, item, step, tier, call number); matches
 * both vendors' rules (`^[a-zA-Z0-9_-]{1,64}$`) whatever the item id.
 */
export function customIdOf(itemRunId: string, itemId: string, seq: number, step = '', tier = 0): string {
  return `r${createHash('sha256').update(`${itemRunId}\n${itemId}\n${step}\n${tier}\n${seq}`).digest('hex').slice(0, 40)}`;
}

/** The line of one request in a provider batch: an OpenAI JSONL line or an Anthropic `requests[]` element. */
export function batchLine(req: LlmRequest, customId: string): Record<string, unknown> {
  if (req.provider.kind === 'anthropic') return { custom_id: customId, params: anthropicParams(req) };
  return { custom_id: customId, method: 'POST', url: OPENAI_BATCH_ENDPOINT, body: openaiChatBody(req) };
}

/** Anthropic error types inside an errored batch result, as the HTTP status a synchronous call would have had. */
const ANTHROPIC_ERROR_STATUS: Record<string, number> = {
  invalid_request_error: 400,
  authentication_error: 401,
  billing_error: 402,
  permission_error: 403,
  not_found_error: 404,
  request_too_large: 413,
  rate_limit_error: 429,
  api_error: 500,
  timeout_error: 504,
  overloaded_error: 529,
};

type Clients = { openai?: OpenAI; anthropic?: Anthropic; ep: Endpoint };

/** Heartbeats every 20 s while `fn` runs: an upload or download of hundreds of MB outlasts the heartbeat timeout. */
async function beating<T>(fn: () => Promise<T>): Promise<T> {
  const ctx = Context.current();
  ctx.heartbeat();
  const timer = setInterval(() => ctx.heartbeat(), 20_000);
  try {
    return await fn();
  } finally {
    clearInterval(timer);
  }
}

/** Input of `pollProviderBatch`. */
interface PollRequest {
  batchId: string;
  tier: number;
  groupKey: string;
  provider: ProviderSpec;
  providerBatchId: string;
}

/** What one poll found; `resubmit` (the reason) when an adopted batch turned out not to be the group's. */
export interface PollAnswer {
  ended: boolean;
  status: string;
  counts: Record<string, number>;
  resubmit?: string;
}

/** Builds the batch activities. */
export function createProviderBatchActivities(deps: ProviderBatchDeps) {
  const { store } = deps;
  const clients = new Map<string, Clients>();
  const maxAnswerBytes = deps.maxAnswerBytes ?? DEFAULT_MAX_ANSWER_BYTES;

  function clientsOf(p: ProviderSpec, tier: number): Clients {
    const ep = resolveEndpoint(p, tier, deps.policy, deps.env);
    const key = `${ep.kind}|${ep.baseURL ?? ''}|${ep.keyEnv ?? ''}|${ep.apiKey}`;
    let c = clients.get(key);
    if (!c) {
      const common = {
        apiKey: ep.apiKey,
        maxRetries: 0,
        timeout: REQUEST_TIMEOUT_MS,
        ...(ep.baseURL ? { baseURL: ep.baseURL } : {}),
        ...(deps.fetch ? { fetch: deps.fetch } : {}),
      };
      c = ep.kind === 'anthropic' ? { anthropic: new Anthropic(common), ep } : { openai: new OpenAI(common), ep };
      clients.set(key, c);
    }
    return c;
  }

  /** Classifies an SDK error of a batch endpoint like one of a synchronous call (key scrubbed). */
  function classified(err: unknown, p: ProviderSpec, tier: number, ep?: Endpoint): ApplicationFailure {
    const ctx = Context.current();
    return classifyError(err, {
      provider: tierName(p, tier),
      model: p.model,
      attempt: ctx.info.attempt,
      signal: ctx.cancellationSignal,
      env: deps.env,
      secrets: ep && ep.apiKey.length >= 6 ? [ep.apiKey] : [],
    });
  }

  const run = (sql: string, params: readonly SqlValue[]) => store.execute(sql, params);

  /** Records one request's final state, keeping the first one written (a retried poll writes nothing new). */
  async function writeResult(batchId: string, tier: number, customId: string, status: BatchResultStatus, result: unknown): Promise<void> {
    await run('UPDATE batch_requests SET result_status = ?, result = ? WHERE batch_id = ? AND tier = ? AND custom_id = ? AND result_status IS NULL', [
      status,
      JSON.stringify(result ?? null),
      batchId,
      tier,
      customId,
    ]);
  }

  /** Members of a group still without a result get `status` (what an ended batch left unanswered). */
  async function settleRest(groupKey: string, status: BatchResultStatus, result: unknown): Promise<number> {
    const r = await run('UPDATE batch_requests SET result_status = ?, result = ? WHERE group_key = ? AND result_status IS NULL', [status, JSON.stringify(result), groupKey]);
    return r.changes;
  }

  async function downloadOpenai(c: OpenAI, fileId: string | null | undefined, onLine: (line: Record<string, unknown>) => Promise<void>): Promise<void> {
    if (!fileId) return;
    const text = await (await c.files.content(fileId)).text();
    for (const raw of text.split('\n')) {
      if (!raw.trim()) continue;
      Context.current().heartbeat();
      await onLine(JSON.parse(raw) as Record<string, unknown>);
    }
  }

  /**
   * The message batch a lost attempt of this group may have created: among the provider's
   * batches created since the intent (less {@link ADOPT_CLOCK_SKEW_MS}; the list is newest
   * first), one with the group's request count that no group in the store recorded and that
   * was not rejected before; the one created nearest the intent when several qualify.
   */
  async function findLostAnthropicBatch(
    c: Anthropic,
    groupKey: string,
    count: number,
    since: number,
    o: { signal: AbortSignal; headers?: Record<string, string> },
  ): Promise<string | undefined> {
    const candidates: Array<{ id: string; at: number }> = [];
    for await (const b of c.messages.batches.list({ limit: 100 }, o)) {
      Context.current().heartbeat();
      const at = Date.parse(b.created_at);
      if (at < since - ADOPT_CLOCK_SKEW_MS) break;
      const n = b.request_counts;
      if (n.processing + n.succeeded + n.errored + n.canceled + n.expired === count) candidates.push({ id: b.id, at });
    }
    if (candidates.length === 0) return undefined;
    const marks = candidates.map(() => '?').join(', ');
    const ids = candidates.map((x) => x.id);
    const taken = await run(
      `SELECT provider_batch_id FROM provider_batches WHERE provider_batch_id IN (${marks}) UNION SELECT provider_batch_id FROM provider_batch_rejects WHERE provider_batch_id IN (${marks})`,
      [...ids, ...ids],
    );
    const known = new Set(taken.rows.map((r) => String(r['provider_batch_id'])));
    const free = candidates.filter((x) => !known.has(x.id)).sort((a, b) => Math.abs(a.at - since) - Math.abs(b.at - since));
    if (free.length > 1)
      Context.current().log.warn('several provider batches could be the one a lost attempt created; adopting the nearest in time', { groupKey, candidates: free.length });
    return free[0]?.id;
  }

  /**
   * Checks an adopted message batch's results against the group (the same custom_ids, no
   * more, no fewer). Undefined when they match; otherwise the reason, and the batch is
   * rejected: the group counts as not submitted.
   */
  async function checkAdopted(c: Anthropic, req: PollRequest, signal: AbortSignal): Promise<string | undefined> {
    const ids = new Set<string>();
    for await (const line of await c.messages.batches.results(req.providerBatchId, {}, { signal })) {
      Context.current().heartbeat();
      ids.add(line.custom_id);
    }
    const members = await run('SELECT custom_id FROM batch_requests WHERE group_key = ?', [req.groupKey]);
    const mine = new Set(members.rows.map((r) => String(r['custom_id'])));
    const shared = [...ids].filter((id) => mine.has(id)).length;
    if (shared === mine.size && ids.size === mine.size) {
      await run('UPDATE provider_batches SET adopted = 2 WHERE group_key = ?', [req.groupKey]);
      await run('UPDATE batch_requests SET body = NULL WHERE group_key = ?', [req.groupKey]);
      return undefined;
    }
    const reason = `adopted provider batch ${req.providerBatchId} holds ${ids.size} requests, ${shared} of them of this group's ${mine.size}: another client's batch`;
    await run('INSERT INTO provider_batch_rejects (provider_batch_id, group_key, reason, rejected_at) VALUES (?, ?, ?, ?) ON CONFLICT (provider_batch_id) DO NOTHING', [
      req.providerBatchId,
      req.groupKey,
      reason,
      new Date().toISOString(),
    ]);
    await run('DELETE FROM provider_batches WHERE group_key = ? AND provider_batch_id = ?', [req.groupKey, req.providerBatchId]);
    return reason;
  }

  async function submit(req: { batchId: string; tier: number; groupKey: string; provider: ProviderSpec }): Promise<{ providerBatchId: string; requests: number }> {
    const ctx = Context.current();
    const known = await run('SELECT provider_batch_id, requests FROM provider_batches WHERE group_key = ?', [req.groupKey]);
    if (known.rows[0]) return { providerBatchId: String(known.rows[0]['provider_batch_id']), requests: Number(known.rows[0]['requests']) };
    const members = await run('SELECT custom_id, body FROM batch_requests WHERE group_key = ? ORDER BY custom_id', [req.groupKey]);
    const lines = members.rows.map((r) => String(r['body'] ?? ''));
    if (lines.length === 0 || lines.some((l) => l === '')) {
      throw ApplicationFailure.create({ type: FailureType.BatchFailed, message: `group ${req.groupKey} has no staged requests to submit`, nonRetryable: true });
    }
    const c = clientsOf(req.provider, req.tier);
    const opts = batchOptionsOf(req.provider);
    let providerBatchId: string;
    let fileId: string | null = null;
    let adopted = false;
    try {
      if (c.anthropic) {
        const requests = lines.map((l) => JSON.parse(l) as Anthropic.Messages.BatchCreateParams.Request);
        const headers = tierHeaders({ provider: req.provider } as LlmRequest);
        const o = { ...(headers ? { headers } : {}), signal: ctx.cancellationSignal };
        // A message batch carries no metadata: the intent, recorded before the create call, is
        // what lets a retry find the batch a lost attempt created.
        const intent = await run('SELECT started_at FROM provider_batch_submits WHERE group_key = ?', [req.groupKey]);
        const since = intent.rows[0] ? Date.parse(String(intent.rows[0]['started_at'])) : undefined;
        const found = since !== undefined ? await findLostAnthropicBatch(c.anthropic, req.groupKey, lines.length, since, o) : undefined;
        if (found) {
          ctx.log.info('adopting the provider batch a previous attempt may have created; its results are checked before use', { groupKey: req.groupKey, providerBatchId: found });
          providerBatchId = found;
          adopted = true;
        } else {
          if (since === undefined) {
            await run('INSERT INTO provider_batch_submits (group_key, requests, started_at) VALUES (?, ?, ?) ON CONFLICT (group_key) DO NOTHING', [
              req.groupKey,
              lines.length,
              new Date().toISOString(),
            ]);
          }
          ctx.heartbeat();
          providerBatchId = (await c.anthropic.messages.batches.create({ requests }, o)).id;
        }
      } else {
        const oai = c.openai!;
        const headers = tierHeaders({ provider: req.provider } as LlmRequest);
        const o = { ...(headers ? { headers } : {}), signal: ctx.cancellationSignal };
        // A previous attempt may have created the batch and died before recording it.
        let found: OpenAI.Batches.Batch | undefined;
        for await (const b of oai.batches.list({ limit: 100 }, o)) {
          if ((b.metadata as Record<string, string> | null)?.[GROUP_METADATA_KEY] === req.groupKey) {
            found = b;
            break;
          }
          if (b.created_at * 1000 < Date.now() - 2 * 86_400_000) break;
        }
        if (found) {
          ctx.log.info('adopting the provider batch a previous attempt created', { groupKey: req.groupKey, providerBatchId: found.id });
          providerBatchId = found.id;
          fileId = found.input_file_id;
        } else {
          ctx.heartbeat();
          const name = `${req.groupKey.replace(/[^A-Za-z0-9_-]+/g, '_').slice(-120)}.jsonl`;
          const file = await oai.files.create({ file: await toFile(Buffer.from(`${lines.join('\n')}\n`), name), purpose: 'batch' }, o);
          fileId = file.id;
          ctx.heartbeat();
          const b = await oai.batches.create(
            { input_file_id: file.id, endpoint: OPENAI_BATCH_ENDPOINT, completion_window: opts.completionWindow, metadata: { [GROUP_METADATA_KEY]: req.groupKey } },
            o,
          );
          providerBatchId = b.id;
        }
      }
    } catch (err: unknown) {
      if (err instanceof CancelledFailure) throw err;
      const f = classified(err, req.provider, req.tier, c.ep);
      ctx.log.warn('provider batch submission failed', { groupKey: req.groupKey, type: f.type, attempt: ctx.info.attempt });
      throw f;
    }
    // Recorded before anything polls it; the staged bodies (the rendered prompts) are not kept,
    // except for an adopted batch: if its results are not the group's, the group is sent again.
    await run(
      'INSERT INTO provider_batches (group_key, provider_batch_id, input_file_id, requests, created_at, adopted) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (group_key) DO NOTHING',
      [req.groupKey, providerBatchId, fileId, lines.length, new Date().toISOString(), adopted ? 1 : null],
    );
    await run('DELETE FROM provider_batch_submits WHERE group_key = ?', [req.groupKey]);
    if (!adopted) await run('UPDATE batch_requests SET body = NULL WHERE group_key = ?', [req.groupKey]);
    ctx.log.info('provider batch submitted', { groupKey: req.groupKey, providerBatchId, requests: lines.length });
    return { providerBatchId, requests: lines.length };
  }

  async function poll(req: PollRequest): Promise<PollAnswer> {
    const ctx = Context.current();
    const c = clientsOf(req.provider, req.tier);
    const rec = await run('SELECT provider_batch_id, adopted FROM provider_batches WHERE group_key = ?', [req.groupKey]);
    const mine = rec.rows[0] && String(rec.rows[0]['provider_batch_id']) === req.providerBatchId ? rec.rows[0] : undefined;
    if (!mine) {
      // Rejected by an earlier attempt of this poll: the group is to be submitted again.
      const rejected = await run('SELECT reason FROM provider_batch_rejects WHERE provider_batch_id = ? AND group_key = ?', [req.providerBatchId, req.groupKey]);
      if (rejected.rows[0]) return { ended: false, status: 'rejected', counts: {}, resubmit: String(rejected.rows[0]['reason']) };
    }
    const counts: Record<string, number> = {};
    const bump = (s: string): void => void (counts[s] = (counts[s] ?? 0) + 1);
    const write = async (customId: string, status: BatchResultStatus, result: unknown): Promise<void> => {
      bump(status);
      await writeResult(req.batchId, req.tier, customId, status, result);
    };
    try {
      if (c.anthropic) {
        const b = await c.anthropic.messages.batches.retrieve(req.providerBatchId, {}, { signal: ctx.cancellationSignal });
        if (b.processing_status !== 'ended') return { ended: false, status: b.processing_status, counts: { ...b.request_counts } };
        if (mine && Number(mine['adopted']) === 1) {
          const why = await checkAdopted(c.anthropic, req, ctx.cancellationSignal);
          if (why) {
            ctx.log.warn('the adopted provider batch is not this group: its results are not used and the group is submitted again', { groupKey: req.groupKey, reason: why });
            return { ended: false, status: 'rejected', counts: {}, resubmit: why };
          }
        }
        for await (const line of await c.anthropic.messages.batches.results(req.providerBatchId, {}, { signal: ctx.cancellationSignal })) {
          ctx.heartbeat();
          const r = line.result;
          if (r.type === 'succeeded') await write(line.custom_id, 'succeeded', r.message);
          else if (r.type === 'errored') await write(line.custom_id, 'errored', r.error);
          else await write(line.custom_id, r.type === 'canceled' ? 'cancelled' : 'expired', null);
        }
        const rest = await settleRest(req.groupKey, 'expired', { message: 'the provider batch ended without a result for this request' });
        if (rest > 0) counts['expired'] = (counts['expired'] ?? 0) + rest;
        return { ended: true, status: 'ended', counts };
      }
      const oai = c.openai!;
      const b = await oai.batches.retrieve(req.providerBatchId, { signal: ctx.cancellationSignal });
      const ended = ['completed', 'expired', 'cancelled', 'failed'].includes(b.status);
      if (!ended) return { ended: false, status: b.status, counts: { ...(b.request_counts ?? {}) } };
      const onLine = async (l: Record<string, unknown>): Promise<void> => {
        const customId = String(l['custom_id'] ?? '');
        const response = l['response'] as { status_code?: number; body?: unknown } | null;
        const error = l['error'] as { code?: string; message?: string } | null;
        if (response && typeof response.status_code === 'number') {
          await write(
            customId,
            response.status_code < 300 ? 'succeeded' : 'errored',
            response.status_code < 300 ? response.body : { status: response.status_code, body: response.body },
          );
        } else if (error?.code === 'batch_expired') await write(customId, 'expired', error);
        else if (error?.code === 'batch_cancelled') await write(customId, 'cancelled', error);
        else await write(customId, 'errored', { status: 500, body: { error: { message: error?.message ?? 'the batch request failed', code: error?.code ?? null } } });
      };
      await downloadOpenai(oai, b.output_file_id, onLine);
      await downloadOpenai(oai, b.error_file_id, onLine);
      const why = b.errors?.data?.map((e) => e.message).join('; ');
      const restStatus: BatchResultStatus = b.status === 'failed' ? 'failed' : b.status === 'cancelled' ? 'cancelled' : 'expired';
      const rest = await settleRest(req.groupKey, restStatus, { message: why || `the provider batch ${b.status} without a result for this request` });
      if (rest > 0) counts[restStatus] = (counts[restStatus] ?? 0) + rest;
      return { ended: true, status: b.status, counts };
    } catch (err: unknown) {
      if (err instanceof CancelledFailure) throw err;
      throw classified(err, req.provider, req.tier, c.ep);
    }
  }

  const endpointOf = (req: LlmRequest): EndpointInfo => {
    const ep = resolveEndpoint(req.provider, req.tier, deps.policy, deps.env);
    return { vendor: ep.vendor, host: ep.host, simulated: ep.simulated };
  };

  /** The cached answer of a request that asks for the cache; a cache that cannot be read is a miss. */
  async function cacheLookup(req: LlmRequest): Promise<LlmResult | undefined> {
    if (!req.cache || !deps.cache) return undefined;
    const ctx = Context.current();
    const started = Date.now();
    let answer;
    try {
      answer = await deps.cache.get(requestCacheKey(req, endpointOf(req)), req.output, req.cache.maxAgeMs);
    } catch (err: unknown) {
      ctx.log.warn('response cache unreadable; staging the request', { error: scrubSecrets(errorMessage(err), [], deps.env) });
      return undefined;
    }
    const labels = { provider: tierName(req.provider, req.tier), model: req.provider.model };
    steadfastMetrics(ctx.metricMeter).cacheLookup({ ...labels, hit: answer !== null, ...(answer ? { savedUsd: answer.costUsd } : {}) });
    return answer ? cachedResult(answer, Date.now() - started, 1) : undefined;
  }

  /** Stores a validated answer; a failure is logged and never fails the read (the answer is paid for). */
  async function cacheStore(ctx: Context, req: LlmRequest, r: LlmResult, secrets: readonly string[]): Promise<void> {
    try {
      await deps.cache!.put(requestCacheKey(req, endpointOf(req)), cacheEntryOf(r), secrets);
    } catch (err: unknown) {
      ctx.log.warn('could not store the answer in the response cache', { error: scrubSecrets(errorMessage(err), [], deps.env) });
    }
  }

  return {
    /**
     * Stages one request of a `mode: batch` tier and signals the tier's collector (starting it
     * if needed). Idempotent: a retry stages nothing new and sends a signal the collector ignores.
     * A request that asks for the response cache and has a valid answer there is not staged:
     * the answer comes back as `hit` (no provider request, cost 0).
     */
    async enqueueBatchRequest(req: BatchEnqueueRequest): Promise<{ customId: string; bytes: number; hit?: LlmResult }> {
      const ctx = Context.current();
      const customId = customIdOf(req.itemRunId, req.itemId, req.seq, req.step ?? '', req.tier);
      const hit = await cacheLookup(req);
      if (hit) return { customId, bytes: 0, hit };
      const line = JSON.stringify(batchLine(req, customId));
      const bytes = Buffer.byteLength(line) + 1;
      const opts = batchOptionsOf(req.provider);
      if (bytes > opts.maxBytes) {
        throw ApplicationFailure.create({
          type: FailureType.InvalidRequest,
          message: `${tierName(req.provider, req.tier)}: the request is ${bytes} bytes, over the provider batch limit of ${opts.maxBytes}`,
          nonRetryable: true,
        });
      }
      await run(
        'INSERT INTO batch_requests (batch_id, tier, custom_id, item_id, item_workflow_id, body, bytes, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (batch_id, tier, custom_id) DO NOTHING',
        [req.batchId, req.tier, customId, req.itemId, req.itemWorkflowId, line, bytes, new Date().toISOString()],
      );
      const input: ProviderBatchInput = { batchId: req.batchId, tier: req.tier, provider: req.provider, ...(req.step !== undefined ? { step: req.step } : {}) };
      const workflowId = providerBatchWorkflowId(req.batchId, req.tier, req.step);
      try {
        await ctx.client.workflow.signalWithStart(PROVIDER_BATCH_WORKFLOW, {
          workflowId,
          taskQueue: ctx.info.taskQueue,
          args: [input],
          signal: batchRequestSignal,
          signalArgs: [{ customId, bytes }],
          staticSummary: `provider batches of ${req.batchId}, ${req.step !== undefined ? `step ${req.step}, ` : ''}${tierName(req.provider, req.tier)}`,
        });
      } catch (err: unknown) {
        // Two items raced to start the collector and the other won: signal the one it started.
        if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
        await ctx.client.workflow.getHandle(workflowId).signal(batchRequestSignal, { customId, bytes });
      }
      return { customId, bytes };
    },

    /** Puts requests into a group (those not in one yet); returns the group's size and bytes. */
    async assignBatchGroup(req: { batchId: string; tier: number; groupKey: string; customIds: string[] }): Promise<{ count: number; bytes: number }> {
      if (req.customIds.length > 0) {
        const marks = req.customIds.map(() => '?').join(', ');
        await run(`UPDATE batch_requests SET group_key = ? WHERE batch_id = ? AND tier = ? AND group_key IS NULL AND custom_id IN (${marks})`, [
          req.groupKey,
          req.batchId,
          req.tier,
          ...req.customIds,
        ]);
      }
      const r = await run('SELECT COUNT(*) AS n, COALESCE(SUM(bytes), 0) AS b FROM batch_requests WHERE group_key = ?', [req.groupKey]);
      return { count: Number(r.rows[0]?.['n'] ?? 0), bytes: Number(r.rows[0]?.['b'] ?? 0) };
    },

    /**
     * Submits a group as one provider batch, at most once: a recorded submission is returned
     * as is; on OpenAI a batch carrying the group key in `metadata` is adopted. Upload and
     * create errors are classified like a synchronous call's (a 5xx is retried).
     */
    async submitProviderBatch(req: { batchId: string; tier: number; groupKey: string; provider: ProviderSpec }): Promise<{ providerBatchId: string; requests: number }> {
      return beating(() => submit(req));
    },

    /**
     * One status poll. Once the provider batch ended (completed, expired, cancelled, failed),
     * its results are downloaded into the members' rows; members it left without a result
     * (not run before it expired, cancelled, or a failed batch) get that state.
     */
    async pollProviderBatch(req: PollRequest): Promise<PollAnswer> {
      return beating(() => poll(req));
    },

    /**
     * Asks the provider to cancel a submitted batch (the Steadfast batch was cancelled): OpenAI
     * `POST /v1/batches/{id}/cancel`, Anthropic `POST /v1/messages/batches/{id}/cancel`. A batch
     * that already ended or is already cancelling is left as it is. The request and the
     * provider's answer are recorded in `provider_batches`; the polls that follow write the
     * requests' final state (cancelled, or answered before the cancel took effect).
     */
    async cancelProviderBatch(req: PollRequest): Promise<{ status: string }> {
      const ctx = Context.current();
      const c = clientsOf(req.provider, req.tier);
      const o = { signal: ctx.cancellationSignal };
      let status: string;
      try {
        status = c.anthropic
          ? (await c.anthropic.messages.batches.cancel(req.providerBatchId, {}, o)).processing_status
          : (await c.openai!.batches.cancel(req.providerBatchId, o)).status;
      } catch (err: unknown) {
        if (err instanceof CancelledFailure) throw err;
        const code = err instanceof OpenAI.APIError || err instanceof Anthropic.APIError ? err.status : undefined;
        // Ended, already cancelling, or gone: nothing left to cancel.
        if (code !== 409 && code !== 400 && code !== 404) throw classified(err, req.provider, req.tier, c.ep);
        status = `not cancellable (HTTP ${code}): ${scrubSecrets(errorMessage(err), c.ep.apiKey.length >= 6 ? [c.ep.apiKey] : [], deps.env)}`;
      }
      await run('UPDATE provider_batches SET cancel_requested_at = ?, cancel_status = ? WHERE group_key = ? AND provider_batch_id = ?', [
        new Date().toISOString(),
        status,
        req.groupKey,
        req.providerBatchId,
      ]);
      ctx.log.info('provider batch cancel requested', { groupKey: req.groupKey, providerBatchId: req.providerBatchId, status });
      return { status };
    },

    /** A group that could not be submitted: every member fails with the submission's failure. */
    async failBatchGroup(req: { groupKey: string; type: string; message: string }): Promise<number> {
      return settleRest(req.groupKey, 'failed', { type: req.type, message: scrubSecrets(req.message, [], deps.env) });
    },

    /** A page of a group's members (custom_id order), for telling each item that its result is in. */
    async batchGroupPage(req: { groupKey: string; afterCustomId?: string; limit?: number }): Promise<Array<{ customId: string; itemWorkflowId: string }>> {
      const limit = Math.min(req.limit ?? GROUP_PAGE, GROUP_PAGE);
      const r = await run('SELECT custom_id, item_workflow_id FROM batch_requests WHERE group_key = ? AND custom_id > ? ORDER BY custom_id LIMIT ?', [
        req.groupKey,
        req.afterCustomId ?? '',
        limit,
      ]);
      return r.rows.map((row) => ({ customId: String(row['custom_id']), itemWorkflowId: String(row['item_workflow_id']) }));
    },

    /**
     * The answer to one request of a provider batch, checked like a synchronous answer and
     * priced at the batch price; or the failure of the tier (errored, expired, cancelled,
     * failed). The checked answer replaces the raw one in the store (secret values
     * redacted), so a retry returns the same answer.
     */
    async readBatchResult(req: LlmRequest & { customId: string }): Promise<BatchAnswer> {
      const ctx = Context.current();
      const p = req.provider;
      const tier = tierName(p, req.tier);
      const r = await run('SELECT result_status, result, answer FROM batch_requests WHERE batch_id = ? AND tier = ? AND custom_id = ?', [req.batchId, req.tier, req.customId]);
      const row = r.rows[0];
      if (!row) return { ok: false, type: FailureType.BatchFailed, message: `${tier}: no staged request ${req.customId}` };
      if (typeof row['answer'] === 'string') return JSON.parse(row['answer']) as BatchAnswer;
      const status = row['result_status'] as BatchResultStatus | null;
      const result: unknown = typeof row['result'] === 'string' ? JSON.parse(row['result']) : null;
      const secrets = req.secretValues ?? [];
      const ep = resolveEndpoint(p, req.tier, deps.policy, deps.env);
      const keys = ep.apiKey.length >= 6 ? [ep.apiKey, ...secrets] : secrets;
      const scrub = (s: string): string => scrubSecrets(s, keys, deps.env);
      const record = (outcome: string, answered?: { usage: TokenUsage }): void => {
        steadfastMetrics(ctx.metricMeter).llmCall({
          provider: tier,
          model: p.model,
          tier: req.tier,
          outcome,
          attempt: 1,
          latencyMs: 0,
          ...(answered ? { usage: answered.usage, costUsd: batchCostOf(p.pricing, answered.usage) } : {}),
        });
      };
      const answer = ((): BatchAnswer => {
        if (status === 'succeeded') {
          let raw;
          try {
            raw = p.kind === 'anthropic' ? anthropicMessage(result as Anthropic.Message, req) : openaiCompletion(result as OpenAI.ChatCompletion, p.model);
          } catch (err: unknown) {
            record(FailureType.ProviderUnavailable);
            return { ok: false, type: FailureType.ProviderUnavailable, message: scrub(`${tier}: unreadable batch answer: ${errorMessage(err)}`) };
          }
          try {
            const { json } = checkAnswer(raw, req, { tier, maxAnswerBytes, scrub, record });
            record('ok', raw);
            return {
              ok: true,
              result: {
                text: redactValues(raw.text, secrets),
                ...(json !== undefined ? { json: redactValuesDeep(json, secrets) } : {}),
                finishReason: raw.finishReason,
                usage: raw.usage,
                costUsd: batchCostOf(p.pricing, raw.usage),
                model: raw.model,
                latencyMs: 0,
                attempt: 1,
                endpoint: { vendor: ep.simulated ? 'simulated' : ep.vendor, host: ep.host, simulated: ep.simulated },
              },
            };
          } catch (err: unknown) {
            if (!(err instanceof ApplicationFailure)) throw err;
            const details = err.details?.[0] as Record<string, unknown> | undefined;
            // A rejected answer was billed: at the batch price.
            const usage = details?.['usage'] as TokenUsage | undefined;
            return {
              ok: false,
              type: err.type ?? FailureType.Unknown,
              message: err.message,
              details: { ...details, ...(usage ? { costUsd: batchCostOf(p.pricing, usage) } : {}) },
            };
          }
        }
        if (status === 'errored') {
          const f = classified(sdkErrorOf(p, result), p, req.tier, ep);
          record(f.type ?? FailureType.Unknown);
          return { ok: false, type: f.type ?? FailureType.Unknown, message: scrub(`${f.message} (inside a provider batch)`) };
        }
        const info = (result ?? {}) as { type?: string; message?: string };
        const type = status === 'cancelled' ? FailureType.BatchCancelled : status === 'failed' ? (info.type ?? FailureType.BatchFailed) : FailureType.BatchExpired;
        const message =
          status === 'cancelled'
            ? `${tier}: the provider batch was cancelled before this request ran`
            : status === 'failed'
              ? `${tier}: the provider batch failed: ${info.message ?? 'no reason given'}`
              : `${tier}: the provider batch ended (its completion window passed) before this request ran`;
        record(type);
        return { ok: false, type, message: scrub(message) };
      })();
      // Every check passed: the answer may be served again, to a synchronous call as well.
      if (answer.ok && req.cache && deps.cache) await cacheStore(ctx, req, answer.result, secrets);
      await run('UPDATE batch_requests SET answer = ?, result = NULL WHERE batch_id = ? AND tier = ? AND custom_id = ?', [
        JSON.stringify(answer),
        req.batchId,
        req.tier,
        req.customId,
      ]);
      return answer;
    },
  };
}

/** An errored request's answer as the SDK error a synchronous call would have thrown, for {@link classifyError}. */
function sdkErrorOf(p: ProviderSpec, result: unknown): Error {
  const headers = new Headers();
  if (p.kind === 'anthropic') {
    const body = (result ?? {}) as { error?: { type?: string; message?: string } };
    const status = ANTHROPIC_ERROR_STATUS[body.error?.type ?? ''] ?? 500;
    return Anthropic.APIError.generate(status, body, body.error?.message, headers);
  }
  const r = (result ?? {}) as { status?: number; body?: { error?: { message?: string } } };
  return OpenAI.APIError.generate(r.status ?? 500, r.body, r.body?.error?.message, headers);
}
