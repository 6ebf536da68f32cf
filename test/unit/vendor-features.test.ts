/**
 * Vendor features a batch user expects: OpenAI strict mode where the schema allows it,
 * cached and cache-write tokens read from both vendors' usage and priced, readable
 * provider messages.
 */
import { describe, expect, it } from 'vitest';
import { readableMessage } from '../../activities/classify.ts';
import { anthropicUsage, openaiUsage } from '../../activities/llm.ts';
import { strictSchemaProblem } from '../../activities/strict-schema.ts';
import { costOf } from '../../src/shared/tiers.ts';

const strictOk = {
  type: 'object',
  properties: { label: { type: 'string', enum: ['a', 'b'] }, note: { anyOf: [{ type: 'string' }, { type: 'null' }] }, items: { type: 'array', items: { $ref: '#/$defs/x' } } },
  required: ['label', 'note', 'items'],
  additionalProperties: false,
  $defs: { x: { type: 'object', properties: { v: { type: 'integer' } }, required: ['v'], additionalProperties: false } },
};

describe('OpenAI strict mode', () => {
  it('is used for a schema inside the strict subset', () => expect(strictSchemaProblem(strictOk)).toBeNull());
  it.each([
    ['an optional property', { ...strictOk, required: ['label', 'items'] }, 'property "note" must be required'],
    ['an open object', { type: 'object', properties: {} }, 'additionalProperties'],
    ['if/then', { ...strictOk, if: {}, then: {} }, 'keyword "if"'],
    ['minLength', { type: 'object', properties: { s: { type: 'string', minLength: 1 } }, required: ['s'], additionalProperties: false }, '$.s: keyword "minLength"'],
    ['a non-object root', { type: 'array' }, 'root'],
    ['a nested open object', { ...strictOk, $defs: { x: { type: 'object', properties: {} } } }, '$.$defs.x'],
  ])('falls back to strict: false for %s, saying why', (_n, schema, why) => expect(strictSchemaProblem(schema)).toContain(why));
});

describe('cached tokens', () => {
  it('reads OpenAI cached_tokens (included in prompt_tokens)', () => {
    expect(openaiUsage({ prompt_tokens: 2000, completion_tokens: 10, total_tokens: 2010, prompt_tokens_details: { cached_tokens: 1536 } })).toEqual({
      inputTokens: 2000,
      outputTokens: 10,
      cachedInputTokens: 1536,
    });
  });
  it('reads Anthropic cache reads and writes (not included in input_tokens)', () => {
    expect(anthropicUsage({ input_tokens: 50, output_tokens: 10, cache_read_input_tokens: 1500, cache_creation_input_tokens: 0 })).toEqual({
      inputTokens: 1550,
      outputTokens: 10,
      cachedInputTokens: 1500,
    });
    expect(anthropicUsage({ input_tokens: 50, output_tokens: 10, cache_creation_input_tokens: 1500 })).toEqual({ inputTokens: 1550, outputTokens: 10, cacheWriteTokens: 1500 });
  });
  it('prices cached and cache-write tokens at their own prices, the input price by default', () => {
    const pricing = { inputPerMTok: 1, outputPerMTok: 5, cachedInputPerMTok: 0.1, cacheWritePerMTok: 1.25 };
    expect(costOf(pricing, { inputTokens: 1_000_000, outputTokens: 0, cachedInputTokens: 600_000, cacheWriteTokens: 400_000 })).toBeCloseTo(0.06 + 0.5, 10);
    expect(costOf({ inputPerMTok: 1, outputPerMTok: 5 }, { inputTokens: 1_000_000, outputTokens: 1_000_000, cachedInputTokens: 500_000 })).toBeCloseTo(6, 10);
  });
});

describe('readable provider messages', () => {
  it('shows the provider message, status and type instead of escaped JSON', () => {
    expect(readableMessage(401, { type: 'authentication_error', message: 'invalid x-api-key' })).toBe('invalid x-api-key (HTTP 401, authentication_error)');
    expect(readableMessage(429, { type: 'rate_limit_exceeded', code: 'rate_limit_exceeded', message: 'Rate limit reached' })).toBe(
      'Rate limit reached (HTTP 429, rate_limit_exceeded)',
    );
  });
});
