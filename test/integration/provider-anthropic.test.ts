import Anthropic from '@anthropic-ai/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { expectedAnswer, startProvider } from '../../src/provider/index.ts';
import type { JsonSchema, RunningProvider } from '../../src/provider/index.ts';

const Out = z.object({ label: z.enum(['ok', 'broken']), summary: z.string(), tags: z.array(z.string()) });
const schema = z.toJSONSchema(Out) as JsonSchema;
const MODEL = 'claude-3-5-haiku-latest';

let p: RunningProvider;
let client: Anthropic;

function ask(text: string, fault?: string, model = MODEL) {
  return client.messages.create(
    {
      model,
      max_tokens: 256,
      system: 'Extract.',
      messages: [{ role: 'user', content: text }],
      tools: [{ name: 'emit', input_schema: schema as Anthropic.Tool.InputSchema }],
      tool_choice: { type: 'tool', name: 'emit' },
    },
    fault ? { headers: { 'x-steadfast-fault': fault } } : {},
  );
}

async function caught(promise: Promise<unknown>): Promise<Error & Record<string, unknown>> {
  try {
    await promise;
  } catch (err) {
    return err as Error & Record<string, unknown>;
  }
  throw new Error('expected the call to fail');
}

beforeAll(async () => {
  p = await startProvider({ latencyScale: 0 });
  client = new Anthropic({ baseURL: p.url, apiKey: 'test', maxRetries: 0, timeout: 2000 });
});
afterAll(() => p.close());

describe('Anthropic messages', () => {
  it('answers structured output through tool use, per item, with usage', async () => {
    for (const item of [17, 18]) {
      const text = `Extract item ${item}: parcel lost`;
      const r = await ask(text);
      expect(r.stop_reason).toBe('tool_use');
      const block = r.content[0];
      expect(block?.type).toBe('tool_use');
      const input = block?.type === 'tool_use' ? Out.parse(block.input) : undefined;
      expect(input).toEqual(expectedAnswer(schema, text));
      expect(input?.summary).toContain(`item ${item}`);
      expect(r.usage.input_tokens).toBe(Math.ceil(`Extract.\n${text}`.length / 4));
      expect(r.usage.output_tokens).toBeGreaterThan(0);
    }
  });

  it('answers text after a tool result, and plain text without tools', async () => {
    const r = await client.messages.create({ model: MODEL, max_tokens: 100, messages: [{ role: 'user', content: 'Say hi' }] });
    expect(r.stop_reason).toBe('end_turn');
    expect(r.content[0]?.type === 'text' && r.content[0].text).toMatch(/^Answer for: Say hi/);
    const after = await client.messages.create({
      model: MODEL,
      max_tokens: 100,
      tools: [{ name: 'emit', input_schema: schema as Anthropic.Tool.InputSchema }],
      messages: [
        { role: 'user', content: 'Extract item 4' },
        { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_1', name: 'emit', input: {} }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: 'stored' }] },
      ],
    });
    expect(after.stop_reason).toBe('end_turn');
    expect(after.content[0]?.type).toBe('text');
  });

  it('raises RateLimitError with retry-after and anthropic-ratelimit headers', async () => {
    const err = await caught(ask('item 1', 'rate_limit'));
    expect(err).toBeInstanceOf(Anthropic.RateLimitError);
    expect(err['type']).toBe('rate_limit_error');
    const h = err['headers'] as Headers;
    expect(h.get('retry-after')).toBe('1');
    expect(h.get('anthropic-ratelimit-requests-remaining')).toBe('0');
    expect(h.get('anthropic-ratelimit-requests-limit')).toBe('600');
    expect(h.get('anthropic-ratelimit-requests-reset')).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  });

  it('raises InternalServerError with overloaded_error on 529', async () => {
    const err = await caught(ask('item 1', 'overloaded'));
    expect(err).toBeInstanceOf(Anthropic.InternalServerError);
    expect(err['status']).toBe(529);
    expect(err['type']).toBe('overloaded_error');
    expect((err['error'] as { error: { message: string } }).error.message).toBe('Overloaded');
  });

  it('times out on a hang and fails the connection on a reset', async () => {
    const fast = new Anthropic({ baseURL: p.url, apiKey: 'test', maxRetries: 0, timeout: 300 });
    const timeout = await caught(fast.messages.create({ model: MODEL, max_tokens: 10, messages: [{ role: 'user', content: 'x' }] }, { headers: { 'x-steadfast-fault': 'hang' } }));
    expect(timeout).toBeInstanceOf(Anthropic.APIConnectionTimeoutError);
    const reset = await caught(ask('item 2', 'reset'));
    expect(reset).toBeInstanceOf(Anthropic.APIConnectionError);
  });

  it('returns refusals, cut output and bad output', async () => {
    expect((await ask('item 3', 'refusal')).stop_reason).toBe('refusal');
    const cut = await ask('item 3', 'truncated');
    expect(cut.stop_reason).toBe('max_tokens');
    const bad = await ask('item 3', 'bad_json');
    expect(bad.content[0]?.type).toBe('text'); // the model "ignored" the tool
    const violating = await ask('item 3', 'schema_violation');
    const block = violating.content[0];
    expect(block?.type === 'tool_use' && Out.safeParse(block.input).success).toBe(false);
  });

  it('rejects prompts over the context window with the prompt-too-long message', async () => {
    const text = 'y'.repeat(20_000); // 5000 tokens > 4096
    const err = await caught(client.messages.create({ model: 'small-4k', max_tokens: 100, messages: [{ role: 'user', content: text }] }));
    expect(err).toBeInstanceOf(Anthropic.BadRequestError);
    expect(err['type']).toBe('invalid_request_error');
    expect((err['error'] as { error: { message: string } }).error.message).toBe('prompt is too long: 5000 tokens > 4096 maximum');
    const both = await caught(client.messages.create({ model: 'small-4k', max_tokens: 500, messages: [{ role: 'user', content: 'y'.repeat(15_000) }] }));
    expect((both['error'] as { error: { message: string } }).error.message).toMatch(/^input length and `max_tokens` exceed context limit: 3750 \+ 500 > 4096/);
  });

  it('raises NotFoundError and AuthenticationError', async () => {
    const nf = await caught(ask('item 1', undefined, 'claude-0'));
    expect(nf).toBeInstanceOf(Anthropic.NotFoundError);
    expect(nf['type']).toBe('not_found_error');
    const guarded = await startProvider({ latencyScale: 0, apiKey: 'right-key' });
    try {
      const wrong = new Anthropic({ baseURL: guarded.url, apiKey: 'wrong', maxRetries: 0 });
      const err = await caught(wrong.messages.create({ model: MODEL, max_tokens: 10, messages: [{ role: 'user', content: 'x' }] }));
      expect(err).toBeInstanceOf(Anthropic.AuthenticationError);
      expect(err['type']).toBe('authentication_error');
    } finally {
      await guarded.close();
    }
  });
});
