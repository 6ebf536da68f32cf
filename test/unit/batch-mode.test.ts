/**
 * The pure parts of `mode: batch` tiers: the spec fields and their defaults (the vendors'
 * limits), the batch price, the custom_id rule, and the lines sent to each vendor.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { anthropicParams, openaiChatBody } from '../../activities/llm.ts';
import { batchLine, customIdOf } from '../../activities/provider-batch.ts';
import { BatchInput, PipelineSpec, ProviderSpec, formatIssues } from '../../src/shared/spec.ts';
import { batchCostOf, batchOptionsOf, costOf } from '../../src/shared/tiers.ts';
import type { LlmRequest } from '../../src/shared/types.ts';

const tier = (over: Record<string, unknown> = {}) => ProviderSpec.parse({ kind: 'openai', model: 'gpt-4o-mini', mode: 'batch', ...over });

describe('mode: batch spec', () => {
  it('defaults to the vendors limits, a little under their byte limits, a 30 s window and 1 min polls', () => {
    expect(batchOptionsOf(tier())).toEqual({
      maxRequests: 50_000,
      maxBytes: Math.floor(200 * 1024 * 1024 * 0.95),
      windowMs: 30_000,
      pollIntervalMs: 60_000,
      completionWindow: '24h',
    });
    expect(batchOptionsOf(tier({ kind: 'anthropic', model: 'claude-haiku-4-5' }))).toMatchObject({ maxRequests: 100_000, maxBytes: 240 * 1024 * 1024 });
    expect(batchOptionsOf(tier({ batch: { maxRequests: 10, maxBytes: 4096, window: '2m', pollInterval: '5m' } }))).toMatchObject({
      maxRequests: 10,
      maxBytes: 4096,
      windowMs: 120_000,
      pollIntervalMs: 300_000,
    });
    // Never past the vendor's limit, whatever the spec says.
    expect(batchOptionsOf(tier({ batch: { maxRequests: 100_000, maxBytes: 1e12 } }))).toMatchObject({ maxRequests: 50_000, maxBytes: 200 * 1024 * 1024 });
  });

  it('names the field of a bad batch option', () => {
    const bad = (over: Record<string, unknown>) => {
      const r = ProviderSpec.safeParse({ kind: 'openai', model: 'm', mode: 'batch', ...over });
      return r.success ? 'ok' : formatIssues(r.error);
    };
    expect(bad({ mode: 'async' })).toMatch(/^mode: /);
    expect(bad({ batch: { completionWindow: '48h' } })).toMatch(/^batch\.completionWindow: /);
    expect(bad({ batch: { pollInterval: 'soon' } })).toMatch(/^batch\.pollInterval: /);
    expect(bad({ batch: { maxRequests: 0 } })).toMatch(/^batch\.maxRequests: /);
    expect(bad({ pricing: { batchDiscount: 1.5 } })).toMatch(/^pricing\.batchDiscount: /);
    expect(bad({ kind: 'openai-compatible' })).toBe('mode: a mode: batch tier of kind openai-compatible needs the baseURL of a server that serves /v1/files and /v1/batches');
    expect(bad({ kind: 'openai-compatible', baseURL: 'http://127.0.0.1:8000/v1' })).toBe('ok');
  });

  it('prices a batch request at price x (1 - batchDiscount), half by default', () => {
    const usage = { inputTokens: 1_000_000, outputTokens: 500_000, cachedInputTokens: 200_000 };
    const pricing = { inputPerMTok: 1, outputPerMTok: 4, cachedInputPerMTok: 0.5 };
    expect(costOf(pricing, usage)).toBeCloseTo(0.8 + 0.1 + 2, 12);
    expect(batchCostOf(pricing, usage)).toBeCloseTo(2.9 * 0.5, 12);
    expect(batchCostOf({ ...pricing, batchDiscount: 0.6 }, usage)).toBeCloseTo(2.9 * 0.4, 12);
    expect(batchCostOf({ ...pricing, batchDiscount: 0 }, usage)).toBeCloseTo(2.9, 12);
  });

  it('ships a runnable example batch whose first tier is mode: batch', () => {
    const input = BatchInput.parse(JSON.parse(readFileSync('examples/batch-mode.json', 'utf8')));
    expect(input.pipeline.providers[0]).toMatchObject({ mode: 'batch', kind: 'openai' });
    expect(input.items?.length).toBeGreaterThan(0);
  });
});

describe('provider batch lines', () => {
  const spec = PipelineSpec.parse({
    prompt: { system: 'Classify.', template: 'Ticket: {{text}}' },
    output: { format: 'json', schema: { type: 'object', properties: { label: { type: 'string' } }, required: ['label'], additionalProperties: false } },
    providers: [
      { kind: 'openai', model: 'gpt-4o-mini', mode: 'batch', maxOutputTokens: 64 },
      { kind: 'anthropic', model: 'claude-haiku-4-5', mode: 'batch', maxOutputTokens: 64 },
    ],
  });
  const req = (t: number): LlmRequest => ({
    batchId: 'b',
    itemId: 'weird id / with spaces and ünïcode',
    tier: t,
    provider: spec.providers[t]!,
    messages: [
      { role: 'system', content: 'Classify.' },
      { role: 'user', content: 'Ticket: the box arrived crushed' },
    ],
    output: spec.output,
  });

  it('custom_id: within both vendors rules whatever the item id, distinct per item run and call', () => {
    const id = customIdOf('run-1', 'weird id / with spaces and ünïcode', 1);
    expect(id).toMatch(/^[a-zA-Z0-9_-]{1,64}$/);
    expect(customIdOf('run-1', 'weird id / with spaces and ünïcode', 1)).toBe(id);
    expect(
      new Set([id, customIdOf('run-1', 'weird id / with spaces and ünïcode', 2), customIdOf('run-2', 'weird id / with spaces and ünïcode', 1), customIdOf('run-1', 'other', 1)])
        .size,
    ).toBe(4);
  });

  it('OpenAI: a JSONL line {custom_id, method, url, body} whose body is the synchronous chat request', () => {
    const line = batchLine(req(0), 'r1');
    expect(line['body']).toEqual(openaiChatBody(req(0)));
    expect(line).toMatchObject({ custom_id: 'r1', method: 'POST', url: '/v1/chat/completions' });
    expect(line['body']).toMatchObject({
      model: 'gpt-4o-mini',
      max_completion_tokens: 64,
      response_format: { type: 'json_schema', json_schema: { name: 'output', strict: true } },
      // The JSON instruction json modes need, as on a synchronous call.
      messages: [
        { role: 'system', content: 'Respond with a single JSON value only.' },
        { role: 'system', content: 'Classify.' },
        { role: 'user', content: 'Ticket: the box arrived crushed' },
      ],
    });
  });

  it('Anthropic: a requests[] element {custom_id, params} whose params are the synchronous Messages request (output tool forced)', () => {
    const line = batchLine(req(1), 'r1');
    expect(Object.keys(line)).toEqual(['custom_id', 'params']);
    expect(line['params']).toEqual(anthropicParams(req(1)));
    expect(line['params']).toMatchObject({
      model: 'claude-haiku-4-5',
      max_tokens: 64,
      tool_choice: { type: 'tool', name: 'emit_output' },
      messages: [{ role: 'user', content: 'Ticket: the box arrived crushed' }],
    });
  });
});
