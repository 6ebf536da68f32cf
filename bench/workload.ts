/**
 * The benchmark's workload: the ticket-triage pipeline of examples/pipeline.json
 * (same prompt, same JSON schema) with one OpenAI tier pointed at a given
 * provider, and generated items. Both sides of every comparison use these.
 */
import { createWriteStream, readFileSync } from 'node:fs';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { PipelineSpec } from '../src/shared/spec.ts';
import type { Item, PipelineSpecInput } from '../src/shared/spec.ts';

const EXAMPLE = fileURLToPath(new URL('../examples/pipeline.json', import.meta.url));

const CUSTOMERS = ['Globex', 'Initech', 'Umbrella', 'Hooli', 'Stark Industries', 'Wayne Enterprises', 'Soylent', 'Acme Corp'];
const TEXTS = [
  "The export button returns a 500 error since this morning's release.",
  'How do I change the email address on my account?',
  'Our whole team is locked out after enabling SSO. Production is blocked.',
  'Can you send an invoice with our VAT number on it?',
  'The mobile app crashes when I open a PDF attachment larger than 10 MB.',
  'Please delete my account and all associated data.',
  'API requests time out intermittently from eu-west since yesterday.',
  'I was charged twice for my subscription this month. Please refund the duplicate payment.',
];

/** Item `i` (0-based): a unique id, so each item is a distinct request identity at the provider. */
export function makeItem(i: number, prefix = 'i'): Item {
  return { id: `${prefix}${String(i).padStart(6, '0')}`, customer: CUSTOMERS[i % CUSTOMERS.length]!, text: TEXTS[(i * 7) % TEXTS.length]! };
}

export function makeItems(n: number, prefix = 'i'): Item[] {
  return Array.from({ length: n }, (_, i) => makeItem(i, prefix));
}

/** Writes `n` items as JSONL (the `--large` batch is passed by reference). */
export async function writeItemsJsonl(path: string, n: number): Promise<void> {
  const out = createWriteStream(path);
  for (let i = 0; i < n; i++) {
    if (!out.write(`${JSON.stringify(makeItem(i))}\n`)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
}

export interface WorkloadOptions {
  providerUrl: string;
  concurrency: number;
  /** Per-attempt timeout of the call (ms). @default 30000 */
  timeoutMs?: number;
  /** @default 5 attempts, 200 ms initial, 2 s max */
  retry?: { maxAttempts: number; initialInterval: number; maxInterval: number };
  rateLimit?: { requestsPerMinute?: number; tokensPerMinute?: number };
  /** `batch.adaptiveConcurrency`. @default false */
  adaptive?: boolean;
  /** How long a failed item waits for a human before the default decision (skip). @default 30 s */
  reviewTimeoutMs?: number;
  /** `batch.fastPath`. @default the spec's default (off: a workflow per item) */
  fastPath?: boolean;
}

/** The raw pipeline spec (what a user writes); `parsePipeline` gives the validated form. */
export function benchPipeline(o: WorkloadOptions): PipelineSpecInput {
  const example = JSON.parse(readFileSync(EXAMPLE, 'utf8')) as PipelineSpecInput;
  return {
    name: 'bench-ticket-triage',
    prompt: example.prompt,
    output: example.output,
    providers: [
      {
        name: 'primary',
        kind: 'openai',
        model: 'gpt-4o-mini',
        baseURL: `${o.providerUrl}/v1`,
        maxOutputTokens: 256,
        timeout: o.timeoutMs ?? 30_000,
        pricing: { inputPerMTok: 0.15, outputPerMTok: 0.6 },
        ...(o.rateLimit ? { rateLimit: o.rateLimit } : {}),
      },
    ],
    retry: { maxAttempts: 5, initialInterval: 200, maxInterval: 2_000, ...o.retry },
    batch: { concurrency: o.concurrency, ...(o.adaptive ? { adaptiveConcurrency: true } : {}), ...(o.fastPath !== undefined ? { fastPath: o.fastPath } : {}) },
    // Alerts go nowhere in the benchmark (no webhook); a high threshold keeps the log quiet.
    alerts: { errorRateThreshold: 1 },
    review: { timeout: o.reviewTimeoutMs ?? 30_000, defaultDecision: 'skip' },
  };
}

export function parsePipeline(raw: PipelineSpecInput): PipelineSpec {
  return PipelineSpec.parse(raw);
}
