/**
 * The output-schema validator against a table of schema/value cases: drafts 07,
 * 2019-09 and 2020-12, references (`definitions`, `$defs`), conditionals, negation,
 * dependencies and formats; and the schemas it must refuse before a batch starts.
 * The same module runs in the workflow sandbox (the review gate, test/integration/review.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { PipelineSpec, formatIssues } from '../../src/shared/spec.ts';
import { schemaProblem, validateOutput } from '../../src/shared/validate.ts';

const D7 = 'http://json-schema.org/draft-07/schema#';
const D2019 = 'https://json-schema.org/draft/2019-09/schema';
const D2020 = 'https://json-schema.org/draft/2020-12/schema';

const money = { type: 'object', properties: { amount: { type: 'number' }, currency: { type: 'string', pattern: '^[A-Z]{3}$' } }, required: ['amount', 'currency'] };
const invoiceD7 = { $schema: D7, definitions: { money }, type: 'object', properties: { total: { $ref: '#/definitions/money' } }, required: ['total'] };
const invoice2020 = { $schema: D2020, $defs: { money }, type: 'object', properties: { total: { $ref: '#/$defs/money' } }, required: ['total'] };
const postal = {
  type: 'object',
  properties: { country: { type: 'string' }, zip: { type: 'string' } },
  if: { properties: { country: { const: 'US' } }, required: ['country'] },
  then: { properties: { zip: { pattern: '^\\d{5}$' } } },
  else: { properties: { zip: { pattern: '^[A-Z0-9 ]{3,10}$' } } },
};
const tree = {
  $defs: { node: { type: 'object', properties: { v: { type: 'integer' }, kids: { type: 'array', items: { $ref: '#/$defs/node' } } }, required: ['v'] } },
  $ref: '#/$defs/node',
};

/** [name, schema, value, valid, a fragment of the first error when invalid]. */
const CASES: ReadonlyArray<readonly [string, Record<string, unknown>, unknown, boolean, string?]> = [
  ['draft-07 definitions + $ref: valid', invoiceD7, { total: { amount: 9.5, currency: 'EUR' } }, true],
  ['draft-07 definitions + $ref: bad pattern', invoiceD7, { total: { amount: 9.5, currency: 'eur' } }, false, '$.total.currency: must match pattern'],
  ['draft-07 definitions + $ref: missing property', invoiceD7, { total: { amount: 1 } }, false, '$.total.currency: is required'],
  ['draft-07 $ref without $schema', { ...invoiceD7, $schema: undefined }, { total: { amount: 'x', currency: 'USD' } }, false, '$.total.amount: must be number'],
  ['2020-12 $defs + $ref: valid', invoice2020, { total: { amount: 0, currency: 'JPY' } }, true],
  ['2020-12 $defs + $ref: wrong type', invoice2020, { total: 3 }, false, '$.total: must be object'],
  ['recursive $defs: valid', tree, { v: 1, kids: [{ v: 2, kids: [{ v: 3 }] }] }, true],
  ['recursive $defs: deep violation', tree, { v: 1, kids: [{ v: 2, kids: [{ v: 'x' }] }] }, false, '$.kids[0].kids[0].v: must be integer'],
  ['if/then: US zip valid', postal, { country: 'US', zip: '12345' }, true],
  ['if/then: US zip invalid', postal, { country: 'US', zip: 'ABCDE' }, false, '$.zip: must match pattern "^\\d{5}$"'],
  ['if/else: other zip valid', postal, { country: 'GB', zip: 'SW1A 1AA' }, true],
  ['if/else: other zip invalid', postal, { country: 'GB', zip: 'sw1a' }, false, '$.zip: must match pattern'],
  ['not: allowed', { not: { type: 'null' } }, 'x', true],
  ['not: refused', { type: 'object', properties: { status: { not: { enum: ['deleted', 'banned'] } } } }, { status: 'banned' }, false, '$.status: must NOT be valid'],
  ['dependentRequired (2020-12): satisfied', { dependentRequired: { card: ['cvv'] } }, { card: '4111', cvv: '123' }, true],
  ['dependentRequired (2020-12): missing', { dependentRequired: { card: ['cvv'] } }, { card: '4111' }, false, 'must have property cvv when property card is present'],
  ['dependentRequired (draft-07 schema): missing', { $schema: D7, dependentRequired: { card: ['cvv'] } }, { card: '4111' }, false, 'cvv'],
  ['dependencies (draft-07): missing', { $schema: D7, dependencies: { card: ['cvv'] } }, { card: '4111' }, false, 'cvv'],
  ['dependentSchemas: satisfied', { dependentSchemas: { card: { required: ['cvv'] } } }, { name: 'x' }, true],
  [
    'dependentSchemas: violated',
    { dependentSchemas: { card: { properties: { cvv: { type: 'string', minLength: 3 } }, required: ['cvv'] } } },
    { card: 'x', cvv: '1' },
    false,
    '$.cvv: must NOT have fewer than 3 characters',
  ],
  ['format email: valid', { type: 'string', format: 'email' }, 'a@example.com', true],
  ['format email: invalid', { type: 'string', format: 'email' }, 'not-an-email', false, '$: must match format "email"'],
  ['format date: invalid', { type: 'string', format: 'date' }, '2024-02-30', false, 'must match format "date"'],
  ['format date-time: valid', { type: 'string', format: 'date-time' }, '2024-02-29T10:00:00Z', true],
  ['format uuid: invalid', { type: 'string', format: 'uuid' }, '1234', false, 'format "uuid"'],
  ['format uri: valid', { type: 'string', format: 'uri' }, 'https://example.com/a?b=1', true],
  ['format ipv4: invalid', { type: 'string', format: 'ipv4' }, '300.1.1.1', false, 'format "ipv4"'],
  ['enum: readable message', { enum: ['billing', 'other'] }, 'refund', false, '$: must be one of "billing", "other"'],
  ['const', { const: 42 }, 41, false, 'must be equal to constant'],
  ['additionalProperties false', { type: 'object', properties: { a: {} }, additionalProperties: false }, { a: 1, b: 2 }, false, '$: unexpected property "b"'],
  ['oneOf: exactly one', { oneOf: [{ type: 'integer' }, { type: 'number', minimum: 10 }] }, 20, false, 'must match exactly one schema in oneOf'],
  ['anyOf nullable', { anyOf: [{ type: 'string' }, { type: 'null' }] }, null, true],
  ['type union', { type: ['string', 'null'] }, 3, false, 'must be string,null'],
  ['prefixItems (2020-12)', { $schema: D2020, prefixItems: [{ type: 'string' }, { type: 'integer' }], items: false }, ['a', 1, 2], false, 'must NOT have more than 2 items'],
  ['tuple items (draft-07)', { $schema: D7, items: [{ type: 'string' }, { type: 'integer' }], additionalItems: false }, ['a', 'b'], false, '$[1]: must be integer'],
  [
    'unevaluatedProperties (2019-09)',
    { $schema: D2019, allOf: [{ properties: { a: {} } }], unevaluatedProperties: false },
    { a: 1, b: 2 },
    false,
    'must NOT have unevaluated properties',
  ],
  ['minItems / uniqueItems', { type: 'array', minItems: 2, uniqueItems: true }, [1, 1], false, 'must NOT have duplicate items'],
  ['numbers: exclusiveMaximum, multipleOf', { type: 'number', exclusiveMaximum: 1, multipleOf: 0.25 }, 0.75, true],
  ['property names with odd characters', { type: 'object', properties: { 'a b': { type: 'string' } } }, { 'a b': 1 }, false, '$["a b"]: must be string'],
];

