import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { expectedAnswer, startProvider } from '../../src/provider/index.ts';
import type { JsonSchema, RunningProvider } from '../../src/provider/index.ts';

const Out = z.object({ label: z.enum(['ok', 'broken', 'late']), summary: z.string(), score: z.number().min(0).max(1) });
const schema = z.toJSONSchema(Out) as JsonSchema;
const responseFormat = { type: 'json_schema', json_schema: { name: 'out', schema, strict: true } } as const;

let p: RunningProvider;
let client: OpenAI;

function ask(text: string, fault?: string, model = 'gpt-4o-mini') {
  return client.chat.completions.create(
    {
      model,
      messages: [
        { role: 'system', content: 'Classify.' },
        { role: 'user', content: text },
      ],
      response_format: responseFormat,
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
  client = new OpenAI({ baseURL: `${p.url}/v1`, apiKey: 'test', maxRetries: 0, timeout: 2000 });
});
afterAll(() => p.close());

describe('OpenAI chat completions', () => {
  it('answers structured output per item, with usage', async () => {
    for (const item of [17, 18]) {
      const text = `Classify item ${item}: the box arrived crushed`;
      const r = await ask(text);
      const value = Out.parse(JSON.parse(r.choices[0]?.message.content ?? ''));
      expect(value).toEqual(expectedAnswer(schema, text));
      expect(value.summary).toContain(`item ${item}`);
      expect(r.choices[0]?.finish_reason).toBe('stop');
      expect(r.usage).toMatchObject({ prompt_tokens: Math.ceil(`Classify.\n${text}`.length / 4) });
      expect(r.usage?.total_tokens).toBe((r.usage?.prompt_tokens ?? 0) + (r.usage?.completion_tokens ?? 0));
    }
  });

  it('answers with a tool call when a function is forced', async () => {
    const r = await client.chat.completions.create({
      model: 'gpt-4o',
      messages: [{ role: 'user', content: 'Extract id: t-9' }],
      tools: [{ type: 'function', function: { name: 'emit', parameters: schema } }],
      tool_choice: { type: 'function', function: { name: 'emit' } },
    });
    const call = r.choices[0]?.message.tool_calls?.[0];
    expect(r.choices[0]?.finish_reason).toBe('tool_calls');
    expect(call?.type === 'function' && call.function.name).toBe('emit');
    expect(call?.type === 'function' && JSON.parse(call.function.arguments)).toEqual(expectedAnswer(schema, 'Extract id: t-9'));
  });

  it('answers plain text without a schema, and lists models', async () => {
    const r = await client.chat.completions.create({ model: 'small-4k', messages: [{ role: 'user', content: 'Hello there' }] });
    expect(r.choices[0]?.message.content).toMatch(/^Answer for: Hello there \(/);
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual(expect.arrayContaining(['gpt-4o-mini', 'gpt-4o', 'small-4k']));
  });

  it('raises RateLimitError with retry-after-ms and x-ratelimit headers', async () => {
    const err = await caught(ask('item 1', 'rate_limit'));
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect(err['code']).toBe('rate_limit_exceeded');
    const h = err['headers'] as Headers;
    expect(h.get('retry-after-ms')).toBe('1000');
    expect(h.get('retry-after')).toBe('1');
    expect(h.get('x-ratelimit-remaining-requests')).toBe('0');
    expect(h.get('x-ratelimit-limit-requests')).toBe('600');
    expect(h.get('x-ratelimit-reset-requests')).toBe('1s');
  });

  it('raises the permanent 429 insufficient_quota', async () => {
    const err = await caught(ask('item 1', 'insufficient_quota'));
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect(err['code']).toBe('insufficient_quota');
    expect((err['headers'] as Headers).get('retry-after')).toBeNull();
  });

  it('raises InternalServerError for 500 and 503', async () => {
    expect(await caught(ask('item 1', 'server_error'))).toMatchObject({ status: 500 });
    const e503 = await caught(ask('item 1', 'overloaded'));
    expect(e503).toBeInstanceOf(OpenAI.InternalServerError);
    expect(e503['status']).toBe(503);
  });

  it('times out on a hang and fails the connection on a reset', async () => {
    const fast = new OpenAI({ baseURL: `${p.url}/v1`, apiKey: 'test', maxRetries: 0, timeout: 300 });
    const timeout = await caught(fast.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] }, { headers: { 'x-steadfast-fault': 'hang' } }));
    expect(timeout).toBeInstanceOf(OpenAI.APIConnectionTimeoutError);
    const reset = await caught(ask('item 2', 'reset'));
    expect(reset).toBeInstanceOf(OpenAI.APIConnectionError);
    expect(reset).not.toBeInstanceOf(OpenAI.APIConnectionTimeoutError);
  });

  it('returns bad output, refusals and cut output as 200s', async () => {
    const bad = await ask('item 3', 'bad_json');
    expect(() => JSON.parse(bad.choices[0]?.message.content ?? '')).toThrow();
    const violating = await ask('item 3', 'schema_violation');
    expect(Out.safeParse(JSON.parse(violating.choices[0]?.message.content ?? '')).success).toBe(false);
    const refused = await ask('item 3', 'refusal');
    expect(refused.choices[0]?.message.refusal).toBeTruthy();
    expect(refused.choices[0]?.finish_reason).toBe('content_filter');
    const cut = await ask('item 3', 'truncated');
    expect(cut.choices[0]?.finish_reason).toBe('length');
  });

  it('rejects prompts over the context window whatever the profile', async () => {
    const text = 'x'.repeat(16_000); // 4000 tokens, + 200 requested > 4096
    const err = await caught(client.chat.completions.create({ model: 'small-4k', max_tokens: 200, messages: [{ role: 'user', content: text }] }));
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err['code']).toBe('context_length_exceeded');
    expect(err['param']).toBe('messages');
    expect((err['error'] as { message: string }).message).toBe(
      "This model's maximum context length is 4096 tokens. However, you requested 4200 tokens (4000 in the messages, 200 in the completion). Please reduce the length of the messages or completion.",
    );
    const ok = await client.chat.completions.create({ model: 'small-4k', max_tokens: 96, messages: [{ role: 'user', content: text }] });
    expect(ok.choices[0]?.finish_reason).toBe('stop');
  });

  it('raises NotFoundError for an unknown model and AuthenticationError for a wrong key', async () => {
    const nf = await caught(ask('item 1', undefined, 'gpt-9'));
    expect(nf).toBeInstanceOf(OpenAI.NotFoundError);
    expect(nf['code']).toBe('model_not_found');
    const guarded = await startProvider({ latencyScale: 0, apiKey: 'right-key' });
    try {
      const wrong = new OpenAI({ baseURL: `${guarded.url}/v1`, apiKey: 'wrong', maxRetries: 0 });
      const err = await caught(wrong.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] }));
      expect(err).toBeInstanceOf(OpenAI.AuthenticationError);
      expect(err['code']).toBe('invalid_api_key');
      const right = new OpenAI({ baseURL: `${guarded.url}/v1`, apiKey: 'right-key', maxRetries: 0 });
      await expect(right.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] })).resolves.toBeDefined();
    } finally {
      await guarded.close();
    }
  });
});
