/**
 * Reads a batch's items from a JSONL file by reference, a page at a time, so a
 * 100,000-item batch never puts its items in one payload or in history at once.
 * A bad line does not stop the batch: it becomes an item that goes to review
 * with the line number and the reason (nothing is lost).
 */
import { open } from 'node:fs/promises';
import { ApplicationFailure } from '@temporalio/common';
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

/** Activity: the next page of items from a JSONL path (on the workers' filesystem). */
export async function readItemsPage(req: PageRequest): Promise<Page> {
  if (/^https?:\/\//.test(req.path)) {
    throw ApplicationFailure.create({
      type: FailureType.InvalidInput,
      message: `source ${req.path}: URLs are not supported yet; give a path readable by the workers`,
      nonRetryable: true,
    });
  }
  const page = await readLocal(req);
  // A page that ends exactly at EOF is the last one.
  if (!page.done && page.items.length === req.limit) {
    const probe = await readLocal({ ...req, offset: page.nextOffset, limit: 1, line: page.nextLine });
    if (probe.items.length === 0) page.done = true;
  }
  return page;
}
