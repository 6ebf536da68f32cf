/**
 * docs/spec.md is generated from the zod schema; this fails when the file is stale or a
 * field of the schema has no description (add it to FIELDS in src/dev/spec-doc.ts, then
 * `node src/dev/spec-doc.ts > docs/spec.md`).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { FIELDS, renderSpecDoc, specFields } from '../../src/dev/spec-doc.ts';

describe('docs/spec.md', () => {
  it('describes every field of the schema, and no field that is gone', () => {
    const paths = specFields().map((f) => f.path);
    expect(paths.length).toBeGreaterThan(40);
    expect(paths.filter((p) => !(p in FIELDS))).toEqual([]);
    expect(Object.keys(FIELDS).filter((p) => !paths.includes(p))).toEqual([]);
  });

  it('is what the generator prints (regenerate: node src/dev/spec-doc.ts > docs/spec.md)', () => {
    expect(readFileSync(new URL('../../docs/spec.md', import.meta.url), 'utf8')).toBe(renderSpecDoc());
  });
});
