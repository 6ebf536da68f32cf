import { mkdtempSync, realpathSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ITEM_BYTES, PAGE_BYTES, makeReadItemsPage } from '../../activities/source.ts';
import type { Page } from '../../activities/source.ts';
import { INVALID_LINE_FIELD, Item, MAX_ITEM_ID_CHARS } from '../../src/shared/spec.ts';

const dir = realpathSync(mkdtempSync(join(tmpdir(), 'sf-source-')));
const readItemsPage = makeReadItemsPage({ roots: [dir], hosts: [] });

function file(name: string, lines: string[]): string {
  const path = join(dir, name);
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
}

/** Reads the whole source page by page, as the batch does. */
async function readAll(path: string, limit = 200, maxItemBytes?: number): Promise<Page[]> {
  const pages: Page[] = [];
  let offset = 0;
  let line = 1;
  for (let i = 0; i < 10_000; i++) {
    const page = await readItemsPage({ path, offset, line, limit, ...(maxItemBytes ? { maxItemBytes } : {}) });
    pages.push(page);
    if (page.done) return pages;
    offset = page.nextOffset;
    line = page.nextLine;
  }
  throw new Error('source never ended');
}

const doc = (i: number, bytes: number) => JSON.stringify({ id: `doc-${i}`, text: 'x'.repeat(bytes) });

describe('source pages have a byte budget', () => {
  it('250 documents of 13.7 KB come in pages under the budget, every item once', async () => {
    const path = file(
      'docs.jsonl',
      Array.from({ length: 250 }, (_, i) => doc(i, 13_700)),
    );
    const pages = await readAll(path);
    expect(pages.length).toBeGreaterThan(1);
    for (const p of pages) expect(Buffer.byteLength(JSON.stringify(p))).toBeLessThan(PAGE_BYTES + 20_000);
    const ids = pages.flatMap((p) => p.items.map((i) => i.id));
    expect(ids).toEqual(Array.from({ length: 250 }, (_, i) => `doc-${i}`));
    expect(pages.at(-1)!.nextLine).toBe(251);
  });

  it('one 5 MB item among small ones is read whole, alone in its page (a claim check carries it)', async () => {
    const lines = [doc(0, 10), doc(1, 10), doc(2, 5 * 1024 * 1024), doc(3, 10), doc(4, 10), doc(5, 10)];
    const pages = await readAll(file('big-ok.jsonl', lines));
    expect(ITEM_BYTES).toBeGreaterThan(5 * 1024 * 1024);
    expect(pages.map((p) => p.items.map((i) => i.id))).toEqual([['doc-0', 'doc-1'], ['doc-2'], ['doc-3', 'doc-4', 'doc-5']]);
    expect(String(pages[1]!.items[0]!['text'])).toHaveLength(5 * 1024 * 1024);
  });

  it('an item over STEADFAST_MAX_ITEM_BYTES becomes an invalid stub naming its size; the others are read', async () => {
    const limit = 256 * 1024;
    const lines = [doc(0, 10), doc(1, 10), doc(2, 5 * 1024 * 1024), doc(3, 10), doc(4, 10), doc(5, 10)];
    const path = file('big.jsonl', lines);
    const pages = await readAll(path, 200, limit);
    for (const p of pages) expect(Buffer.byteLength(JSON.stringify(p))).toBeLessThan(PAGE_BYTES);
    const items = pages.flatMap((p) => p.items);
    expect(items.map((i) => i.id)).toEqual(['doc-0', 'doc-1', 'doc-2', 'doc-3', 'doc-4', 'doc-5']);
    const big = items[2]!;
    expect(big[INVALID_LINE_FIELD]).toBe(
      `line 3: item is 5.0 MB, over the ${limit / 1024} KB limit (STEADFAST_MAX_ITEM_BYTES); pass large texts by reference (a path or URL field) or raise the limit`,
    );
    expect(items.filter((i) => INVALID_LINE_FIELD in i)).toHaveLength(1);
  });

  it('an oversize item whose id is not its first field is named by its line', async () => {
    const path = file('big2.jsonl', [JSON.stringify({ text: 'y'.repeat(300_000), id: 'late' })]);
    const [page] = await readAll(path, 200, 256 * 1024);
    expect(page!.items).toEqual([{ id: 'line-1', [INVALID_LINE_FIELD]: expect.stringContaining('line 1: item is 293 KB') as unknown }]);
  });

  it('a last line without a newline that does not fit the page is read by the next page', async () => {
    const path = join(dir, 'tail.jsonl');
    writeFileSync(path, [doc(0, 200_000), doc(1, 200_000), doc(2, 200_000)].join('\n'));
    const pages = await readAll(path);
    expect(pages.flatMap((p) => p.items.map((i) => i.id))).toEqual(['doc-0', 'doc-1', 'doc-2']);
    expect(pages.every((p) => INVALID_LINE_FIELD in (p.items[0] ?? {}) === false)).toBe(true);
  });
});

describe('item ids are bounded at the boundary', () => {
  it('an id longer than the limit is refused with a clear message', () => {
    const r = Item.safeParse({ id: 'a'.repeat(MAX_ITEM_ID_CHARS + 1) });
    expect(r.success).toBe(false);
    expect(r.error!.issues[0]!.message).toMatch(/item id is longer than 512 characters/);
    expect(Item.safeParse({ id: 'a'.repeat(MAX_ITEM_ID_CHARS) }).success).toBe(true);
  });

  it('a source line with a 1,000-character id becomes an invalid item naming the line', async () => {
    const path = file('longid.jsonl', [JSON.stringify({ id: 'z'.repeat(1000) }), JSON.stringify({ id: 'ok' })]);
    const [page] = await readAll(path);
    expect(page!.items[0]).toEqual({ id: 'line-1', [INVALID_LINE_FIELD]: expect.stringMatching(/^line 1: id: item id is longer than 512 characters/) as unknown });
    expect(page!.items[1]).toEqual({ id: 'ok' });
  });
});
