/**
 * The values of an item's secret fields (the spec's `secretFields`), for the
 * activities to redact wherever the item's text may come back: a model quoting its
 * input in an answer, a provider echoing the prompt in an error. Pure: workflows use it.
 */
import type { Item } from './spec.ts';

/** String and number values under `fields` at any depth of `item`, longest first, without duplicates. */
export function secretValuesOf(item: Item, fields: readonly string[]): string[] {
  if (fields.length === 0) return [];
  const out = new Set<string>();
  const collect = (v: unknown): void => {
    if (typeof v === 'string') out.add(v);
    else if (typeof v === 'number' && Number.isFinite(v)) out.add(String(v));
    else if (Array.isArray(v)) v.forEach(collect);
    else if (v !== null && typeof v === 'object') Object.values(v).forEach(collect);
  };
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v !== null && typeof v === 'object') {
      for (const [k, inner] of Object.entries(v)) {
        if (fields.includes(k)) collect(inner);
        else walk(inner);
      }
    }
  };
  walk(item);
  return [...out].filter((s) => s.length > 0).sort((a, b) => b.length - a.length);
}

/** Values shorter than this are not redacted: replacing "1" everywhere would destroy texts (as in activities/scrub.ts). */
export const MIN_SECRET_VALUE_LENGTH = 6;

/** What replaces a secret value (the same text as activities/scrub.ts `REDACTED`). */
const REDACTED = '[redacted]';

/** `text` with every occurrence of the literal `values` (longest first) replaced by `[redacted]`. */
export function redactValues(text: string, values: readonly string[]): string {
  let out = text;
  for (const v of [...values].sort((a, b) => b.length - a.length)) {
    if (v.length >= MIN_SECRET_VALUE_LENGTH && out.includes(v)) out = out.split(v).join(REDACTED);
  }
  return out;
}

/** A deep copy of a JSON-like value with {@link redactValues} applied to every string. */
export function redactValuesDeep<T>(value: T, values: readonly string[]): T {
  if (values.length === 0) return value;
  const walk = (v: unknown): unknown => {
    if (typeof v === 'string') return redactValues(v, values);
    if (Array.isArray(v)) return v.map(walk);
    if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, inner]) => [k, walk(inner)]));
    return v;
  };
  return walk(value) as T;
}
