/**
 * Whether OpenAI's Structured Outputs can take a schema with `strict: true`.
 *
 * Strict mode guarantees the answer's shape, but only for a subset of JSON Schema:
 * the root is an object, every object lists all its properties in `required` and
 * sets `additionalProperties: false`, and only the keywords below appear. A schema
 * outside the subset is sent with `strict: false` (the model is guided, not bound)
 * and Steadfast's own validation and repair still apply.
 */

/** Keywords strict mode accepts (annotations included). */
const STRICT_KEYWORDS = new Set([
  'type',
  'properties',
  'required',
  'additionalProperties',
  'items',
  'enum',
  'const',
  'anyOf',
  '$ref',
  '$defs',
  'definitions',
  '$schema',
  '$id',
  'description',
  'title',
  'default',
  'examples',
  'pattern',
  'format',
  'multipleOf',
  'maximum',
  'exclusiveMaximum',
  'minimum',
  'exclusiveMinimum',
  'minItems',
  'maxItems',
]);

const STRICT_FORMATS = new Set(['date-time', 'time', 'date', 'duration', 'email', 'hostname', 'ipv4', 'ipv6', 'uuid']);

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Null when the schema fits strict mode; else the first reason (with its JSON path) it does not. */
export function strictSchemaProblem(schema: Record<string, unknown>): string | null {
  if (schema['type'] !== 'object') return 'the root of a strict schema must be {"type":"object"}';
  const walk = (s: unknown, path: string): string | null => {
    if (typeof s === 'boolean') return `${path}: boolean schemas are not supported`;
    if (!isRecord(s)) return null;
    for (const k of Object.keys(s)) if (!STRICT_KEYWORDS.has(k)) return `${path}: keyword "${k}" is not supported in strict mode`;
    if (typeof s['format'] === 'string' && !STRICT_FORMATS.has(s['format'])) return `${path}: format "${s['format']}" is not supported in strict mode`;
    const isObject = s['type'] === 'object' || (Array.isArray(s['type']) && s['type'].includes('object')) || isRecord(s['properties']);
    if (isObject) {
      if (s['additionalProperties'] !== false) return `${path}: an object needs "additionalProperties": false`;
      const props = isRecord(s['properties']) ? Object.keys(s['properties']) : [];
      const required = Array.isArray(s['required']) ? s['required'] : [];
      const missing = props.find((p) => !required.includes(p));
      if (missing !== undefined) return `${path}: property "${missing}" must be required (make it nullable instead of optional)`;
    }
    const children: Array<[unknown, string]> = [];
    if (isRecord(s['properties'])) for (const [k, v] of Object.entries(s['properties'])) children.push([v, `${path}.${k}`]);
    for (const defs of ['$defs', 'definitions']) if (isRecord(s[defs])) for (const [k, v] of Object.entries(s[defs])) children.push([v, `${path}.${defs}.${k}`]);
    if (s['items'] !== undefined) children.push([s['items'], `${path}[]`]);
    if (Array.isArray(s['anyOf'])) s['anyOf'].forEach((v, i) => children.push([v, `${path}.anyOf[${i}]`]));
    for (const [child, at] of children) {
      const problem = walk(child, at);
      if (problem) return problem;
    }
    return null;
  };
  return walk(schema, '$');
}
