/**
 * Generates docs/spec.md, the pipeline spec reference, from the zod schema itself
 * (`z.toJSONSchema` of `PipelineSpec`): every field with its type, default, a
 * description and an example. test/unit/spec-doc.test.ts fails when the file is not
 * what this prints or a field has no description, so the reference cannot drift.
 *
 *   node src/dev/spec-doc.ts > docs/spec.md
 */
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { PipelineSpec } from '../shared/spec.ts';

/** Description and example of each field, by path (`providers[].pricing.inputPerMTok`). */
export const FIELDS: Record<string, [description: string, example: string]> = {
  name: ['Name of the pipeline, shown in summaries and logs.', '"ticket-triage"'],
  prompt: ['The prompt: an optional system message and the user template. Required unless `steps` are given (then each step has its own).', '{ "template": "Classify: {{text}}" }'],
  'prompt.system': [
    'System message; `{{field}}` placeholders are filled from the item. Shared by every item (prompt-cached on Anthropic).',
    '"You are a support triage assistant."',
  ],
  'prompt.template': [
    "User message; `{{field}}` / `{{ field.sub }}` placeholders are replaced with the item's fields (each must be present). The text before the first placeholder is prompt-cached on Anthropic.",
    '"Ticket {{id}}: {{text}}"',
  ],
  output: ['What the answer must be.', '{ "format": "json", "schema": { "type": "object" } }'],
  'output.format': ['`text`: any answer; `json`: a JSON value, parsed and validated against `schema`.', '"json"'],
  'output.schema': [
    'JSON Schema the parsed answer must satisfy, validated by Ajv with ajv-formats. Drafts 07, 2019-09 and 2020-12 (`$schema`; without one, 2020-12). An unusable schema, an unknown keyword or format, or a dangling `$ref` fails the batch at once. Sent to OpenAI with `strict: true` when it is inside the strict subset, else `strict: false`.',
    '{ "type": "object", "properties": { "label": { "enum": ["billing", "other"] } }, "required": ["label"], "additionalProperties": false }',
  ],
  steps: [
    "A multi-step pipeline instead of `prompt` and `output`: 1 to 10 steps run in order for each item, each step's validated output feeding the later steps. Each step may override the pipeline's `providers`, `retry`, `truncation` and `repair`. A finished step is never called again; a step that fails for good waits for review at that step. See docs/pipelines.md.",
    '[{ "name": "extract", "prompt": { "template": "Extract: {{text}}" }, "output": { "format": "json", "schema": { "type": "object" } } }, { "name": "note", "prompt": { "template": "Note on {{steps.extract.total}}" } }]',
  ],
  'steps[].name': ['Name of the step (letters, digits, `_`; unique): `{{steps.<name>.field}}` in later templates, `steps.<name>` in `when`, `export --step <name>`.', '"extract"'],
  'steps[].prompt': [
    "The step's prompt, as `prompt`: `{{field}}` reads the item, `{{steps.<name>.field}}` (or `{{steps.<name>}}` for a text output) an earlier step's output. Naming a later or unknown step fails the spec.",
    '{ "template": "Classify {{steps.extract.vendor}}: {{text}}" }',
  ],
  'steps[].output': [
    "The step's output, as `output` (`format`, `schema`). The item's final output is the output of the last step that ran.",
    '{ "format": "json", "schema": { "type": "object" } }',
  ],
  'steps[].when': [
    'Condition on the item and earlier outputs; the step is skipped (status `skipped`, output null) when it is false. Comparisons (`==`, `!=`, `<`, `<=`, `>`, `>=`), `and`/`or`/`not`, parentheses, paths `steps.<earlier step>.<field>` and `item.<field>`, number, string, `true`/`false`/`null` literals. Checked with the spec: an error names the step and the position. Grammar: docs/pipelines.md.',
    '"steps.extract.total >= 100 and steps.classify.category != \\"other\\""',
  ],
  'steps[].providers': [
    "The step's own provider chain (fields as `providers[]`); its tiers have their own circuit state, not the batch's breakers. Default: the pipeline's `providers`.",
    '[{ "name": "writer", "kind": "anthropic", "model": "claude-haiku-4-5" }]',
  ],
  'steps[].retry': ["Overrides of the pipeline's `retry` for this step; fields left out keep the pipeline's.", '{ "maxAttempts": 2 }'],
  'steps[].retry.maxAttempts': ['Attempts per tier of this step.', '2'],
  'steps[].retry.initialInterval': ['First retry delay of this step.', '"1s"'],
  'steps[].retry.maxInterval': ['Longest retry delay of this step.', '"30s"'],
  'steps[].retry.backoffCoefficient': ['Backoff factor of this step.', '2'],
  'steps[].truncation': ["The step's `truncation` (default: the pipeline's).", '{ "strategy": "fail" }'],
  'steps[].truncation.strategy': ['As `truncation.strategy`, for this step.', '"larger-model"'],
  'steps[].repair': ["The step's `repair` (default: the pipeline's).", '{ "maxRepairs": 0 }'],
  'steps[].repair.maxRepairs': ['As `repair.maxRepairs`, for this step.', '1'],
  input: ['Checks on each item before any call.', '{ "required": ["text"] }'],
  'input.required': ["Fields every item must have besides `id` (the template's placeholders are required too).", '["text", "customer"]'],
  'input.maxChars': ['Largest item, in characters of its JSON; a larger item goes to review as InvalidItem.', '20000'],
  providers: ['The provider chain, tried in order (1 to 5 tiers).', '[{ "name": "primary", "kind": "openai", "model": "gpt-4o-mini" }]'],
  'providers[].name': ['Label of the tier in results, metrics and reviews. Default `tier<N>:<kind>:<model>`.', '"primary"'],
  'providers[].kind': [
    'API dialect: `openai` (Chat Completions), `anthropic` (Messages) or `openai-compatible` (any server speaking Chat Completions: vLLM, Ollama, LM Studio, Gemini, OpenRouter, Azure v1).',
    '"anthropic"',
  ],
  'providers[].model': ['Model id as the endpoint knows it.', '"claude-haiku-4-5"'],
  'providers[].baseURL': [
    "Endpoint URL. Omitted: the vendor's API (or, on a worker with STEADFAST_SIMULATED_PROVIDER_URL, the fault-injecting provider). The worker allows only the vendors' hosts, loopback and its operator's STEADFAST_ALLOWED_HOSTS / STEADFAST_KEY_HOSTS; anything else fails the batch at once. Required for `openai-compatible`.",
    '"http://127.0.0.1:8000/v1"',
  ],
  'providers[].apiKeyEnv': [
    "Name of the worker's env var holding the key. Default `OPENAI_API_KEY` / `ANTHROPIC_API_KEY` for the vendor's own host, none elsewhere. The worker lends only the names in its STEADFAST_KEY_HOSTS (plus the two defaults), and each only to its listed hosts.",
    '"OPENROUTER_API_KEY"',
  ],
  'providers[].contextWindow': [
    "Context window in tokens, for counting and truncation. Default 128000 (openai), 200000 (anthropic), 32768 (openai-compatible: set it to the served model's).",
    '131072',
  ],
  'providers[].headers': [
    "Extra HTTP headers of the tier (OpenAI-Organization, OpenAI-Project, OpenRouter's HTTP-Referer and X-Title). Never keys: Authorization, x-api-key, api-key and cookies are refused.",
    '{ "OpenAI-Project": "proj_abc" }',
  ],
  'providers[].maxOutputTokens': ['Output tokens requested per call (`max_completion_tokens` on OpenAI, `max_tokens` elsewhere).', '512'],
  'providers[].temperature': ["Sampling temperature, 0 to 2 (capped at 1 for Anthropic). Default: the endpoint's.", '0'],
  'providers[].timeout': ['Timeout of one attempt (`30s`, `2m` or milliseconds); grows by `timeoutGrowth` per attempt.', '"60s"'],
  'providers[].timeoutGrowth': ['Factor applied to the timeout on each further attempt (1 to 4).', '1.5'],
  'providers[].pricing': ['USD per million tokens, for the cost in rows, summaries and metrics.', '{ "inputPerMTok": 0.15, "outputPerMTok": 0.6, "cachedInputPerMTok": 0.075 }'],
  'providers[].pricing.inputPerMTok': ['Prompt tokens not read from or written to the cache.', '0.15'],
  'providers[].pricing.outputPerMTok': ['Output tokens.', '0.6'],
  'providers[].pricing.cachedInputPerMTok': [
    "Prompt tokens read from the provider's cache (OpenAI `cached_tokens`, Anthropic `cache_read_input_tokens`). Default: `inputPerMTok`.",
    '0.075',
  ],
  'providers[].pricing.cacheWritePerMTok': ['Prompt tokens written to the cache (Anthropic `cache_creation_input_tokens`). Default: `inputPerMTok`.', '1.25'],
  'providers[].pricing.batchDiscount': [
    'Share taken off every price of the tier for a request sent through a provider batch (`mode: batch`): cost = price x (1 - batchDiscount). Default 0.5: OpenAI and Anthropic bill batch requests at half price.',
    '0.5',
  ],
  'providers[].mode': [
    "`sync` (default) calls the model once per item. `batch` sends the tier's requests through the vendor's Batch API (OpenAI `/v1/files` + `/v1/batches`, Anthropic `/v1/messages/batches`): grouped per batch and tier, submitted once, polled with durable timers for up to 24 hours, priced with `pricing.batchDiscount`. A request that errors, expires or is cancelled moves the item on to the next tier or to review like a failed call. See docs/providers.md.",
    '"batch"',
  ],
  'providers[].batch': ['How a `mode: batch` tier groups and polls its provider batches.', '{ "window": "30s", "pollInterval": "5m" }'],
  'providers[].batch.maxRequests': ["Most requests in one provider batch. Default: the vendor's limit, 50000 (OpenAI) or 100000 (Anthropic).", '10000'],
  'providers[].batch.maxBytes': [
    'Largest provider batch in bytes: the JSONL file (OpenAI) or the create body (Anthropic). Default 190 MB (OpenAI, limit 200 MB) or 240 MB (Anthropic, limit 256 MB).',
    '104857600',
  ],
  'providers[].batch.window': ['How long a group stays open for more items after its first one before it is submitted (`30s`, `5m`). Default 30s.', '"2m"'],
  'providers[].batch.pollInterval': ['Time between two status polls of a submitted provider batch (a durable timer: it holds across worker restarts). Default 1m.', '"5m"'],
  'providers[].batch.completionWindow': ['The completion window asked for; `24h` is the only one the vendors offer. Default 24h.', '"24h"'],
  'providers[].rateLimit': [
    "The key's limits. On the first tier they are shared: every batch on the same key (kind, endpoint host, `apiKeyEnv`, model) takes permits from one limiter workflow, so together they stay under it; the provider's rate-limit headers tighten them.",
    '{ "requestsPerMinute": 500 }',
  ],
  'providers[].rateLimit.requestsPerMinute': ['Requests per minute.', '500'],
  'providers[].rateLimit.tokensPerMinute': ['Tokens per minute, counted like the vendors: the prompt plus `maxOutputTokens` per request.', '200000'],
  retry: ['Per-tier retries of transient failures (Temporal RetryPolicy).', '{ "maxAttempts": 5 }'],
  'retry.maxAttempts': ['Attempts per tier before the next tier is tried.', '5'],
  'retry.initialInterval': ["First backoff (jittered); a provider's Retry-After wins.", '"1s"'],
  'retry.maxInterval': ['Longest backoff.', '"60s"'],
  'retry.backoffCoefficient': ['Backoff growth per attempt.', '2'],
  truncation: ["What to do when the prompt does not fit a tier's window.", '{ "strategy": "truncate" }'],
  'truncation.strategy': [
    '`truncate` (drop oldest turns, then trim the longest user text), `larger-model` (next tier with a larger window first) or `fail` (review).',
    '"larger-model"',
  ],
  repair: ['Re-asking the model after an invalid answer.', '{ "maxRepairs": 2 }'],
  'repair.maxRepairs': ['Repair prompts (with the validation errors) per tier before the next tier.', '2'],
  review: ['Human review of items that failed for good.', '{ "timeout": "24h", "defaultDecision": "skip" }'],
  'review.timeout': ['How long an item waits for a decision.', '"24h"'],
  'review.defaultDecision': ['Applied when the review times out: `skip` or `approve` (the best output).', '"skip"'],
  batch: ['Batch dispatch.', '{ "concurrency": 20 }'],
  'batch.concurrency': ['LLM calls in flight at once (1 to 500).', '20'],
  'batch.adaptiveConcurrency': [
    'Lower the calls in flight under `concurrency` when the provider sheds calls (429, 529) or its latency doubles, and grow them back by about one per round of calls (AIMD).',
    'true',
  ],
  'batch.fastPath': [
    "`true`: the batch makes each item's first call itself (one attempt on the first tier) and the call writes its row; only an item whose first call fails gets its own workflow, which goes on from that call. Default false: every item runs in its own workflow `<batchId>/<itemId>`. Multi-step, rate-limited, adaptive and `mode: batch` specs, and prompts that need counting, always use item workflows. For large batches: 5 to 12 times the items per second at a fifth of the CPU (docs/benchmarks.md, section g).",
    'true',
  ],
  'batch.maxConsecutiveFailures': ['Pause or stop after this many consecutive failed items; 0 disables.', '25'],
  'batch.onTooManyFailures': ['`pause` (resume by signal) or `stop`.', '"pause"'],
  'batch.rollbackOnCancel': ['On cancel, the rows this batch wrote: `none` keeps them, `mark` sets their status to `rolled_back`, `delete` removes them.', '"mark"'],
  circuitBreaker: ['Per-tier circuit breaker, durable across workers.', '{ "failureThreshold": 5, "cooldown": "60s" }'],
  'circuitBreaker.failureThreshold': ['Consecutive provider failures that open the circuit.', '5'],
  'circuitBreaker.cooldown': ['How long the circuit stays open before one probe.', '"60s"'],
  alerts: ['Slack-compatible webhook alerts.', '{ "webhookUrlEnv": "SLACK_WEBHOOK_URL" }'],
  'alerts.webhookUrl': ['Webhook URL (kept in history: prefer `webhookUrlEnv` for URLs carrying a token).', '"https://hooks.example.com/steadfast"'],
  'alerts.webhookUrlEnv': ['Env var on the workers holding the webhook URL.', '"SLACK_WEBHOOK_URL"'],
  'alerts.errorRateThreshold': ["Alert when the batch's error rate passes this fraction.", '0.05'],
  'alerts.reviewDigestInterval': ['Items entering review are posted as one digest per interval, with counts by error type.', '"10m"'],
  secretFields: ['Item fields that are secret: redacted from logs, errors and the results store.', '["ssn"]'],
  cache: [
    'The response cache in the results database (SQLite or PostgreSQL): a call whose request was answered validly before (same provider kind, endpoint, model, messages as sent, output format and schema, temperature and max tokens; never the key) is served from it with no provider call and cost 0, across batches, re-runs and workers; `mode: batch` tiers use the same entries (a hit is not staged into a provider batch). Only answers that passed validation are stored. Rows (`cacheHit`: every call of the item was a hit), the summary (`cacheHits`, per call) and `steadfast_cache_hits_total` record the hits.',
    '{ "enabled": true }',
  ],
  'cache.enabled': ['Turns the cache on (set `false` to keep the block and call the provider every time).', 'true'],
  'cache.maxAge': ['Entries older than this are not served; the provider answers instead. Unset: no limit.', '"7d"'],
  budget: [
    "A spending limit for the batch. Before each item starts, the booked cost of finished items plus the estimated cost of the items in flight plus this item's estimate must stay within `maxCostUsd`. Alerts at 80% of the budget and when it is reached; progress shows spent / budget.",
    '{ "maxCostUsd": 25, "onExceeded": "pause" }',
  ],
  'budget.maxCostUsd': ['USD the batch may spend. Raise it on a paused batch with `steadfast resume <batchId> --budget <usd>` (the `setBudget` Update).', '25'],
  'budget.onExceeded': [
    '`pause`: no further item starts until the budget is raised; `stop`: the items not started end as `skipped` rows with error type `BudgetExceeded` (re-run them with `steadfast rerun --skipped`).',
    '"stop"',
  ],
};

