import { describe, expect, it } from 'vitest';
import { LLM_RETRY, NOTIFY_RETRY, PERSIST_RETRY, TRUNCATE_RETRY, attemptTimeoutMs, llmCallFor, llmRetryFor } from '../../src/shared/policies.ts';
import { REDACTED, scrubSecrets, scrubValue } from '../../activities/scrub.ts';
import { REPAIR_PREFIX, parseJsonOutput, repairMessages, validateOutput } from '../../src/shared/validate.ts';
import { NON_RETRYABLE_TYPES } from '../../src/shared/failures.ts';
import { PipelineSpec } from '../../src/shared/spec.ts';
import type { ChatMessage } from '../../src/shared/types.ts';

const schema = {
  type: 'object',
  properties: {
    label: { enum: ['ok', 'broken', 'late'] },
    summary: { type: 'string', minLength: 3, maxLength: 50 },
    score: { type: 'number', minimum: 0, maximum: 1 },
    tags: { type: 'array', items: { type: 'string' } },
  },
  required: ['label', 'score'],
  additionalProperties: false,
};

describe('validateOutput', () => {
  it('accepts a valid value', () => {
    expect(validateOutput({ label: 'ok', summary: 'fine', score: 0.5, tags: ['a'] }, schema)).toEqual([]);
  });

  it('reports every violation with its JSON path', () => {
    const errors = validateOutput({ label: 'meh', summary: 'x', score: 2, tags: ['a', 3], extra: true }, schema);
    expect(errors).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^\$\.label: /),
        expect.stringMatching(/^\$\.summary: /),
        expect.stringMatching(/^\$\.score: /),
        expect.stringMatching(/^\$\.tags\[1\]: /),
        expect.stringMatching(/^\$: .*extra/),
      ]),
    );
    expect(validateOutput({ summary: 'abc' }, schema)).toEqual(expect.arrayContaining([expect.stringMatching(/^\$\.label: /), expect.stringMatching(/^\$\.score: /)]));
  });

  it('accepts anything without a schema and never throws on a bad schema', () => {
    expect(validateOutput(42, undefined)).toEqual([]);
    expect(validateOutput({}, { type: 'no-such-type' })).toEqual([expect.stringMatching(/^\$: output.schema is not a usable JSON Schema/)]);
  });
});

describe('parseJsonOutput', () => {
  it('parses plain JSON, fenced JSON and JSON after prose', () => {
    expect(parseJsonOutput('{"a":1}')).toEqual({ ok: true, value: { a: 1 } });
    expect(parseJsonOutput('```json\n{"a":1}\n```')).toEqual({ ok: true, value: { a: 1 } });
    expect(parseJsonOutput('Here you go: {"a":1}')).toEqual({ ok: true, value: { a: 1 } });
  });

  it('rejects broken or empty JSON with a $ error', () => {
    const r = parseJsonOutput('{"a":');
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error).toMatch(/^\$: not valid JSON/);
    expect(parseJsonOutput('  ')).toEqual({ ok: false, error: '$: not valid JSON (empty answer)' });
  });
});

describe('repairMessages', () => {
  const base: ChatMessage[] = [
    { role: 'system', content: 'Classify.' },
    { role: 'user', content: 'item 1' },
  ];

  it('appends the rejected answer and a request that carries the errors', () => {
    const out = repairMessages(base, '{"label":"meh"}', ['$.label: Invalid option', '$.score: Required']);
    expect(out.slice(0, 2)).toEqual(base);
    expect(out[2]).toEqual({ role: 'assistant', content: '{"label":"meh"}' });
    expect(out[3]!.role).toBe('user');
    expect(out[3]!.content).toContain(REPAIR_PREFIX);
    expect(out[3]!.content).toContain('- $.label: Invalid option\n- $.score: Required');
    expect(base).toHaveLength(2);
  });

  it('replaces an earlier repair exchange instead of stacking it', () => {
    const once = repairMessages(base, 'bad 1', ['e1']);
    const twice = repairMessages(once, 'bad 2', ['e2']);
    expect(twice).toHaveLength(4);
    expect(twice[2]!.content).toBe('bad 2');
    expect(twice[3]!.content).toContain('- e2');
    expect(twice[3]!.content).not.toContain('- e1');
  });

  it('never sends an empty assistant turn and bounds the echo and the list', () => {
    const out = repairMessages(
      base,
      '',
      Array.from({ length: 30 }, (_, i) => `e${i}`),
    );
    expect(out[2]!.content).toBe('(empty answer)');
    expect(out[3]!.content).toContain('... and 10 more');
    expect(repairMessages(base, 'x'.repeat(20_000), ['e'])[2]!.content.length).toBeLessThan(8_100);
  });
});

describe('policies', () => {
  it('list every permanent type as non-retryable and bound attempts', () => {
    for (const p of [LLM_RETRY, TRUNCATE_RETRY, PERSIST_RETRY, NOTIFY_RETRY]) {
      expect(p.nonRetryableErrorTypes).toEqual([...NON_RETRYABLE_TYPES]);
      expect(p.backoffCoefficient).toBe(2);
      expect(p.maximumAttempts).toBeGreaterThan(0);
    }
  });

  it('build the LLM policy and timeouts from the spec', () => {
    const spec = PipelineSpec.parse({
      prompt: { template: 'x' },
      providers: [{ kind: 'openai', model: 'gpt-4o-mini', timeout: '10s', timeoutGrowth: 2 }],
      retry: { maxAttempts: 3, initialInterval: '500ms', maxInterval: '20s' },
    });
    expect(llmRetryFor(spec.retry)).toEqual({
      initialInterval: 500,
      backoffCoefficient: 2,
      maximumInterval: 20_000,
      maximumAttempts: 3,
      nonRetryableErrorTypes: [...NON_RETRYABLE_TYPES],
    });
    const p = spec.providers[0]!;
    expect([1, 2, 3].map((a) => attemptTimeoutMs(p, a))).toEqual([10_000, 20_000, 40_000]);
    expect(llmCallFor(p, spec.retry).startToCloseTimeout).toBe(45_000);
  });
});

describe('scrub', () => {
  it('removes env secrets, key patterns and URL credentials', () => {
    const env = { MY_API_KEY: 'abcdef123456', STEADFAST_WEBHOOK_URL: 'https://hooks.example/T1/B2/xyz', SHORT_TOKEN: 'abc' };
    const out = scrubSecrets('k=abcdef123456 url=https://hooks.example/T1/B2/xyz db=postgres://u:pw1234@h/db sk-live_ABCDEFGH abc', [], env);
    expect(out).toBe(`k=${REDACTED} url=${REDACTED} db=postgres://u:${REDACTED}@h/db ${REDACTED} abc`);
  });

  it('redacts secret fields at any depth and in messages', () => {
    const v = { ok: 1, ssn: '123-45-6789', nested: [{ ssn: 'x', note: 'ssn=987654321 and "ssn": "111"' }] };
    expect(scrubValue(v, { fields: ['ssn'], env: {} })).toEqual({ ok: 1, ssn: REDACTED, nested: [{ ssn: REDACTED, note: `ssn="${REDACTED}" and "ssn": "${REDACTED}"` }] });
  });
});
