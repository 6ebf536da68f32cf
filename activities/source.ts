/**
 * Reads a batch's items from a JSONL file by reference, a page at a time, so a
 * 100,000-item batch never puts its items in one payload or in history at once.
 * A bad line does not stop the batch: it becomes an item that goes to review
 * with the line number and the reason (nothing is lost). Only paths under the
 * operator's source roots are read (src/common/source-roots.ts).
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
  limit: number;
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
    let offset = req.offset;
    let line = req.line ?? 1;
    let carry = Buffer.alloc(0);
    for (;;) {
      const buf = Buffer.alloc(CHUNK);
      const { bytesRead } = await fh.read(buf, 0, CHUNK, offset + carry.length);
      const data = Buffer.concat([carry, buf.subarray(0, bytesRead)]);
      let start = 0;
      for (let nl = data.indexOf(10, start); nl >= 0 && items.length < req.limit; nl = data.indexOf(10, start)) {
        const text = data.subarray(start, nl).toString('utf8').trim();
        if (text) items.push(parseLine(text, line));
        line += 1;
        start = nl + 1;
      }
      offset += start;
      carry = data.subarray(start);
      if (items.length >= req.limit) return { items, nextOffset: offset, nextLine: line, done: false };
      if (bytesRead === 0) {
        const text = carry.toString('utf8').trim();
        if (text) items.push(parseLine(text, line));
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
    if (!page.done && page.items.length === req.limit) {
      const probe = await readLocal({ ...at, offset: page.nextOffset, limit: 1, line: page.nextLine });
      if (probe.items.length === 0) page.done = true;
    }
    return page;
  };
}
