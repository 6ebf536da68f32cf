/** The workflow bundle cache is keyed by content: any source change builds a new bundle. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bundleKey } from '../../src/worker/bundle-cache.ts';

describe('bundleKey', () => {
  const root = mkdtempSync(join(tmpdir(), 'steadfast-bundle-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('changes with any source, lockfile or nested file, and only then', () => {
    for (const d of ['workflows', 'src/provider', 'activities']) mkdirSync(join(root, d), { recursive: true });
    writeFileSync(join(root, 'workflows/index.ts'), 'export {};\n');
    writeFileSync(join(root, 'src/provider/x.ts'), 'export const x = 1;\n');
    writeFileSync(join(root, 'activities/a.ts'), 'export const a = 1;\n');
    writeFileSync(join(root, 'package-lock.json'), '{}');
    const k1 = bundleKey(root);
    expect(bundleKey(root)).toBe(k1);
    writeFileSync(join(root, 'src/provider/x.ts'), 'export const x = 2;\n');
    const k2 = bundleKey(root);
    expect(k2).not.toBe(k1);
    writeFileSync(join(root, 'package-lock.json'), '{"v":2}');
    const k3 = bundleKey(root);
    expect(k3).not.toBe(k2);
    writeFileSync(join(root, 'README.md'), 'not a source');
    expect(bundleKey(root)).toBe(k3);
  });
});
