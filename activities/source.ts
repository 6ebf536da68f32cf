/**
 * Reads a batch's items from a JSONL file by reference, a page at a time, so a
 * 100,000-item batch never puts its items in one payload or in history at once.
 * A bad line does not stop the batch: it becomes an item that goes to review
 * with the line number and the reason (nothing is lost). Only paths under the
 * operator's source roots are read (src/common/source-roots.ts).
 *
 * Pages are bounded: one ends at `limit` items or `maxBytes` of item JSON, whichever
 * comes first (one item always fits; a page over STEADFAST_CLAIM_BYTES travels as a
 * claim check), and an item whose own line is larger than the item limit
 * (`STEADFAST_MAX_ITEM_BYTES`) is replaced by a stub that goes to review as
 * `InvalidItem`, naming its size; the rest run.
 */
import { open } from 'node:fs/promises';
import { ApplicationFailure } from '@temporalio/common';
import { checkSourceHost, resolveUnderRoots, SourceNotAllowedError } from '../src/common/source-roots.ts';
import { errorMessage, FailureType } from '../src/shared/failures.ts';
import { INVALID_LINE_FIELD, Item } from '../src/shared/spec.ts';

export interface PageRequest {
  path: string;
  /** Byte offset of the first unread line. */
  offset: number;
  /** Most items in the page. */
  limit: number;
  /** Most bytes of item JSON in the page (one item always fits). @default {@link PAGE_BYTES} */
  maxBytes?: number;
  /** An item whose line is longer than this many bytes becomes an invalid-item stub. @default STEADFAST_MAX_ITEM_BYTES or {@link ITEM_BYTES} */
  maxItemBytes?: number;
  /** 1-based number of the line at `offset`, for error messages. @default 1 */
  line?: number;
  /**
   * Lines whose id an earlier line already used, as `[line, firstLine]` (from {@link scanSource}):
   * each becomes an invalid-item stub that names both lines, so a duplicate is reported, never run.
   */
  duplicates?: [number, number][];
}

export interface Page {
  items: Item[];
  nextOffset: number;
  nextLine: number;
  done: boolean;
}

const CHUNK = 1 << 20;

/** Default budget of one page's item JSON: a quarter of Temporal's 2 MB payload limit. */
export const PAGE_BYTES = 512 * 1024;
/**
 * Default largest item (its JSONL line). Items are not bound by Temporal's payload limit:
 * any payload over STEADFAST_CLAIM_BYTES is claim-checked (src/common/claim-check.ts), so
 * this bounds only the worker's memory and what a model could be asked to read.
 */
export const ITEM_BYTES = 16 * 1024 * 1024;
/** Largest allowed STEADFAST_MAX_ITEM_BYTES. */
export const MAX_ITEM_BYTES_LIMIT = 256 * 1024 * 1024;

/** The item size limit from `STEADFAST_MAX_ITEM_BYTES` (bytes), else {@link ITEM_BYTES}. */
export function maxItemBytesFrom(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env['STEADFAST_MAX_ITEM_BYTES'];
  if (raw === undefined || raw === '') return ITEM_BYTES;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1024 || n > MAX_ITEM_BYTES_LIMIT) {
    throw ApplicationFailure.create({
      type: FailureType.InvalidInput,
      message: `STEADFAST_MAX_ITEM_BYTES=${raw}: give a whole number of bytes from 1024 to ${MAX_ITEM_BYTES_LIMIT}`,
      nonRetryable: true,
    });
  }
  return n;
}

/** `5.0 MB`, `300 KB`, `900 B`. */
export function formatBytes(n: number): string {
  if (n >= 1024 * 1024) return `${(n / (1024 * 1024)).toFixed(1)} MB`;
  if (n >= 1024) return `${Math.round(n / 1024)} KB`;
  return `${n} B`;
}

/** The stub of an item too large to carry: its id when one can be read, and why it cannot run. */
export function oversizeStub(text: string, line: number, bytes: number, limit: number): Item {
  const id = leadingId(text) ?? `line-${line}`;
  const reason = `line ${line}: item is ${formatBytes(bytes)}, over the ${formatBytes(limit)} limit (STEADFAST_MAX_ITEM_BYTES); pass large texts by reference (a path or URL field) or raise the limit`;
  return { id, [INVALID_LINE_FIELD]: reason };
}

