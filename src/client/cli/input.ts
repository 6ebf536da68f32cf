/**
 * Reads and validates a batch's files before anything starts: the pipeline spec
 * (JSON or YAML) and the items (JSONL or CSV). Every problem is reported as
 * `<file>:<line>: <field>: <message>`, so a bad file is fixed in one pass and a
 * batch is never started half-way (the issue's rule: "nothing is started half-way").
 */
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { z } from 'zod';
import { INVALID_LINE_FIELD, Item, PipelineSpec, formatIssues } from '../../shared/spec.ts';
import type { PipelineSpecInput } from '../../shared/spec.ts';
import { validateItem } from '../../shared/template.ts';
import { parseCsv } from './csv.ts';
import { messageOf, usageError } from './errors.ts';

/** Problems printed before the rest are counted; a file with thousands of bad lines stays readable. */
export const MAX_PROBLEMS = 20;

/** Collects problems, keeping the first `max` and counting the rest. */
export class Problems {
  readonly shown: string[] = [];
  count = 0;
  readonly max: number;

  constructor(max = MAX_PROBLEMS) {
    this.max = max;
  }

  add(message: string): void {
    this.count += 1;
    if (this.shown.length < this.max) this.shown.push(message);
  }

  get empty(): boolean {
    return this.count === 0;
  }

  /** The shown problems, then a line counting the ones left out. */
  lines(): string[] {
    const more = this.count - this.shown.length;
    return more > 0 ? [...this.shown, `... and ${more} more problem${more === 1 ? '' : 's'}`] : [...this.shown];
  }
}

export type ItemsFormat = 'jsonl' | 'csv' | 'tsv';

/** The items format from the file name: `.jsonl`/`.ndjson`, `.csv` or `.tsv`. */
export function itemsFormat(file: string): ItemsFormat {
  const ext = extname(file).toLowerCase();
  if (ext === '.jsonl' || ext === '.ndjson') return 'jsonl';
  if (ext === '.csv') return 'csv';
  if (ext === '.tsv') return 'tsv';
  throw usageError(`${file}: unknown items format "${ext || '(no extension)'}": give a .jsonl or .csv file`);
}

/** The spec as written and as validated (null when invalid). */
export interface ParsedSpec {
  raw: unknown;
  spec: PipelineSpec | null;
}

/** Parses a spec's text (JSON for `.json`, else YAML, a superset of JSON) and validates it. */
export function parseSpecText(text: string, file: string, problems: Problems): ParsedSpec {
  let raw: unknown;
  if (extname(file).toLowerCase() === '.json') {
    try {
      raw = JSON.parse(text);
    } catch (err) {
      problems.add(`${file}: not valid JSON: ${messageOf(err)}`);
      return { raw: undefined, spec: null };
    }
  } else {
    const lineCounter = new LineCounter();
    const doc = parseDocument(text, { lineCounter, prettyErrors: false });
    if (doc.errors.length > 0) {
      for (const e of doc.errors) {
        const at = lineCounter.linePos(e.pos[0]);
        problems.add(`${file}:${at.line}:${at.col}: not valid YAML: ${e.message}`);
      }
      return { raw: undefined, spec: null };
    }
    raw = doc.toJS();
  }
  const r = PipelineSpec.safeParse(raw);
  if (!r.success) {
    // One line per issue, each naming its field.
    for (const issue of r.error.issues) problems.add(`${file}: ${formatIssues(new z.ZodError([issue]))}`);
    return { raw, spec: null };
  }
  return { raw, spec: r.data };
}

/** `field "text" is missing` becomes `text: missing (...)`, the `<field>: <message>` form of every other problem. */
function fieldFirst(problem: string): string {
  const m = /^field "(.+)" is (missing|empty)$/.exec(problem);
  return m ? `${m[1]}: ${m[2]} (the prompt template or input.required uses it)` : problem;
}

/** Checks items one by one: shape, duplicate ids, and what the spec requires of them. */
class ItemChecker {
  readonly items: Item[] = [];
  readonly firstLine = new Map<string, number>();
  readonly file: string;
  readonly spec: PipelineSpec | null;
  readonly problems: Problems;

  constructor(file: string, spec: PipelineSpec | null, problems: Problems) {
    this.file = file;
    this.spec = spec;
    this.problems = problems;
  }

  add(value: unknown, line: number): void {
    const at = `${this.file}:${line}`;
    const r = Item.safeParse(value);
    if (!r.success) {
      for (const issue of r.error.issues) this.problems.add(`${at}: ${formatIssues(new z.ZodError([issue])).replace(/^\(root\): /, '')}`);
      return;
    }
    const item = r.data;
    const first = this.firstLine.get(item.id);
    if (first !== undefined) {
      this.problems.add(`${at}: duplicate id ${JSON.stringify(item.id)} (first on line ${first})`);
      return;
    }
    this.firstLine.set(item.id, line);
    if (INVALID_LINE_FIELD in item) {
      this.problems.add(`${at}: ${INVALID_LINE_FIELD}: a reserved field name (Steadfast marks unreadable lines with it); rename the field`);
      return;
    }
    if (this.spec) {
      // validateItem is the check the item workflow runs; its problems start with "item <id>: ".
      const prefix = `item ${item.id}: `;
      for (const p of validateItem(item, this.spec)) this.problems.add(`${at}: ${fieldFirst(p.startsWith(prefix) ? p.slice(prefix.length) : p)}`);
    }
    this.items.push(item);
  }
}

