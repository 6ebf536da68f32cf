/**
 * Reads a batch's items from a JSONL file by reference, a page at a time, so a
 * 100,000-item batch never puts its items in one payload or in history at once.
 * A bad line does not stop the batch: it becomes an item that goes to review
 * with the line number and the reason (nothing is lost). Only paths under the
 * operator's source roots are read (src/common/source-roots.ts).
 *
 * Every page stays under Temporal's payload limit by design: it ends at `limit`
 * items or `maxBytes` of item JSON, whichever comes first, and an item whose own
 * line is larger than the item limit (`STEADFAST_MAX_ITEM_BYTES`) is replaced by
 * a stub that goes to review as `InvalidItem`, naming its size; the rest run.
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
/** Default largest item (its JSONL line), so an item and its workflow input stay far under 2 MB. */
export const ITEM_BYTES = 256 * 1024;

/** The item size limit from `STEADFAST_MAX_ITEM_BYTES` (bytes), else {@link ITEM_BYTES}. */
export function maxItemBytesFrom(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env['STEADFAST_MAX_ITEM_BYTES'];
  if (raw === undefined || raw === '') return ITEM_BYTES;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1024 || n > 1024 * 1024) {
    throw ApplicationFailure.create({
      type: FailureType.InvalidInput,
      message: `STEADFAST_MAX_ITEM_BYTES=${raw}: give a whole number of bytes from 1024 to 1048576`,
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
  const m = /^\s*\{\s*"id"\s*:\s*("(?:[^"\\]|\\.){1,512}")/.exec(text.slice(0, 1200));
  let id = `line-${line}`;
  if (m) {
    try {
      id = JSON.parse(m[1]!) as string;
    } catch {
      // keep the line-based id
    }
  }
  const reason = `line ${line}: item is ${formatBytes(bytes)}, over the ${formatBytes(limit)} limit (STEADFAST_MAX_ITEM_BYTES); pass large texts by reference (a path or URL field) or raise the limit`;
  return { id, [INVALID_LINE_FIELD]: reason };
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
    let bytes = 0;
    let full = false;
    /** Adds the line's item unless the page's byte budget is spent (then the line stays for the next page). */
    const take = (raw: Buffer, line: number): boolean => {
      const text = raw.toString('utf8').trim();
      if (!text) return true;
      const item = raw.length > maxItemBytes ? oversizeStub(text, line, raw.length, maxItemBytes) : parseLine(text, line);
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

/** Builds the activity that reads the next page of items from a JSONL path (on the workers' filesystem) under `access.roots`. */
export function makeReadItemsPage(access: SourceAccess): (req: PageRequest) => Promise<Page> {
  return async function readItemsPage(req: PageRequest): Promise<Page> {
    if (/^https?:\/\//i.test(req.path)) {
      try {
        checkSourceHost(req.path, access.hosts);
      } catch (err: unknown) {
        throw notAllowed(err);
      }
      throw ApplicationFailure.create({
        type: FailureType.InvalidInput,
        message: `source ${new URL(req.path).origin}: URLs are not supported yet; give a path readable by the workers`,
        nonRetryable: true,
      });
    }
    let path: string;
    try {
      path = resolveUnderRoots(req.path, access.roots);
    } catch (err: unknown) {
      if (err instanceof SourceNotAllowedError) throw notAllowed(err);
      throw err;
    }
    const at = { ...req, path };
    const page = await readLocal(at);
    // A page that ends exactly at EOF is the last one.
    if (!page.done) {
      const probe = await readLocal({ ...at, offset: page.nextOffset, limit: 1, line: page.nextLine });
      if (probe.items.length === 0) page.done = true;
    }
    return page;
  };
}
