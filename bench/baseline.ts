/**
 * The baselines Steadfast is measured against, in this process:
 *
 * - `promisePool`: a plain in-process promise pool, the throughput ceiling. It
 *   calls the provider through the same adapter as the `callLlm` activity (the
 *   official `openai` client, `maxRetries: 0`), with the same rendered prompt and
 *   schema, validates the answer, and writes the same row with the same SQLite
 *   upsert (`openStore`). No retries, no durability: an error is just counted.
 * - `naive429Loop`: the usual hand-written loop under a rate limit: N callers,
 *   and on a 429 each sleeps for `retry-after(-ms)` and tries again.
 */
import OpenAI from 'openai';
import { createAdapter } from '../activities/llm.ts';
import { endpointPolicy, resolveEndpoint } from '../activities/endpoints.ts';
import type { ResultStore } from '../activities/store.ts';
import { parseJsonOutput, validateOutput } from '../src/shared/validate.ts';
import type { Item, PipelineSpec } from '../src/shared/spec.ts';
import { renderMessages } from '../src/shared/template.ts';
import { makeItem } from './workload.ts';
import { sleep } from './procs.ts';

export interface PoolResult {
  wallMs: number;
  succeeded: number;
  failed: number;
  itemsPerSec: number;
}

function adapterFor(spec: PipelineSpec) {
  const provider = spec.providers[0]!;
  return { provider, adapter: createAdapter(resolveEndpoint(provider, 0, endpointPolicy({}), {})) };
}

/** Runs every item through `concurrency` promise workers; resolves with the wall time. */
export async function promisePool(o: { spec: PipelineSpec; items: Item[]; concurrency: number; batchId: string; store: ResultStore }): Promise<PoolResult> {
  const { provider, adapter } = adapterFor(o.spec);
  const schema = o.spec.output.schema;
  let next = 0;
  let succeeded = 0;
  let failed = 0;
  const one = async (item: Item): Promise<void> => {
    const startedAt = new Date().toISOString();
    const messages = renderMessages(o.spec, item);
    try {
      const raw = await adapter.complete({ batchId: o.batchId, itemId: item.id, tier: 0, provider, messages, output: o.spec.output }, { timeoutMs: provider.timeout });
      const parsed = raw.json !== undefined ? { ok: true as const, value: raw.json } : parseJsonOutput(raw.text);
      const errors = parsed.ok ? validateOutput(parsed.value, schema) : [parsed.error];
      if (errors.length > 0 || !parsed.ok) throw new Error(errors.join('; '));
      await o.store.upsert({
        batchId: o.batchId,
        itemId: item.id,
        status: 'succeeded',
        output: parsed.value,
        provider: provider.name ?? 'primary',
        model: raw.model,
        tier: 0,
        attempts: 1,
        inputTokens: raw.usage.inputTokens,
        outputTokens: raw.usage.outputTokens,
        costUsd: 0,
        truncation: null,
        error: null,
        startedAt,
        finishedAt: new Date().toISOString(),
      });
      succeeded++;
    } catch {
      failed++;
    }
  };
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: o.concurrency }, async () => {
      while (next < o.items.length) await one(o.items[next++]!);
    }),
  );
  const wallMs = performance.now() - t0;
  return { wallMs, succeeded, failed, itemsPerSec: (succeeded / wallMs) * 1000 };
}

export interface NaiveResult {
  calls: number;
  rateLimited: number;
  succeeded: number;
  otherErrors: number;
}

/** Retry delay of a 429 the way a careful hand-written loop reads it: retry-after-ms, else retry-after seconds, else 1 s. */
function retryAfterMs(err: InstanceType<typeof OpenAI.APIError>): number {
  const ms = Number(err.headers?.get('retry-after-ms'));
  if (Number.isFinite(ms) && ms > 0) return ms;
  const s = Number(err.headers?.get('retry-after'));
  return Number.isFinite(s) && s > 0 ? s * 1000 : 1000;
}

/**
 * `concurrency` callers until `untilMs` (epoch): each takes the next item and
 * calls; on a 429 it sleeps for the provider's retry-after and calls again.
 */
export async function naive429Loop(o: { spec: PipelineSpec; concurrency: number; untilMs: number }): Promise<NaiveResult> {
  const { provider, adapter } = adapterFor(o.spec);
  const r: NaiveResult = { calls: 0, rateLimited: 0, succeeded: 0, otherErrors: 0 };
  let next = 0;
  await Promise.all(
    Array.from({ length: o.concurrency }, async () => {
      while (Date.now() < o.untilMs) {
        const item = makeItem(next++, 'n');
        const messages = renderMessages(o.spec, item);
        for (;;) {
          if (Date.now() >= o.untilMs) return;
          r.calls++;
          try {
            await adapter.complete({ batchId: 'naive', itemId: item.id, tier: 0, provider, messages, output: o.spec.output }, { timeoutMs: provider.timeout });
            r.succeeded++;
            break;
          } catch (err) {
            if (err instanceof OpenAI.APIError && err.status === 429) {
              r.rateLimited++;
              await sleep(Math.min(retryAfterMs(err), Math.max(0, o.untilMs - Date.now())));
              continue;
            }
            r.otherErrors++;
            break;
          }
        }
      }
    }),
  );
  return r;
}
