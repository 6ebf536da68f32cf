/**
 * The pipeline spec and the batch input, validated once at the boundary with zod.
 *
 * This module is pure (no Node built-ins) because the workflows import it: the
 * batch workflow validates its input before anything runs, so an invalid spec
 * fails at once with a non-retryable error that names the field.
 */
import { z } from 'zod';
import { MAX_BATCH_ID_CHARS, MAX_ITEM_ID_CHARS } from './tiers.ts';
import { schemaProblem } from './validate.ts';
import { parseWhen } from './when.ts';

const DURATION_RE = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/;
const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** Parses `250ms`, `30s`, `5m`, `24h`, `7d` or a number of milliseconds. */
export function parseDuration(value: number | string): number {
  if (typeof value === 'number') return value;
  const m = DURATION_RE.exec(value.trim());
  if (!m) throw new Error(`not a duration: ${JSON.stringify(value)} (use e.g. 500ms, 30s, 5m, 24h, 7d)`);
  return Math.round(Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS]);
}

/** A duration as milliseconds or a string such as `30s`; parsed to milliseconds. */
export const Duration = z.union([z.number().nonnegative(), z.string().regex(DURATION_RE, 'a duration such as 500ms, 30s, 5m, 24h or 7d')]).transform((v) => parseDuration(v));

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Headers a tier may not set: keys travel only through apiKeyEnv and the worker's policy. */
export const RESERVED_HEADERS: readonly string[] = ['authorization', 'x-api-key', 'api-key', 'cookie', 'proxy-authorization'];

/** One tier of the provider chain. API keys are named by env var, never inlined. */
export const ProviderSpec = z
  .object({
    /** Label of this tier in results and metrics, e.g. `primary`. @default `tier<N>:<kind>:<model>` (N counts from 1) */
    name: z.string().min(1).optional(),
    kind: z.enum(['openai', 'anthropic', 'openai-compatible']),
    model: z.string().min(1),
    /**
     * Endpoint; omitted means the vendor's API (or, on a worker switched to it, the
     * fault-injecting provider). The worker allows only its operator's hosts.
     */
    baseURL: z.string().url().optional(),
    /** Name of the env var that holds the API key on the workers; the worker allows only its operator's names. */
    apiKeyEnv: z.string().regex(ENV_NAME, 'an environment variable name').optional(),
    /** Context window in tokens. @default 128000 (openai), 200000 (anthropic), 32768 (compatible) */
    contextWindow: z.number().int().positive().optional(),
    /** Extra HTTP headers of this tier (OpenAI-Organization, OpenAI-Project, OpenRouter's HTTP-Referer / X-Title); never keys. */
    headers: z
      .record(z.string().regex(/^[A-Za-z0-9-]+$/, 'an HTTP header name'), z.string().max(1_000))
      .superRefine((h, ctx) => {
        for (const name of Object.keys(h)) {
          if (RESERVED_HEADERS.includes(name.toLowerCase())) ctx.addIssue({ code: 'custom', path: [name], message: `${name} carries a key: name the key with apiKeyEnv instead` });
        }
      })
      .optional(),
    /** Output tokens requested per call. @default 1024 */
    maxOutputTokens: z.number().int().positive().default(1024),
    temperature: z.number().min(0).max(2).optional(),
    /** Start-to-close timeout of one attempt; grows by `timeoutGrowth` per attempt. @default 60s */
    timeout: Duration.default(60_000),
    /** Factor applied to the timeout on each further attempt. @default 1.5 */
    timeoutGrowth: z.number().min(1).max(4).default(1.5),
    /** USD per million tokens. @default 0 */
    pricing: z
      .object({
        inputPerMTok: z.number().nonnegative().default(0),
        outputPerMTok: z.number().nonnegative().default(0),
        /** Prompt tokens read from the provider's cache. @default inputPerMTok */
        cachedInputPerMTok: z.number().nonnegative().optional(),
        /** Prompt tokens written to the cache (Anthropic). @default inputPerMTok */
        cacheWritePerMTok: z.number().nonnegative().optional(),
        /**
         * Share taken off every price above for a request sent through a provider batch
         * (`mode: batch`): cost = price x (1 - batchDiscount). @default 0.5 (both vendors bill batches at half price)
         */
        batchDiscount: z.number().min(0).max(1).optional(),
      })
      .strict()
      .default({ inputPerMTok: 0, outputPerMTok: 0 }),
    /**
     * `sync` calls the model per item; `batch` sends the tier's requests through the vendor's
     * Batch API (OpenAI `/v1/batches`, Anthropic `/v1/messages/batches`): cheaper, answers within hours. @default sync
     */
    mode: z.enum(['sync', 'batch']).optional(),
    /** How a `mode: batch` tier groups and polls its provider batches. */
    batch: z
      .object({
        /** Most requests in one provider batch. @default 50000 (OpenAI), 100000 (Anthropic): the vendors' limits */
        maxRequests: z.number().int().min(1).max(100_000).optional(),
        /** Largest provider batch in bytes (the JSONL file, or the create body). @default 190 MB (OpenAI), 240 MB (Anthropic): under the vendors' 200 MB / 256 MB */
        maxBytes: z.number().int().min(1024).optional(),
        /** How long a group stays open for more items after its first one before it is submitted. @default 30s */
        window: Duration.optional(),
        /** Time between two status polls of a submitted provider batch. @default 1m */
        pollInterval: Duration.optional(),
        /** The provider's completion window; OpenAI accepts `24h` only, Anthropic batches always end within 24 hours. @default 24h */
        completionWindow: z.literal('24h').optional(),
      })
      .strict()
      .optional(),
    /** Pacing targets; adapted from the provider's rate-limit headers. */
    rateLimit: z
      .object({
        requestsPerMinute: z.number().positive().optional(),
        tokensPerMinute: z.number().positive().optional(),
      })
      .optional(),
  })
  .strict()
  .refine((p) => p.mode !== 'batch' || p.kind !== 'openai-compatible' || p.baseURL !== undefined, {
    message: 'a mode: batch tier of kind openai-compatible needs the baseURL of a server that serves /v1/files and /v1/batches',
    path: ['mode'],
  });
