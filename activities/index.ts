/**
 * The activities: LLM calls, token counting and truncation, persistence,
 * notifications and the items source. `createActivities(deps)` closes over its
 * dependencies so tests hand in fakes and the worker hands in real clients
 * (samples-typescript `activities-dependency-injection`).
 *
 * Workflows import only the TYPE of `createActivities` and call the activities
 * through `proxyActivities` with the option profiles of `policies.ts`.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { loadConfig } from '../src/common/config.ts';
import type { Config } from '../src/common/config.ts';
import { errorMessage, FailureType } from '../src/shared/failures.ts';
import { recoverySeconds, steadfastMetrics } from './metrics.ts';
import type { ResultRecord, StoredSummary, TruncateRequest, TruncateResult } from '../src/shared/types.ts';
import { WorkflowNotFoundError } from '@temporalio/client';
import { makeCallLlm } from './call-llm.ts';
import { ensureLimiter } from './limiter.ts';
import { checkEndpoints, describeEndpoint, endpointPolicy } from './endpoints.ts';
import { schemaProblem } from '../src/shared/validate.ts';
import type { PipelineSpec } from '../src/shared/spec.ts';
import type { EndpointInfo } from '../src/shared/types.ts';
import { postAlert, webhookUrlOf } from './notify.ts';
import type { NotifyRequest } from './notify.ts';
import { scrubSecrets, scrubValue } from './scrub.ts';
import { makeReadItemsPage, makeScanSource } from './source.ts';
import { defaultSourceRoots } from '../src/common/source-roots.ts';
import { openStore } from './store.ts';
import type { ListOptions, ResultStore } from './store.ts';
import { fitToWindow } from './tokens.ts';
import { createProviderBatchActivities } from './provider-batch.ts';
import { responseCache } from './cache.ts';
import { makeRecordNotRun } from './not-run.ts';

export { openStore } from './store.ts';
export type { ListOptions, ResultStore, StoreOptions, UpsertOutcome } from './store.ts';
export type { NotifyRequest } from './notify.ts';

/** A logger with the four usual levels (pino, console and Temporal's activity logger all fit). */
export interface ActivityLogger {
  info(message: string, meta?: Record<string, unknown>): void;
  warn(message: string, meta?: Record<string, unknown>): void;
  error(message: string, meta?: Record<string, unknown>): void;
  debug(message: string, meta?: Record<string, unknown>): void;
}

/** What the activities need from the outside world. */
export interface ActivityDeps {
  store: ResultStore;
  /**
   * The fault-injecting provider, when this worker is switched to it: tiers without a
   * baseURL are answered by it and recorded as simulated. @default env.STEADFAST_SIMULATED_PROVIDER_URL
   */
  simulatedProviderUrl?: string | undefined;
  /** Where API keys, the endpoint allow-lists and webhook URLs are read. @default process.env */
  env?: NodeJS.ProcessEnv;
  /** Default alert webhook. @default env.STEADFAST_WEBHOOK_URL */
  webhookUrl?: string;
  /** HTTP client for provider SDKs and webhooks (tests inject headers or faults here). @default globalThis.fetch */
  fetch?: typeof fetch;
  /** @default the Temporal activity logger (carries the workflow and activity ids) */
  logger?: ActivityLogger;
  /** Directories batch sources may be read from. @default data/ under the working directory, and the OS temp dir */
  sourceRoots?: readonly string[];
  /** Hosts batch source URLs may name. @default none */
  sourceHosts?: readonly string[];
  /** Largest LLM answer an attempt may return, in bytes; larger ones fail as `PayloadsTooLarge`. @default 262144 */
  maxAnswerBytes?: number;
  /** Releases what the deps opened (set by {@link createDefaultDeps}). */
  close?: () => Promise<void>;
}

/**
 * The `persistResult` input: a result row plus what must not be stored in clear.
 * `secretFields` are the spec's `secretFields` (item field names, redacted at any
 * depth in output and error); `secretValues` are literal values to redact.
 */
export type PersistRequest = ResultRecord & {
  secretFields?: string[];
  secretValues?: string[];
  /** When the item first failed, for a succeeded item that recovered (time-to-recovery metrics). */
  firstFailureAt?: string | null;
};

