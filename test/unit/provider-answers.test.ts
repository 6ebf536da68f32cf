import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { digestOf, expectedAnswer, itemRefOf, plainAnswer } from '../../src/provider/answers.ts';
import type { JsonSchema } from '../../src/provider/answers.ts';
import { violateSchema } from '../../src/provider/answers.ts';
import { buildAnswer } from '../../src/provider/engine.ts';
import type { ChatRequest } from '../../src/provider/dialect.ts';
import { countPromptTokens, countTokensApprox } from '../../src/provider/models.ts';

const Ticket = z.object({
  summary: z.string(),
  category: z.enum(['billing', 'shipping', 'other']),
  priority: z.number().int().min(1).max(5),
  confidence: z.number().min(0).max(1),
  urgent: z.boolean(),
  tags: z.array(z.string()).min(1).max(3),
  customer: z.object({ name: z.string(), email: z.string().email(), vip: z.boolean().nullable() }),
});
const schema = z.toJSONSchema(Ticket) as JsonSchema;

function request(overrides: Partial<ChatRequest>): ChatRequest {
  return { model: 'gpt-4o-mini', texts: [], lastUserText: '', maxTokens: undefined, mode: 'schema', schema, toolName: undefined, identitySource: '', ...overrides };
}

describe('expectedAnswer', () => {
  it('validates against a nested schema with enums, bounds, arrays and nullables', () => {
    for (let i = 0; i < 50; i++) {
      const value = expectedAnswer(schema, `Classify item ${i}: my parcel never arrived`);
      expect(Ticket.safeParse(value).success, JSON.stringify(value)).toBe(true);
    }
  });

  it('is deterministic and carries the item reference of the last user message', () => {
    const a = expectedAnswer(schema, 'Classify item 17: broken box') as z.infer<typeof Ticket>;
    const b = expectedAnswer(schema, 'Classify item 17: broken box') as z.infer<typeof Ticket>;
    expect(a).toEqual(b);
    expect(a.summary).toBe(`summary for item 17 (${digestOf('Classify item 17: broken box')})`);
    expect(a.customer.name).toContain('item 17');
    const other = expectedAnswer(schema, 'Classify item 18: broken box') as z.infer<typeof Ticket>;
    expect(other.summary).toContain('item 18');
    expect(other.summary).not.toBe(a.summary);
  });

  it('resolves local $refs', () => {
    const s = {
      $defs: { P: { type: 'object', properties: { n: { type: 'integer', minimum: 3, maximum: 3 } }, required: ['n'] } },
      type: 'object',
      properties: { p: { $ref: '#/$defs/P' } },
      required: ['p'],
    };
    expect(expectedAnswer(s, 'x')).toEqual({ p: { n: 3 } });
  });

  it('answers plain text without a schema', () => {
    expect(expectedAnswer(undefined, 'Summarise   item 4\nplease')).toBe(plainAnswer('Summarise   item 4\nplease'));
    expect(plainAnswer('Summarise   item 4\nplease')).toMatch(/^Answer for: Summarise item 4 please \([0-9a-f]{8}\)$/);
  });
});

describe('itemRefOf', () => {
  it.each([
    ['Classify item 17: x', 'item 17'],
    ['item_id: abc-3.', 'item abc-3'],
    ['{"id": "t-42", "text": "hi"}', 'id t-42'],
    ['itemId=9', 'item 9'],
    ['the item is broken', undefined],
    ['identify this', undefined],
  ])('%s -> %s', (text, ref) => {
    expect(itemRefOf(text)).toBe(ref);
  });
});

describe('output faults', () => {
  const text = 'Classify item 5: late delivery';

  it('schema_violation is JSON that fails the schema', () => {
    const a = buildAnswer(request({ lastUserText: text }), 'schema_violation');
    expect(Ticket.safeParse(JSON.parse(a.text)).success).toBe(false);
    expect(violateSchema({ type: 'object' }, {})).toEqual([{}]);
  });

  it('bad_json does not parse; truncated stops with length', () => {
    expect(() => JSON.parse(buildAnswer(request({ lastUserText: text }), 'bad_json').text)).toThrow();
    const cut = buildAnswer(request({ lastUserText: text }), 'truncated');
    expect(cut.stop).toBe('length');
    expect(() => JSON.parse(cut.text)).toThrow();
  });

  it('honours max_tokens like a real model', () => {
    const a = buildAnswer(request({ lastUserText: text, maxTokens: 5 }), undefined);
    expect(a.stop).toBe('length');
    expect(a.text.length).toBe(20);
    expect(buildAnswer(request({ lastUserText: text, maxTokens: 5 }), 'refusal').stop).toBe('refusal');
  });
});

describe('token estimate', () => {
  it('is ceil(chars / 4), messages joined by newlines', () => {
    expect(countTokensApprox('')).toBe(0);
    expect(countTokensApprox('abcde')).toBe(2);
    expect(countPromptTokens(['abcd', 'abc'])).toBe(2);
  });
});
