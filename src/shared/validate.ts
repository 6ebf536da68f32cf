/**
 * Output parsing and JSON Schema validation.
 *
 * PURE and workflow-safe (no Node built-ins, no clock): the batch workflow checks the
 * spec's schema before anything runs and the review gate validates approved outputs,
 * both deterministically. Schemas are compiled by Ajv (drafts 07, 2019-09 and 2020-12,
 * with ajv-formats); Ajv generates code with `new Function`, which the workflow sandbox
 * (a `node:vm` context without code-generation limits) allows. Workflows load this
 * module lazily (workflows/lazy.ts): an item on the happy path never pays for it.
 */
import { Ajv } from 'ajv';
import type { ErrorObject, Options, ValidateFunction } from 'ajv';
import { Ajv2019 } from 'ajv/dist/2019.js';
import { Ajv2020 } from 'ajv/dist/2020.js';
import nextVocabulary from 'ajv/dist/vocabularies/next.js';
import unevaluatedVocabulary from 'ajv/dist/vocabularies/unevaluated/index.js';
import addFormats from 'ajv-formats';
import { errorMessage } from './failures.ts';

/** The drafts a schema may declare in `$schema`; without one, 2020-12 applies. */
export const SUPPORTED_DRAFTS = {
  'draft-07': 'http://json-schema.org/draft-07/schema',
  '2019-09': 'https://json-schema.org/draft/2019-09/schema',
  '2020-12': 'https://json-schema.org/draft/2020-12/schema',
} as const;
export type Draft = keyof typeof SUPPORTED_DRAFTS;

const OPTIONS: Options = {
  allErrors: true,
  // Unknown keywords and formats are rejected: a keyword Ajv would ignore is a check the user thinks runs.
  strictSchema: true,
  strictTypes: false,
  strictTuples: false,
  strictRequired: false,
  allowUnionTypes: true,
  logger: false,
};

/** A CommonJS module's `exports.default`: Node hands it under `.default`, Vite and webpack may hand it directly. */
function cjsDefault<T>(m: T | { default: T }): T {
  return typeof m === 'object' && m !== null && 'default' in m ? m.default : (m as T);
}

type AjvLike = Ajv | Ajv2019 | Ajv2020;
const engines: Partial<Record<Draft, AjvLike>> = {};

function engine(draft: Draft): AjvLike {
  let a = engines[draft];
  if (!a) {
    if (draft === 'draft-07') {
      const d7 = new Ajv(OPTIONS);
      // draft-07 schemas also get dependentRequired, dependentSchemas, min/maxContains and unevaluated*.
      d7.addVocabulary(cjsDefault(nextVocabulary));
      d7.addVocabulary(cjsDefault(unevaluatedVocabulary));
      a = d7;
    } else a = draft === '2019-09' ? new Ajv2019(OPTIONS) : new Ajv2020(OPTIONS);
    cjsDefault(addFormats)(a as Ajv);
    engines[draft] = a;
  }
  return a;
}

/** The draft a schema declares (`$schema`), 2020-12 when it declares none; throws on any other. */
export function draftOf(schema: Record<string, unknown>): Draft {
  const declared = schema['$schema'];
  if (declared === undefined) return '2020-12';
  if (typeof declared === 'string') {
    const url = declared.replace(/#$/, '').replace(/^http:/, 'https:');
    for (const [draft, id] of Object.entries(SUPPORTED_DRAFTS)) if (url === id.replace(/^http:/, 'https:')) return draft as Draft;
  }
  throw new Error(`$schema ${JSON.stringify(declared)} is not supported; use ${Object.values(SUPPORTED_DRAFTS).join(', ')} or leave it out (2020-12)`);
}

/** Compiled validators by the schema's JSON text: a batch compiles its schema once, then validates every item. */
const compiled = new Map<string, ValidateFunction>();

/** Compiles a JSON Schema; throws `output.schema ...` with a readable reason when it cannot be used. */
export function compileSchema(schema: Record<string, unknown>): ValidateFunction {
  const key = JSON.stringify(schema);
  let v = compiled.get(key);
  if (!v) {
    try {
      const a = engine(draftOf(schema));
      // A fresh copy: Ajv keeps compiled schemas by identity and would otherwise hold every spec's object.
      v = a.compile(JSON.parse(key) as Record<string, unknown>);
    } catch (err: unknown) {
      throw new Error(`output.schema is not a usable JSON Schema: ${errorMessage(err)}`, { cause: err });
    }
    if (compiled.size > 100) compiled.clear();
    compiled.set(key, v);
  }
  return v;
}

/** Why a schema cannot be used, or null when it compiles. */
export function schemaProblem(schema: Record<string, unknown>): string | null {
  try {
    compileSchema(schema);
    return null;
  } catch (err: unknown) {
    return errorMessage(err);
  }
}

/** `$.items[0].score` from a JSON Pointer (`/items/0/score`). */
export function jsonPath(pointer: string): string {
  if (pointer === '') return '$';
  return pointer
    .slice(1)
    .split('/')
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce<string>((acc, p) => (/^\d+$/.test(p) ? `${acc}[${p}]` : /^[A-Za-z_$][\w$]*$/.test(p) ? `${acc}.${p}` : `${acc}[${JSON.stringify(p)}]`), '$');
}

/** One readable line per Ajv error; a missing property is reported at its own path. */
function describe(e: ErrorObject): string {
  const params = e.params as Record<string, unknown>;
  if (e.keyword === 'required' && typeof params['missingProperty'] === 'string') {
    return `${jsonPath(`${e.instancePath}/${params['missingProperty']}`)}: is required`;
  }
  if (e.keyword === 'additionalProperties' && typeof params['additionalProperty'] === 'string') {
    return `${jsonPath(e.instancePath)}: unexpected property "${params['additionalProperty']}"`;
  }
  if (e.keyword === 'enum' && Array.isArray(params['allowedValues'])) {
    return `${jsonPath(e.instancePath)}: must be one of ${params['allowedValues'].map((x) => JSON.stringify(x)).join(', ')}`;
  }
  return `${jsonPath(e.instancePath)}: ${e.message ?? e.keyword}`;
}

/**
 * Validates a parsed value against a JSON Schema. Returns one `path: problem`
 * line per violation, empty when valid. Never throws (a workflow calls it):
 * an unusable schema is reported as a violation at `$`.
 */
export function validateOutput(value: unknown, schema: Record<string, unknown> | undefined): string[] {
  if (!schema) return [];
  let v: ValidateFunction;
  try {
    v = compileSchema(schema);
  } catch (err: unknown) {
    return [`$: ${errorMessage(err)}`];
  }
  if (v(value)) return [];
  // allErrors reports a failed `if` branch and each anyOf member too: keep the lines unique.
  return [...new Set((v.errors ?? []).filter((e) => e.keyword !== 'if').map(describe))];
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