describe('output schema validation (Ajv + ajv-formats)', () => {
  it('has a table of at least 30 cases', () => expect(CASES.length).toBeGreaterThanOrEqual(30));

  it.each(CASES)('%s', (_name, schemaIn, value, valid, fragment) => {
    const schema = JSON.parse(JSON.stringify(schemaIn)) as Record<string, unknown>;
    expect(schemaProblem(schema)).toBeNull();
    const errors = validateOutput(value, schema);
    if (valid) expect(errors).toEqual([]);
    else {
      expect(errors.length).toBeGreaterThan(0);
      expect(errors.join('\n')).toContain(fragment!);
    }
  });

  it.each([
    ['an unknown type', { type: 'no-such-type' }, 'schema is invalid'],
    ['an unknown format', { type: 'string', format: 'postcode' }, 'unknown format "postcode"'],
    ['an unknown keyword (a typo of a check)', { type: 'object', requried: ['a'] }, 'unknown keyword: "requried"'],
    ['a dangling $ref', { $ref: '#/definitions/missing' }, "can't resolve reference #/definitions/missing"],
    ['an unsupported draft', { $schema: 'http://json-schema.org/draft-04/schema#', type: 'object' }, 'is not supported'],
  ])('refuses %s', (_name, schema, fragment) => {
    expect(schemaProblem(schema)).toContain(fragment);
    expect(validateOutput({}, schema)[0]).toMatch(/^\$: output\.schema is not a usable JSON Schema/);
  });

  it('rejects an unusable schema in the spec, naming output.schema', () => {
    const r = PipelineSpec.safeParse({
      prompt: { template: 'x' },
      providers: [{ kind: 'openai', model: 'm' }],
      output: { format: 'json', schema: { $ref: '#/definitions/money' } },
    });
    expect(r.success).toBe(false);
    expect(formatIssues(r.error!, 'pipeline')).toMatch(/^pipeline\.output\.schema: is not a usable JSON Schema: can't resolve reference/);
    expect(PipelineSpec.safeParse({ prompt: { template: 'x' }, providers: [{ kind: 'openai', model: 'm' }], output: { format: 'json', schema: invoiceD7 } }).success).toBe(true);
  });
});