export type ProviderSpec = z.output<typeof ProviderSpec>;
export type ProviderSpecInput = z.input<typeof ProviderSpec>;

const Prompt = z
  .object({
    system: z.string().optional(),
    /** `{{field}}` placeholders are replaced with the item's fields. */
    template: z.string().min(1),
  })
  .strict();

const Output = z
  .object({
    format: z.enum(['text', 'json']).default('text'),
    /** JSON Schema the parsed output must satisfy (format `json`): drafts 07, 2019-09, 2020-12 (the default). */
    schema: z
      .record(z.string(), z.unknown())
      .superRefine((schema, ctx) => {
        // Compiled here (and cached) so an unusable schema fails the batch before any item runs.
        const problem = schemaProblem(schema);
        if (problem) ctx.addIssue({ code: 'custom', message: problem.replace(/^output\.schema /, '') });
      })
      .optional(),
  })
  .strict();

const Retry = z
  .object({
    /** Attempts per tier before it is left for the next. @default 5 */
    maxAttempts: z.number().int().min(1).max(100).default(5),
    initialInterval: Duration.default(1_000),
    maxInterval: Duration.default(60_000),
    backoffCoefficient: z.number().min(1).max(10).default(2),
  })
  .strict();

const Truncation = z
  .object({
    /** `truncate` the messages, or move to a `larger-model` tier first, or `fail` to review. */
    strategy: z.enum(['truncate', 'larger-model', 'fail']).default('truncate'),
  })
  .strict();

const Repair = z.object({ maxRepairs: z.number().int().min(0).max(10).default(2) }).strict();

/** Most steps a pipeline may have. */
export const MAX_STEPS = 10;

/** One step of a multi-step pipeline; omitted settings are the pipeline's. */
export const Step = z
  .object({
    /** Name of the step: `{{steps.<name>.field}}` in later templates, `steps.<name>` in conditions, `--step` in exports. */
    name: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,39}$/, 'a name of letters, digits and _ (at most 40), starting with a letter or _'),
    prompt: Prompt,
    output: Output.default({ format: 'text' }),
    /** Condition on the item and earlier outputs; the step is skipped when it is false (when-expressions in src/shared/when.ts). */
    when: z.string().min(1).optional(),
    /** The step's own provider chain (its tiers have no circuit breaker shared with the batch). @default the pipeline's */
    providers: z.array(ProviderSpec).min(1, 'at least one provider').max(5).optional(),
    /** Overrides of the pipeline's retry settings; fields left out keep the pipeline's. */
    retry: z
      .object({
        maxAttempts: z.number().int().min(1).max(100).optional(),
        initialInterval: Duration.optional(),
        maxInterval: Duration.optional(),
        backoffCoefficient: z.number().min(1).max(10).optional(),
      })
      .strict()
      .optional(),
    truncation: Truncation.optional(),
    repair: Repair.optional(),
  })
  .strict();