/** The id at the start of an item line, without parsing the whole line (null when it cannot be read so). */
function leadingId(text: string): string | null {
  const m = /^\s*\{\s*"id"\s*:\s*("(?:[^"\\]|\\.){1,512}")/.exec(text.slice(0, 1200));
  if (!m) return null;
  try {
    return JSON.parse(m[1]!) as string;
  } catch {
    return null;
  }
}

/** The stub of a line whose id an earlier line used: reported by line, never run under that id. */
export function duplicateStub(text: string, line: number, firstLine: number): Item {
  const id = idOfLine(text);
  return { id: `line-${line}`, [INVALID_LINE_FIELD]: `line ${line}: duplicate item id ${JSON.stringify(id)} (first on line ${firstLine}); this line is not run` };
}

/** The item id of a line as the reader would run it, or null for a line that becomes `line-<n>`. */
function idOfLine(text: string): string | null {
  const lead = leadingId(text);
  if (lead !== null) return lead;
  try {
    const r = Item.safeParse(JSON.parse(text));
    return r.success ? r.data.id : null;
  } catch {
    return null;
  }
}

/** Turns one JSONL line into an item, or an invalid-line item that names the problem. */
export function parseLine(text: string, line: number): Item {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { id: `line-${line}`, [INVALID_LINE_FIELD]: `line ${line}: not valid JSON (${errorMessage(err)})` };
  }
  const r = Item.safeParse(value);
  if (r.success) return r.data;
  const problem = r.error.issues.map((i) => `${i.path.join('.') || '(line)'}: ${i.message}`).join('; ');
  return { id: `line-${line}`, [INVALID_LINE_FIELD]: `line ${line}: ${problem}` };
}

