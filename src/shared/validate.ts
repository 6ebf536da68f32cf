/**
 * Output parsing, JSON Schema validation and the repair prompt.
 *
 * PURE and workflow-safe (zod only, no Node built-ins, no clock): the item
 * workflow builds repair prompts with {@link repairMessages} and the review
 * gate validates approved outputs with {@link validateOutput}, both
 * deterministically. JSON Schema is compiled with zod 4's `z.fromJSONSchema`.
 */
import { z } from 'zod';
import { errorMessage } from './failures.ts';

/** Compiled schemas by their JSON text: the same spec is validated thousands of times. */
const compiled = new Map<string, z.ZodType>();

/** Compiles a JSON Schema to zod; throws with a readable message when the schema cannot be used. */
export function compileSchema(schema: Record<string, unknown>): z.ZodType {
  const key = JSON.stringify(schema);
  let s = compiled.get(key);
  if (!s) {
    try {
      s = z.fromJSONSchema(schema as Parameters<typeof z.fromJSONSchema>[0]);
    } catch (err: unknown) {
      throw new Error(`output.schema is not a usable JSON Schema: ${errorMessage(err)}`, { cause: err });
    }
    if (compiled.size > 100) compiled.clear();
    compiled.set(key, s);
  }
  return s;
}

/** `$.items[0].score` from a zod issue path. */
export function jsonPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((acc, p) => (typeof p === 'number' ? `${acc}[${p}]` : `${acc}.${String(p)}`), '$');
}

/**
 * Validates a parsed value against a JSON Schema. Returns one `path: problem`
 * line per violation, empty when valid. Never throws (a workflow calls it):
 * an unusable schema is reported as a violation at `$`.
 */
export function validateOutput(value: unknown, schema: Record<string, unknown> | undefined): string[] {
  if (!schema) return [];
  let s: z.ZodType;
  try {
    s = compileSchema(schema);
  } catch (err: unknown) {
    return [`$: ${errorMessage(err)}`];
  }
  const r = s.safeParse(value);
  if (r.success) return [];
  return r.error.issues.map((i) => `${jsonPath(i.path)}: ${i.message}`);
}

/** Result of {@link parseJsonOutput}. */
export type ParsedOutput = { ok: true; value: unknown } | { ok: false; error: string };

/**
 * Parses a model's JSON answer. Tolerates what models add around JSON
 * (a Markdown code fence, leading prose before the first brace) but not
 * broken JSON: that is an InvalidOutput to repair.
 */
export function parseJsonOutput(text: string): ParsedOutput {
  const t = text.trim();
  const fenced = /^```(?:json)?\s*([\s\S]*?)\s*```$/i.exec(t);
  const candidates = [fenced?.[1] ?? t];
  const start = t.search(/[[{]/);
  if (!fenced && start > 0) candidates.push(t.slice(start));
  let error = 'empty answer';
  for (const c of candidates) {
    if (c === '') continue;
    try {
      return { ok: true, value: JSON.parse(c) };
    } catch (err: unknown) {
      error = errorMessage(err);
    }
  }
  return { ok: false, error: `$: not valid JSON (${error})` };
}

export { REPAIR_PREFIX, repairMessages } from './repair.ts';