export type Step = z.output<typeof Step>;

/** The rules across fields of a spec: `prompt` or `steps`, unique step names, conditions that parse. */
function checkSteps(s: { prompt?: unknown; output: { format: string; schema?: unknown }; steps?: Step[] | undefined }, ctx: z.RefinementCtx): void {
  if (!s.steps) {
    if (s.prompt === undefined) ctx.addIssue({ code: 'custom', path: ['prompt'], message: 'a prompt is required (or give "steps")' });
    return;
  }
  if (s.prompt !== undefined) ctx.addIssue({ code: 'custom', path: ['prompt'], message: 'give either "prompt" or "steps", not both (each step has its own prompt)' });
  if (s.output.format !== 'text' || s.output.schema !== undefined)
    ctx.addIssue({ code: 'custom', path: ['output'], message: 'with "steps" each step has its own output; remove the top-level output' });
  const names: string[] = [];
  s.steps.forEach((step, i) => {
    if (names.includes(step.name)) ctx.addIssue({ code: 'custom', path: ['steps', i, 'name'], message: `step name ${JSON.stringify(step.name)} is used twice` });
    for (const ref of stepRefs(`${step.prompt.system ?? ''} ${step.prompt.template}`)) {
      if (!names.includes(ref))
        ctx.addIssue({
          code: 'custom',
          path: ['steps', i, 'prompt'],
          message: `{{steps.${ref}...}} does not name an earlier step (${names.length > 0 ? `earlier steps: ${names.join(', ')}` : 'this is the first step'})`,
        });
    }
    if (step.when !== undefined) {
      try {
        parseWhen(step.when, names);
      } catch (err) {
        ctx.addIssue({ code: 'custom', path: ['steps', i, 'when'], message: `step ${JSON.stringify(step.name)}: ${err instanceof Error ? err.message : String(err)}` });
      }
    }
    names.push(step.name);
  });
}