interface Node {
  type?: string | string[];
  enum?: unknown[];
  default?: unknown;
  properties?: Record<string, Node>;
  required?: string[];
  items?: Node;
  anyOf?: Node[];
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
}

/** Fields whose sub-fields are not listed again (they repeat `prompt`, `output` and `providers[]`). */
const LEAVES = ['steps[].prompt', 'steps[].output', 'steps[].providers'];

/** Every field of the spec as (path, node, required), depth first. */
export function specFields(): Array<{ path: string; node: Node; required: boolean }> {
  const root = z.toJSONSchema(PipelineSpec, { io: 'input', unrepresentable: 'any' }) as Node;
  const out: Array<{ path: string; node: Node; required: boolean }> = [];
  const walk = (n: Node, prefix: string): void => {
    for (const [k, child] of Object.entries(n.properties ?? {})) {
      const path = prefix ? `${prefix}.${k}` : k;
      out.push({ path, node: child, required: (n.required ?? []).includes(k) });
      // A step's prompt, output and providers have the fields of the top-level ones, documented there.
      if (LEAVES.includes(path)) continue;
      if (child.properties) walk(child, path);
      if (child.items?.properties) walk(child.items, `${path}[]`);
    }
  };
  walk(root, '');
  return out;
}

function typeOf(n: Node): string {
  if (n.enum) return n.enum.map((v) => JSON.stringify(v)).join(', ');
  if (n.anyOf) return [...new Set(n.anyOf.map(typeOf))].join(' or ');
  const t = Array.isArray(n.type) ? n.type.join(' or ') : (n.type ?? 'any');
  return t === 'array' && n.items ? `array of ${typeOf(n.items)}` : t;
}

const cell = (s: string): string => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** The Markdown of docs/spec.md. */
export function renderSpecDoc(): string {
  const lines = [
    '# Pipeline spec reference',
    '',
    'Generated from the zod schema (`src/shared/spec.ts`) by `node src/dev/spec-doc.ts > docs/spec.md`;',
    'test/unit/spec-doc.test.ts fails when this file and the schema disagree. Durations are milliseconds',
    'or strings such as `500ms`, `30s`, `5m`, `24h`, `7d`. Unknown fields are rejected, naming the field.',
    'Where keys, hosts and the fault-injecting provider are decided: docs/providers.md.',
    '',
    '| Field | Type | Required | Default | Description | Example |',
    '| --- | --- | --- | --- | --- | --- |',
  ];
  for (const { path, node, required } of specFields()) {
    const [description, example] = FIELDS[path] ?? ['(undocumented)', ''];
    const def = node.default === undefined ? '' : `\`${JSON.stringify(node.default)}\``;
    lines.push(`| \`${path}\` | ${cell(typeOf(node))} | ${required ? 'yes' : ''} | ${cell(def)} | ${cell(description)} | \`${cell(example)}\` |`);
  }
  return `${lines.join('\n')}\n`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) process.stdout.write(renderSpecDoc());