/**
 * Parses and validates items from JSONL or CSV text. CSV: the header row names
 * the fields and must have `id`; every value is a string.
 */
export function parseItemsText(text: string, file: string, format: ItemsFormat, spec: PipelineSpec | null, problems: Problems): Item[] {
  const checker = new ItemChecker(file, spec, problems);
  if (format === 'jsonl') {
    const lines = text.split('\n');
    for (let i = 0; i < lines.length; i += 1) {
      // trim() also drops a byte-order mark and a CR, as the workers' reader does.
      const body = lines[i]!.trim();
      if (!body) continue;
      let value: unknown;
      try {
        value = JSON.parse(body);
      } catch (err) {
        problems.add(`${file}:${i + 1}: not valid JSON: ${messageOf(err)}`);
        continue;
      }
      checker.add(value, i + 1);
    }
  } else {
    parseDelimited(text, file, format === 'tsv' ? '\t' : ',', checker);
  }
  if (problems.empty && checker.items.length === 0) problems.add(`${file}: no items`);
  return checker.items;
}

function parseDelimited(text: string, file: string, delimiter: string, checker: ItemChecker): void {
  const { problems } = checker;
  const { records, error } = parseCsv(text, { delimiter });
  const [header, ...rows] = records;
  if (!header) {
    if (error) problems.add(`${file}:${error.line}: ${error.message}`);
    return;
  }
  const names = header.fields.map((f) => f.trim());
  const seen = new Set<string>();
  names.forEach((name, i) => {
    if (!name) problems.add(`${file}:${header.line}: column ${i + 1} of the header has no name`);
    else if (seen.has(name)) problems.add(`${file}:${header.line}: column ${JSON.stringify(name)} appears twice in the header`);
    seen.add(name);
  });
  if (!seen.has('id')) problems.add(`${file}:${header.line}: the header has no "id" column (columns: ${names.join(', ')})`);
  if (!problems.empty) return;
  for (const row of rows) {
    if (row.fields.length !== names.length) {
      problems.add(`${file}:${row.line}: ${row.fields.length} field${row.fields.length === 1 ? '' : 's'}, but the header has ${names.length}`);
      continue;
    }
    checker.add(Object.fromEntries(names.map((name, i) => [name, row.fields[i]])), row.line);
  }
  if (error) problems.add(`${file}:${error.line}: ${error.message}`);
}

/** A batch read from its files and valid throughout. */
export interface LoadedBatch {
  /** The spec as written (the workflow validates it again and fills the defaults). */
  rawSpec: PipelineSpecInput;
  spec: PipelineSpec;
  items: Item[];
  format: ItemsFormat;
  /** Size of the items file in bytes. */
  bytes: number;
}

async function readText(file: string, problems: Problems): Promise<string | null> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    problems.add(`${file}: cannot read the file${code === 'ENOENT' ? ': no such file' : code ? ` (${code})` : `: ${messageOf(err)}`}`);
    return null;
  }
}

/**
 * Reads the spec and the items and validates everything; throws a usage error
 * listing every problem (up to {@link MAX_PROBLEMS}) when anything is wrong.
 */
export async function loadBatch(itemsFile: string, specFile: string): Promise<LoadedBatch> {
  const format = itemsFormat(itemsFile);
  const problems = new Problems();
  const specText = await readText(specFile, problems);
  const { raw, spec } = specText === null ? { raw: undefined, spec: null } : parseSpecText(specText, specFile, problems);
  const itemsText = await readText(itemsFile, problems);
  // Items are checked even when the spec is invalid, so one pass shows every problem.
  const items = itemsText === null ? [] : parseItemsText(itemsText, itemsFile, format, spec, problems);
  if (!problems.empty || !spec || itemsText === null) {
    throw usageError([...problems.lines(), `nothing was started (${problems.count} problem${problems.count === 1 ? '' : 's'})`]);
  }
  return { rawSpec: raw as PipelineSpecInput, spec, items, format, bytes: Buffer.byteLength(itemsText) };
}

const BATCH_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,199}$/;

/** Checks a batch id given with `--batch-id`: it is a workflow id and a prefix of item ids (`<batchId>/<itemId>`). */
export function checkBatchId(id: string): string {
  if (!BATCH_ID_RE.test(id)) {
    throw usageError(`--batch-id ${JSON.stringify(id)}: use letters, digits and . _ : @ - (no "/" or spaces), starting with a letter or digit, at most 200 characters`);
  }
  return id;
}

/** `<spec name>-<yyyymmddThhmmss>` (UTC), the name reduced to characters a batch id allows. */
export function defaultBatchId(specName: string, now: Date): string {
  const name = specName.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[^A-Za-z0-9]+|-+$/g, '') || 'batch';
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\..*$/, '');
  return `${name.slice(0, 160)}-${stamp}`;
}

/** Inline items above either limit go by reference instead (kept out of workflow history). */
export const INLINE_LIMITS = { items: 2_000, bytes: 1 << 20 } as const;

/** True when the items should be passed to the workflow by reference rather than inline. */
export function shouldPassByReference(items: readonly Item[], forced: boolean): boolean {
  if (forced) return true;
  if (items.length > INLINE_LIMITS.items) return true;
  return Buffer.byteLength(JSON.stringify(items)) > INLINE_LIMITS.bytes;
}