/** The step names a template's `{{steps.<name>...}}` placeholders refer to. */
export function stepRefs(template: string): string[] {
  return [...template.matchAll(/\{\{\s*steps\.([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) => m[1]!);
}

export const PipelineSpec = z
  .object({
    name: z.string().min(1).default('pipeline'),
    /** Required unless `steps` are given. */
    prompt: Prompt.optional(),
    output: Output.default({ format: 'text' }),
    /** A multi-step pipeline: the steps in order (instead of `prompt` and `output`); see pipeline-steps.ts. */
    steps: z.array(Step).min(1).max(MAX_STEPS).optional(),
    /** Fields every item must have besides `id`; the template's placeholders are required too. */
    input: z
      .object({ required: z.array(z.string().min(1)).default([]), maxChars: z.number().int().positive().optional() })
      .strict()
      .default({ required: [] }),
    providers: z.array(ProviderSpec).min(1, 'at least one provider').max(5),
    retry: Retry.default({ maxAttempts: 5, initialInterval: 1_000, maxInterval: 60_000, backoffCoefficient: 2 }),
    truncation: Truncation.default({ strategy: 'truncate' }),
    repair: Repair.default({ maxRepairs: 2 }),
    review: z
      .object({
        /** How long a failed item waits for a human. @default 7d */
        timeout: Duration.default(7 * 86_400_000),
        defaultDecision: z.enum(['skip', 'approve']).default('skip'),
      })
      .strict()
      .default({ timeout: 7 * 86_400_000, defaultDecision: 'skip' }),
    batch: z
      .object({
        /**
         * Items calling a model at once: at most this many LLM calls are in flight. An item
         * whose call succeeded frees its slot while it persists and reports, so up to twice
         * this many item workflows may be running.
         */
        concurrency: z.number().int().min(1).max(500).default(10),
        /** Lower the calls in flight under `concurrency` when the provider sheds calls (429, 529) or slows down, and grow them back (AIMD). @default false */
        adaptiveConcurrency: z.boolean().optional(),
        /**
         * `true`: the batch makes each item's first call itself (one attempt on the first tier)
         * and the call writes the row; only an item whose first call fails gets its own
         * workflow, which goes on from that call (retries, repairs, later tiers, review). By
         * default every item runs in its own workflow `<batchId>/<itemId>`. Items of multi-step,
         * rate-limited, adaptive or `mode: batch` specs, and prompts that need counting, always
         * get their own. @default false
         */
        fastPath: z.boolean().optional(),
        /** Stop or pause after this many consecutive failed items; 0 disables. */
        maxConsecutiveFailures: z.number().int().min(0).default(0),
        onTooManyFailures: z.enum(['pause', 'stop']).default('pause'),
        /**
         * On cancel, what happens to the rows this batch wrote: `none` keeps them, `mark` sets
         * their status to `rolled_back`, `delete` removes them. @default none
         */
        rollbackOnCancel: z.enum(['none', 'mark', 'delete']).default('none'),
      })
      .strict()
      .default({ concurrency: 10, maxConsecutiveFailures: 0, onTooManyFailures: 'pause', rollbackOnCancel: 'none' }),
    circuitBreaker: z
      .object({
        failureThreshold: z.number().int().min(1).default(5),
        cooldown: Duration.default(60_000),
      })
      .strict()
      .default({ failureThreshold: 5, cooldown: 60_000 }),
    alerts: z
      .object({
        webhookUrl: z.string().url().optional(),
        /** Env var on the workers holding the webhook URL (keeps tokens out of history). */
        webhookUrlEnv: z.string().regex(ENV_NAME).optional(),
        errorRateThreshold: z.number().min(0).max(1).default(0.05),
        /** Items entering review are posted as one digest per interval (counts by error type), not one post each. @default 10m */
        reviewDigestInterval: Duration.default(600_000),
      })
      .strict()
      .default({ errorRateThreshold: 0.05, reviewDigestInterval: 600_000 }),
    /** Item fields that are secret: scrubbed from logs, errors and the results store. */
    secretFields: z.array(z.string()).default([]),
    /**
     * The response cache in the results database: a call whose request (provider, endpoint, model,
     * messages, output schema, temperature, max tokens) was answered validly before is served from
     * it at no cost, across batches, re-runs and workers.
     */
    cache: z
      .object({
        enabled: z.boolean().default(true),
        /** Entries older than this are not served (the provider answers and the entry stays). @default no limit */
        maxAge: Duration.optional(),
      })
      .strict()
      .optional(),
    /** A spending limit of the batch: checked before each item starts, against booked plus in-flight estimated cost. */
    budget: z
      .object({
        /** USD the batch may spend. */
        maxCostUsd: z.number().positive().finite(),
        /** `pause`: no item starts until the budget is raised (`steadfast resume --budget`); `stop`: the items not started end as skipped rows. */
        onExceeded: z.enum(['pause', 'stop']).default('pause'),
      })
      .strict()
      .optional(),
  })
  .strict()
  .superRefine(checkSteps);
export type PipelineSpec = z.output<typeof PipelineSpec>;
export type PipelineSpecInput = z.input<typeof PipelineSpec>;

export { INVALID_LINE_FIELD, contextWindowOf, tierName } from './tiers.ts';

export { MAX_BATCH_ID_CHARS, MAX_ITEM_ID_CHARS } from './tiers.ts';

/** An item: an `id` plus any fields the template uses. */
export const Item = z.looseObject({
  id: z
    .string()
    .min(1, 'item id must be a non-empty string')
    .max(MAX_ITEM_ID_CHARS, `item id is longer than ${MAX_ITEM_ID_CHARS} characters (its workflow id would pass Temporal's limit)`),
});
export type Item = z.output<typeof Item>;

/** Input of the `batchPipeline` workflow: a stable interface (the Temporal CLI starts batches with it). */
export const BatchInput = z
  .object({
    batchId: z
      .string()
      .min(1)
      .max(MAX_BATCH_ID_CHARS, `batch id is longer than ${MAX_BATCH_ID_CHARS} characters`)
      .regex(/^[^/]+$/, 'no "/" in a batch id')
      .optional(),
    pipeline: PipelineSpec,
    items: z.array(Item).optional(),
    source: z
      .object({ jsonl: z.string().min(1) })
      .strict()
      .optional(),
  })
  .strict()
  .refine((b) => (b.items ? 1 : 0) + (b.source ? 1 : 0) === 1, {
    message: 'give exactly one of "items" or "source"',
    path: ['items'],
  });
export type BatchInput = z.output<typeof BatchInput>;
export type BatchInputRaw = z.input<typeof BatchInput>;

/** Formats zod issues as `path.to.field: message; ...`, naming each field. */
export function formatIssues(error: z.ZodError, prefix = ''): string {
  return error.issues
    .map((i) => {
      const path = [prefix, ...i.path.map((p) => (typeof p === 'number' ? `[${p}]` : String(p)))].filter(Boolean).join('.').replace(/\.\[/g, '[');
      return `${path || '(root)'}: ${i.message}`;
    })
    .join('; ');
}
