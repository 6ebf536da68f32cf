/**
 * Deterministic answers. The content depends only on the schema and the last user
 * message, so a retried or replayed request gets the same answer, and a test can
 * compute what item 17 must receive with {@link expectedAnswer}.
 */
import { hashHex, intHash } from './hash.ts';

/** A JSON Schema as the provider reads it: a loose record (draft 2020-12 subset). */
export type JsonSchema = Record<string, unknown>;

const REF_RE = /\b(item|id)(?:[ _-]?id)?\b["']?\s*[:=#]?\s*["']?([A-Za-z0-9_.-]*\d[A-Za-z0-9_.-]*)/i;

/**
 * The item reference found in a text, such as `item 17` for "Classify item 17: ..."
 * or `id abc-3` for `{"id": "abc-3"}`; the value must contain a digit so that
 * ordinary words ("item is broken") are not taken for ids.
 */
export function itemRefOf(text: string): string | undefined {
  const m = REF_RE.exec(text);
  if (!m || !m[1] || !m[2]) return undefined;
  const value = m[2].replace(/[.-]+$/, '');
  return `${m[1].toLowerCase()} ${value}`;
}

/** Short stable digest (8 hex chars) of a text. */
export function digestOf(text: string): string {
  return hashHex(text).slice(0, 8);
}

/** The answer to a request without a schema: `Answer for: <first 60 chars> (<digest>)`. */
export function plainAnswer(lastUserText: string): string {
  const head = lastUserText.replace(/\s+/g, ' ').trim().slice(0, 60);
  return `Answer for: ${head} (${digestOf(lastUserText)})`;
}

interface Ctx {
  root: JsonSchema;
  text: string;
  ref: string | undefined;
  digest: string;
}

function isRecord(v: unknown): v is JsonSchema {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Resolves a local `$ref` (`#/$defs/x`, `#/definitions/x`) against the root schema. */
function resolveRef(schema: JsonSchema, root: JsonSchema): JsonSchema {
  const ref = schema['$ref'];
  if (typeof ref !== 'string' || !ref.startsWith('#')) return schema;
  let node: unknown = root;
  for (const part of ref.slice(1).split('/').filter(Boolean)) {
    node = isRecord(node) ? node[part.replace(/~1/g, '/').replace(/~0/g, '~')] : undefined;
  }
  return isRecord(node) ? node : {};
}

/** Picks the schema to generate from: follows `$ref`, the first non-null `anyOf`/`oneOf` branch, merges `allOf`. */
function pick(schemaIn: unknown, root: JsonSchema, depth: number): JsonSchema {
  let s = isRecord(schemaIn) ? resolveRef(schemaIn, root) : {};
  for (let i = 0; i < 8 && depth < 16; i++) {
    const alt = (s['anyOf'] ?? s['oneOf']) as unknown;
    if (Array.isArray(alt)) {
      const branch = alt.find((b) => !(isRecord(b) && b['type'] === 'null')) ?? alt[0];
      s = isRecord(branch) ? resolveRef(branch, root) : {};
      continue;
    }
    if (Array.isArray(s['allOf'])) {
      const merged: JsonSchema = { ...s, allOf: undefined, properties: {}, required: [] };
      for (const part of s['allOf'] as unknown[]) {
        const p = isRecord(part) ? resolveRef(part, root) : {};
        Object.assign(merged['properties'] as JsonSchema, p['properties'] ?? {});
        (merged['required'] as unknown[]).push(...(Array.isArray(p['required']) ? p['required'] : []));
        if (p['type'] !== undefined) merged['type'] = p['type'];
      }
      s = merged;
      continue;
    }
    break;
  }
  return s;
}

/** The JSON type a schema asks for; a type list gives its first non-null member. */
export function typeOf(s: JsonSchema): string {
  const t = s['type'];
  if (typeof t === 'string') return t;
  if (Array.isArray(t)) return (t.find((x) => x !== 'null') as string | undefined) ?? 'null';
  if (isRecord(s['properties'])) return 'object';
  if (s['items'] !== undefined) return 'array';
  return 'string';
}

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

function genString(s: JsonSchema, path: string, ctx: Ctx): string {
  const tag = ctx.digest;
  let out: string;
  switch (s['format']) {
    case 'date-time':
      return '2025-01-01T00:00:00Z';
    case 'date':
      return '2025-01-01';
    case 'email':
      return `${tag}@example.com`;
    case 'uri':
    case 'url':
      return `https://example.com/${tag}`;
    default:
      out = ctx.ref ? `${path} for ${ctx.ref} (${tag})` : `${path} (${tag})`;
  }
  const max = num(s['maxLength']);
  const min = num(s['minLength']) ?? 0;
  if (max !== undefined && out.length > max) out = out.slice(0, max);
  while (out.length < min) out += '.';
  return out;
}

function genNumber(s: JsonSchema, path: string, ctx: Ctx, integer: boolean): number {
  const h = intHash(ctx.text, path);
  const exMin = num(s['exclusiveMinimum']);
  const exMax = num(s['exclusiveMaximum']);
  if (integer) {
    const lo = num(s['minimum']) ?? (exMin !== undefined ? Math.floor(exMin) + 1 : 0);
    const hi = num(s['maximum']) ?? (exMax !== undefined ? Math.ceil(exMax) - 1 : lo + 99);
    return hi >= lo ? lo + (h % (hi - lo + 1)) : lo;
  }
  const lo = num(s['minimum']) ?? exMin ?? 0;
  const hi = num(s['maximum']) ?? exMax ?? lo + 100;
  // Floor to two decimals keeps the value below an exclusive maximum.
  const v = Math.floor((lo + ((h % 10000) / 10000) * (hi - lo)) * 100) / 100;
  return exMin !== undefined && v <= exMin ? (lo + hi) / 2 : v;
}

function gen(schemaIn: unknown, path: string, ctx: Ctx, depth: number): unknown {
  const s = pick(schemaIn, ctx.root, depth);
  if ('const' in s) return s['const'];
  if (Array.isArray(s['enum']) && s['enum'].length > 0) {
    return s['enum'][intHash(ctx.text, path) % s['enum'].length];
  }
  switch (typeOf(s)) {
    case 'object': {
      const out: Record<string, unknown> = {};
      const props = isRecord(s['properties']) ? s['properties'] : {};
      if (depth > 12) return out;
      for (const [key, sub] of Object.entries(props)) {
        out[key] = gen(sub, path === '$' ? key : `${path}.${key}`, ctx, depth + 1);
      }
      return out;
    }
    case 'array': {
      const min = num(s['minItems']) ?? 0;
      const max = num(s['maxItems']) ?? Number.POSITIVE_INFINITY;
      const n = depth > 12 ? 0 : Math.min(max, Math.max(min, 2));
      const items = s['items'] ?? s['prefixItems'];
      return Array.from({ length: n }, (_, i) => gen(Array.isArray(items) ? (items[i] ?? items[items.length - 1]) : items, `${path}[${i}]`, ctx, depth + 1));
    }
    case 'integer':
      return genNumber(s, path, ctx, true);
    case 'number':
      return genNumber(s, path, ctx, false);
    case 'boolean':
      return intHash(ctx.text, path) % 2 === 0;
    case 'null':
      return null;
    default:
      return genString(s, path === '$' ? 'answer' : path, ctx);
  }
}

/**
 * The value the provider answers for a schema and a last user message, when no
 * fault applies. String fields read `<field path> for <item ref> (<digest>)`, e.g.
 * `summary for item 17 (3fa9c2d1)`; numbers, booleans and enum choices are hashes
 * of the text and the field path, within `minimum`/`maximum` when given.
 * Without a schema it returns {@link plainAnswer}.
 */
export function expectedAnswer(schema: JsonSchema | undefined, lastUserText: string): unknown {
  if (!schema) return plainAnswer(lastUserText);
  const ctx: Ctx = { root: schema, text: lastUserText, ref: itemRefOf(lastUserText), digest: digestOf(lastUserText) };
  return gen(schema, '$', ctx, 0);
}

/**
 * A value that is valid JSON but breaks the schema: the first required field is
 * dropped and another field gets the wrong type. Roots that are not objects get a
 * value of the wrong type.
 */
export function violateSchema(schema: JsonSchema, value: unknown): unknown {
  const s = pick(schema, schema, 0);
  const type = typeOf(s);
  if (type !== 'object' || !isRecord(value)) return type === 'string' ? 42 : 'not the expected type';
  const out: Record<string, unknown> = { ...value };
  const required = Array.isArray(s['required']) ? (s['required'] as string[]) : [];
  const dropped = required[0];
  if (dropped !== undefined) delete out[dropped];
  const props = isRecord(s['properties']) ? s['properties'] : {};
  const other = Object.keys(props).find((k) => k !== dropped);
  if (other !== undefined) out[other] = typeof out[other] === 'string' ? 12345 : 'wrong type';
  // Nothing to drop or retype: an array where an object is expected always violates.
  return dropped === undefined && other === undefined ? [out] : out;
}

/** Output that is not JSON: a chatty preamble and a cut-off body, as models sometimes emit. */
export function notJson(jsonText: string): string {
  return `Sure! Here is the result: ${jsonText.slice(0, Math.max(1, Math.floor(jsonText.length / 2)))}`;
}

/** Cuts a text to roughly `maxTokens` under the provider's estimate (4 chars per token). */
export function cutToTokens(text: string, maxTokens: number): string {
  return text.slice(0, Math.max(0, maxTokens * 4));
}