async function readLocal(req: PageRequest): Promise<Page> {
  let fh;
  try {
    fh = await open(req.path, 'r');
  } catch (err) {
    throw ApplicationFailure.create({
      type: FailureType.InvalidInput,
      message: `cannot read items file ${req.path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
      nonRetryable: true,
    });
  }
  try {
    const items: Item[] = [];
    const maxBytes = req.maxBytes ?? PAGE_BYTES;
    const maxItemBytes = req.maxItemBytes ?? maxItemBytesFrom();
    const dupOf = new Map(req.duplicates ?? []);
    let bytes = 0;
    let full = false;
    /** Adds the line's item unless the page's byte budget is spent (then the line stays for the next page). */
    const take = (raw: Buffer, line: number): boolean => {
      const text = raw.toString('utf8').trim();
      if (!text) return true;
      const first = dupOf.get(line);
      const item = first !== undefined ? duplicateStub(text, line, first) : raw.length > maxItemBytes ? oversizeStub(text, line, raw.length, maxItemBytes) : parseLine(text, line);
      const size = Buffer.byteLength(JSON.stringify(item));
      if (items.length > 0 && bytes + size > maxBytes) return ((full = true), false);
      items.push(item);
      bytes += size;
      return true;
    };
    let offset = req.offset;
    let line = req.line ?? 1;
    let carry = Buffer.alloc(0);
    for (;;) {
      const buf = Buffer.alloc(CHUNK);
      const { bytesRead } = await fh.read(buf, 0, CHUNK, offset + carry.length);
      const data = Buffer.concat([carry, buf.subarray(0, bytesRead)]);
      let start = 0;
      for (let nl = data.indexOf(10, start); nl >= 0 && items.length < req.limit; nl = data.indexOf(10, start)) {
        if (!take(data.subarray(start, nl), line)) break;
        line += 1;
        start = nl + 1;
      }
      offset += start;
      carry = data.subarray(start);
      if (full || items.length >= req.limit) return { items, nextOffset: offset, nextLine: line, done: false };
      if (bytesRead === 0) {
        if (!take(carry, line)) return { items, nextOffset: offset, nextLine: line, done: false };
        const text = carry.toString('utf8').trim();
        return { items, nextOffset: offset + carry.length, nextLine: line + (text ? 1 : 0), done: true };
      }
    }
  } finally {
    await fh.close();
  }
}

/** Where sources may be read from (see src/common/source-roots.ts). */
export interface SourceAccess {
  /** Directories a source path must lie under (after resolving symlinks). */
  roots: readonly string[];
  /** Host names a source URL may name. */
  hosts: readonly string[];
}

function notAllowed(err: unknown): ApplicationFailure {
  return ApplicationFailure.create({ type: FailureType.InvalidInput, message: errorMessage(err), nonRetryable: true });
}

/** The real path of a source under `access.roots`; a URL or a path outside them is `InvalidInput`. */
function allowedPath(source: string, access: SourceAccess): string {
  if (/^https?:\/\//i.test(source)) {
    try {
      checkSourceHost(source, access.hosts);
    } catch (err: unknown) {
      throw notAllowed(err);
    }
    throw ApplicationFailure.create({
      type: FailureType.InvalidInput,
      message: `source ${new URL(source).origin}: URLs are not supported yet; give a path readable by the workers`,
      nonRetryable: true,
    });
  }
  try {
    return resolveUnderRoots(source, access.roots);
  } catch (err: unknown) {
    if (err instanceof SourceNotAllowedError) throw notAllowed(err);
    throw err;
  }
}

/** Builds the activity that reads the next page of items from a JSONL path (on the workers' filesystem) under `access.roots`. */
export function makeReadItemsPage(access: SourceAccess): (req: PageRequest) => Promise<Page> {
  return async function readItemsPage(req: PageRequest): Promise<Page> {
    const at = { ...req, path: allowedPath(req.path, access) };
    const page = await readLocal(at);
    // A page that ends exactly at EOF is the last one.
    if (!page.done) {
      const probe = await readLocal({ ...at, offset: page.nextOffset, limit: 1, line: page.nextLine });
      if (probe.items.length === 0) page.done = true;
    }
    return page;
  };
}

/** What {@link scanSource} found: the item count, and the lines that repeat an earlier id. */
export interface SourceScan {
  /** Items (non-empty lines) in the source. */
  total: number;
  /** `[line, firstLine]` of each line whose id an earlier line used, up to {@link MAX_DUPLICATES}. */
  duplicates: [number, number][];
}

/** Most duplicate lines reported one by one; past it the batch is refused as a whole. */
export const MAX_DUPLICATES = 1_000;

/**
 * Builds the activity that makes one streaming pass over a JSONL source (under
 * `access.roots`) before its first page: counts
 * the items (so the batch knows its total and ETA at once) and finds the lines
 * whose id an earlier line used. Memory: the set of ids (100,000 ids: a few MB).
 * More than {@link MAX_DUPLICATES} duplicates fail the batch with `InvalidInput`.
 */
export function makeScanSource(access: SourceAccess): (req: { path: string }) => Promise<SourceScan> {
  return (req) => scanSource(allowedPath(req.path, access));
}

async function scanSource(path: string): Promise<SourceScan> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    throw ApplicationFailure.create({
      type: FailureType.InvalidInput,
      message: `cannot read items file ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
      nonRetryable: true,
    });
  }
  const firstLine = new Map<string, number>();
  const duplicates: [number, number][] = [];
  let extra = 0;
  let total = 0;
  let line = 1;
  const see = (raw: Buffer): void => {
    const text = raw.toString('utf8').trim();
    if (!text) return;
    total += 1;
    const id = idOfLine(text) ?? `line-${line}`;
    const first = firstLine.get(id);
    if (first === undefined) firstLine.set(id, line);
    else if (duplicates.length < MAX_DUPLICATES) duplicates.push([line, first]);
    else extra += 1;
  };
  try {
    let position = 0;
    let carry = Buffer.alloc(0);
    for (;;) {
      const buf = Buffer.alloc(CHUNK);
      const { bytesRead } = await fh.read(buf, 0, CHUNK, position);
      position += bytesRead;
      const data = carry.length ? Buffer.concat([carry, buf.subarray(0, bytesRead)]) : buf.subarray(0, bytesRead);
      let start = 0;
      for (let nl = data.indexOf(10, start); nl >= 0; nl = data.indexOf(10, start)) {
        see(data.subarray(start, nl));
        line += 1;
        start = nl + 1;
      }
      carry = Buffer.from(data.subarray(start));
      if (bytesRead === 0) {
        see(carry);
        break;
      }
    }
  } finally {
    await fh.close();
  }
  if (extra > 0) {
    const shown = duplicates
      .slice(0, 3)
      .map(([l, f]) => `line ${l} (first on line ${f})`)
      .join(', ');
    throw ApplicationFailure.create({
      type: FailureType.InvalidInput,
      message: `source ${path}: ${duplicates.length + extra} lines repeat an earlier item id, e.g. ${shown}; give every item its own id`,
      nonRetryable: true,
    });
  }
  return { total, duplicates };
}
