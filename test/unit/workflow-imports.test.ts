/**
 * Every workflow evaluates its imports afresh (the SDK gives each one its own
 * module cache), so what the workflow bundle imports statically is paid for on
 * every item. Building the spec's zod schemas cost about 8 ms of CPU per item;
 * the workflows load zod-backed modules lazily (workflows/lazy.ts). This guard
 * fails when a static import brings zod back.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
// Value imports and re-exports; `import type` and `export type` are erased and cost nothing.
const STATIC = /^\s*(?:import|export)\s+(?!type\b)(?:[^'";]*?\sfrom\s+)?['"]([^'"]+)['"]/gm;

/** Files (relative to the repo) and packages reached from `entry` by static imports. */
function staticGraph(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const visit = (abs: string): void => {
    const rel = relative(ROOT, abs);
    if (files.has(rel)) return;
    files.add(rel);
    for (const m of readFileSync(abs, 'utf8').matchAll(STATIC)) {
      const spec = m[1]!;
      if (spec.startsWith('.')) visit(join(dirname(abs), spec));
      else packages.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
    }
  };
  visit(join(ROOT, entry));
  return { files, packages };
}

describe('workflow bundle imports', () => {
  it('reaches no zod from the workflows entry point', () => {
    const g = staticGraph('workflows/index.ts');
    expect(g.files).toContain('workflows/item.ts');
    expect(g.files).toContain('workflows/batch.ts');
    expect(g.files).toContain('workflows/lazy.ts');
    expect(g.packages).toContain('@temporalio/workflow');
    expect(g.packages).not.toContain('zod');
    expect(g.files).not.toContain('src/shared/spec.ts');
    expect(g.files).not.toContain('src/shared/validate.ts');
  });

  it('sees a static zod import when there is one (the guard can fail)', () => {
    const g = staticGraph('src/shared/spec.ts');
    expect(g.packages).toContain('zod');
  });
});