/** Builds the activity functions registered on the worker. */
export function createActivities(deps: ActivityDeps) {
  const env = deps.env ?? process.env;
  const log = (): ActivityLogger => deps.logger ?? Context.current().log;
  const access = { roots: deps.sourceRoots ?? defaultSourceRoots(), hosts: deps.sourceHosts ?? [] };
  const storeFailure = (op: string, err: unknown): ApplicationFailure =>
    ApplicationFailure.create({
      type: FailureType.StoreUnavailable,
      message: scrubSecrets(`results store ${op} failed: ${errorMessage(err)}`, [], env),
      nonRetryable: false,
    });
  /**
   * Idempotent upsert of an item's row by (batchId, itemId), secrets scrubbed.
   * Store errors are retryable `StoreUnavailable` (PERSIST_RETRY outlasts a database restart).
   */
  async function persistResult(rec: PersistRequest): Promise<void> {
    const { secretFields, secretValues, firstFailureAt, ...row } = rec;
    const opts = { fields: secretFields ?? [], values: secretValues ?? [], env };
    const clean: ResultRecord = {
      ...row,
      output: scrubValue(row.output, opts),
      error: row.error ? scrubValue(row.error, opts) : null,
      ...(row.review ? { review: scrubValue(row.review, opts) } : {}),
      ...(row.steps ? { steps: scrubValue(row.steps, opts) } : {}),
    };
    let outcome;
    try {
      outcome = await deps.store.upsert(clean);
    } catch (err: unknown) {
      throw storeFailure('upsert', err);
    }
    log().debug('result persisted', { batchId: rec.batchId, itemId: rec.itemId, status: rec.status, outcome });
    // Only a row the store changed is counted: a retried or replayed activity writes nothing and counts nothing.
    if (outcome !== 'unchanged') {
      const recovery = recoverySeconds(rec.status, firstFailureAt, rec.finishedAt);
      steadfastMetrics(Context.current().metricMeter).item({
        status: rec.status,
        provider: rec.provider,
        tier: rec.tier,
        costUsd: rec.costUsd,
        ...(recovery !== undefined ? { recoverySeconds: recovery } : {}),
      });
    }
  }

  /** What the batch needs of an item's stored row (status, provider, tier), or null. */
  async function storedRow(batchId: string, itemId: string): Promise<StoredSummary | null> {
    try {
      const [row] = await deps.store.list(batchId, { itemId, limit: 1 });
      return row ? { status: row.status, provider: row.provider, tier: row.tier } : null;
    } catch (err: unknown) {
      throw storeFailure('read', err);
    }
  }
  const policy = endpointPolicy(env);
  if (deps.simulatedProviderUrl) policy.simulatedUrl = deps.simulatedProviderUrl;
  const cache = responseCache(deps.store, env);
  const callLlm = makeCallLlm({
    policy,
    env,
    ...(deps.fetch ? { fetch: deps.fetch } : {}),
    ...(deps.maxAnswerBytes !== undefined ? { maxAnswerBytes: deps.maxAnswerBytes } : {}),
    cache,
    persist: persistResult,
    storedRow,
  });

  return {
    /** One attempt of one tier; see call-llm.ts. Options: `llmCallFor(provider, spec.retry)`. */
    callLlm,

    /** The activities of `mode: batch` tiers (provider Batch APIs); see provider-batch.ts. */
    ...createProviderBatchActivities({
      store: deps.store,
      policy,
      env,
      ...(deps.fetch ? { fetch: deps.fetch } : {}),
      ...(deps.maxAnswerBytes !== undefined ? { maxAnswerBytes: deps.maxAnswerBytes } : {}),
      cache,
    }),

    /** Signal-with-start of a key's shared `rateLimiter` workflow; see limiter.ts. */
    ensureLimiter,

    /**
     * Checks a spec's tiers under this worker's endpoint policy (hosts, key names) and
     * compiles its output schema, calling nothing: the batch runs it before its first item.
     * @throws InvalidSpec (non-retryable) naming the field
     */
    async checkPipeline(spec: Pick<PipelineSpec, 'providers' | 'output'>): Promise<{ tiers: EndpointInfo[] }> {
      checkEndpoints(spec.providers, policy);
      const problem = spec.output.format === 'json' && spec.output.schema ? schemaProblem(spec.output.schema) : null;
      if (problem) throw ApplicationFailure.create({ type: FailureType.InvalidSpec, message: `pipeline.${problem}`, nonRetryable: true });
      return { tiers: spec.providers.map((p, i) => describeEndpoint(p, i, policy)) };
    },

    /** Counts the messages for the tier's tokenizer and truncates them to its window minus the output reserve. */
    async countAndTruncate(req: TruncateRequest): Promise<TruncateResult> {
      const r = fitToWindow(req.provider, req.messages, req.reserveOutputTokens);
      if (r.truncation) {
        log().info('messages truncated', { model: req.provider.model, ...r.truncation, fits: r.fits });
        steadfastMetrics(Context.current().metricMeter).truncation({ model: req.provider.model });
      }
      return r;
    },

    /**
     * Idempotent upsert of an item's row by (batchId, itemId), secrets scrubbed.
     * Store errors are retryable `StoreUnavailable` (PERSIST_RETRY outlasts a database restart).
     */
    persistResult,

    /** Writes items that never ran (the budget stopped the batch) as `skipped` rows; idempotent. */
    recordNotRun: makeRecordNotRun(deps.store, (op, err) => storeFailure(op, err)),

    /** Rows of a batch (optionally by status, paged by item id). */
    async listResults(batchId: string, opts: ListOptions = {}): Promise<ResultRecord[]> {
      try {
        return await deps.store.list(batchId, opts);
      } catch (err: unknown) {
        throw storeFailure('list', err);
      }
    },

    /** Rolls back a cancelled batch's rows (`mark` or `delete`); idempotent, returns the rows touched. */
    async rollbackResults(req: { batchId: string; mode: 'mark' | 'delete' }): Promise<number> {
      try {
        const n = await deps.store.rollback(req.batchId, req.mode);
        log().info('rows rolled back', { batchId: req.batchId, mode: req.mode, rows: n });
        return n;
      } catch (err: unknown) {
        throw storeFailure('rollback', err);
      }
    },

    /** Number of rows of a batch. */
    async countResults(batchId: string): Promise<number> {
      try {
        return await deps.store.count(batchId);
      } catch (err: unknown) {
        throw storeFailure('count', err);
      }
    },

    /**
     * Posts a Slack-compatible alert. No webhook configured: `{ delivered: false }`.
     * HTTP failure: retryable `WebhookFailed` (NOTIFY_RETRY); the workflow treats the last one as non-fatal.
     */
    async notify(alert: NotifyRequest): Promise<{ delivered: boolean }> {
      const url = webhookUrlOf(alert, env, deps.webhookUrl ?? env['STEADFAST_WEBHOOK_URL']);
      if (!url) {
        log().debug('no webhook configured; alert not sent', { batchId: alert.batchId, kind: alert.kind });
        return { delivered: false };
      }
      await postAlert(url, alert, { signal: Context.current().cancellationSignal, ...(deps.fetch ? { fetch: deps.fetch } : {}) });
      return { delivered: true };
    },

    /** A page of items from a JSONL source under the source roots (activities/source.ts). */
    readItemsPage: makeReadItemsPage(access),

    /** One pass over a JSONL source before its first page: item count and duplicate ids (activities/source.ts). */
    scanSource: makeScanSource(access),

    /**
     * The stored row of one item, or null. The batch asks when a child's id was already used
     * (a re-run or reset of a finished batch): a final row is counted, never run again.
     */
    async itemResult(req: { batchId: string; itemId: string }): Promise<StoredSummary | { workflowClosed: true } | null> {
      const row = await storedRow(req.batchId, req.itemId);
      if (row) return row;
      // No row: the item's workflow is either still running (it will report) or closed without a
      // row (a cancel with rollbackOnCancel: delete removed it), which the batch must run again.
      const id = `${req.batchId}/${req.itemId}`;
      const status = await Context.current()
        .client.workflow.getHandle(id)
        .describe()
        .then(
          (d) => d.status.name,
          (err: unknown) => (err instanceof WorkflowNotFoundError ? 'NOT_FOUND' : Promise.reject(err)),
        );
      return status === 'RUNNING' ? null : { workflowClosed: true };
    },
  };
}

/** The activities object, for `proxyActivities<Activities>`. */
export type Activities = ReturnType<typeof createActivities>;

/** The worker's dependencies from the configuration: the results store (migrated) and the endpoints. */
export async function createDefaultDeps(config: Config = loadConfig()): Promise<ActivityDeps & { close(): Promise<void> }> {
  const store = await openStore({ databaseUrl: config.databaseUrl, dbPath: config.dbPath });
  const webhookUrl = config.webhookUrl;
  return {
    store,
    simulatedProviderUrl: config.simulatedProviderUrl,
    maxAnswerBytes: config.maxAnswerBytes,
    sourceRoots: config.sourceRoots,
    sourceHosts: config.sourceHosts,
    ...(webhookUrl ? { webhookUrl } : {}),
    close: () => store.close(),
  };
}
