/**
 * The response cache key: the same request gives the same key whatever the order of
 * its schema's keys; anything that changes the answer (model, messages, schema,
 * temperature, max tokens, the endpoint, simulated or real) changes it.
 */
import { describe, expect, it } from 'vitest';
import { cacheKey } from '../../activities/cache.ts';
import type { CacheKeyParts } from '../../activities/cache.ts';

const base: CacheKeyParts = {
  kind: 'openai',
  endpoint: { vendor: 'openai', host: 'api.openai.com', simulated: false },
  model: 'gpt-4o-mini',
  messages: [
    { role: 'system', content: 'Answer with JSON.' },
    { role: 'user', content: 'Ticket 1: refund' },
  ],
  output: { format: 'json', schema: { type: 'object', properties: { a: { type: 'string' } }, required: ['a'] } },
  temperature: 0,
  maxOutputTokens: 256,
};

describe('cacheKey', () => {
  it('is a sha256 that ignores key order', () => {
    const k = cacheKey(base);
    expect(k).toMatch(/^[0-9a-f]{64}$/);
    expect(cacheKey({ ...base, output: { format: 'json', schema: { required: ['a'], properties: { a: { type: 'string' } }, type: 'object' } } })).toBe(k);
  });

  it('changes with everything that shapes the answer', () => {
    const k = cacheKey(base);
    const variants: Partial<CacheKeyParts>[] = [
      { kind: 'openai-compatible' },
      { model: 'gpt-4o' },
      { messages: [...base.messages.slice(0, 1), { role: 'user', content: 'Ticket 2: refund' }] },
      { output: { format: 'text' } },
      { output: { format: 'json', schema: { type: 'object' } } },
      { temperature: 0.7 },
      { temperature: undefined },
      { maxOutputTokens: 512 },
      { endpoint: { vendor: 'openai', host: 'proxy.internal:8080', simulated: false } },
      // A real vendor's tier never gets the fault-injecting provider's answer.
      { endpoint: { vendor: 'simulated', host: 'api.openai.com', simulated: true } },
    ];
    const keys = variants.map((v) => cacheKey({ ...base, ...v }));
    expect(new Set([k, ...keys]).size).toBe(variants.length + 1);
  });
});
