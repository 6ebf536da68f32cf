/**
 * The tree says where code runs. Each folder may import only the folders below it
 * (eslint.config.js, `LAYERS`); this test reads every import in the tree, so a
 * cycle between folders or a file outside the sandbox-guarded folders that the
 * workflow bundle reaches fails here even if the lint config were loosened.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
const DIRS = ['src', 'activities', 'workflows'];
// Every import or re-export, value or type, static or dynamic.
const IMPORT = /(?:^\s*(?:import|export)\s+(type\s+)?(?:[^'";]*?\sfrom\s+)?|import\(\s*(?:\/\*[^*]*\*\/\s*)?)['"](\.[^'"]+)['"]/gm;

/** The folder (layer) a repository path belongs to. */
function folderOf(path: string): string {
  const parts = path.split('/');
  return parts[0] === 'src' ? `src/${parts[1]}` : parts[0]!;
}

interface Edge {
  from: string;
  to: string;
  typeOnly: boolean;
}

function edges(): Edge[] {
  const out: Edge[] = [];
  for (const d of DIRS) {
    for (const e of readdirSync(join(ROOT, d), { withFileTypes: true, recursive: true })) {
      if (!e.isFile() || !e.name.endsWith('.ts')) continue;
      const abs = join(e.parentPath, e.name);
      for (const m of readFileSync(abs, 'utf8').matchAll(IMPORT)) {
        out.push({ from: relative(ROOT, abs), to: relative(ROOT, join(dirname(abs), m[2]!)), typeOnly: Boolean(m[1]) });
      }
    }
  }
  return out;
}

/** Which folders each folder may import at run time (types may also come from `types`; the CLI and the console may read the store). */
const ALLOWED: Record<string, { values: string[]; types?: string[] }> = {
  'src/shared': { values: [] },
  workflows: { values: ['src/shared'], types: ['activities'] },
  'src/common': { values: ['src/shared'] },
  activities: { values: ['src/shared', 'src/common'] },
  'src/worker': { values: ['src/shared', 'src/common', 'activities'], types: ['workflows'] },
  'src/client': { values: ['src/shared', 'src/common', 'src/console'], types: ['workflows'] },
  'src/console': { values: ['src/shared', 'src/common'] },
  'src/provider': { values: [] },
  'src/dev': { values: ['src/shared', 'src/common', 'activities', 'src/worker', 'src/client', 'src/console', 'src/provider'], types: ['workflows'] },
};

describe('layering', () => {
  const all = edges();

  it('has every file in a known folder and every edge allowed', () => {
    expect(all.length).toBeGreaterThan(100);
    const bad: string[] = [];
    for (const e of all) {
      const [a, b] = [folderOf(e.from), folderOf(e.to)];
      expect(Object.keys(ALLOWED), `${e.from} is in a known folder`).toContain(a);
      if (a === b) continue;
      const rule = ALLOWED[a]!;
      const store = (a === 'src/client' || a === 'src/console') && /^activities\/store[\w-]*\.ts$/.test(e.to);
      const ok = store || rule.values.includes(b) || (e.typeOnly && (rule.types ?? []).includes(b));
      if (!ok) bad.push(`${e.from} -> ${e.to}${e.typeOnly ? ' (type)' : ''}`);
    }
    expect(bad).toEqual([]);
  });

  it('has no cycle between folders', () => {
    const graph = new Map<string, Set<string>>();
    for (const e of all) {
      const [a, b] = [folderOf(e.from), folderOf(e.to)];
      if (a !== b) graph.set(a, (graph.get(a) ?? new Set()).add(b));
    }
    const state = new Map<string, 'visiting' | 'done'>();
    const cycle: string[] = [];
    const visit = (n: string, path: string[]): void => {
      if (state.get(n) === 'done') return;
      if (state.get(n) === 'visiting') {
        cycle.push([...path, n].join(' -> '));
        return;
      }
      state.set(n, 'visiting');
      for (const m of graph.get(n) ?? []) visit(m, [...path, n]);
      state.set(n, 'done');
    };
    for (const n of graph.keys()) visit(n, []);
    expect(cycle).toEqual([]);
  });

  it('keeps every file the workflow bundle reaches in a sandbox-guarded folder', () => {
    const reached = new Set<string>();
    const visit = (file: string): void => {
      if (reached.has(file)) return;
      reached.add(file);
      for (const e of all) if (e.from === file && !e.typeOnly) visit(e.to);
    };
    visit('workflows/index.ts');
    expect(reached).toContain('src/shared/spec.ts');
    for (const f of reached) expect(['workflows', 'src/shared'], f).toContain(folderOf(f));
  });
});

describe('the lint guards (they can fail)', () => {
  const eslint = new ESLint({ cwd: ROOT });
  const lint = async (file: string, extra: string): Promise<string[]> => {
    const [r] = await eslint.lintText(`${readFileSync(join(ROOT, file), 'utf8')}\n${extra}\n`, { filePath: join(ROOT, file) });
    return r!.messages.map((m) => `${m.ruleId}: ${m.message}`);
  };

  it('rejects a Node built-in in a shared file, from builtinModules (not a hand list)', async () => {
    const messages = await lint('src/shared/tiers.ts', "import { parse } from 'node:querystring';\nimport 'worker_threads';\nexport const _q = parse;");
    expect(messages.filter((m) => m.includes('deterministic workflow sandbox'))).toHaveLength(2);
  });

  it('rejects an upward import between folders', async () => {
    const messages = await lint('activities/notify.ts', "import '../src/worker/health.ts';");
    expect(messages.join('\n')).toMatch(/activities may not import worker\//);
  });

  it('rejects a value import of activities in a workflow, allows a type import', async () => {
    expect((await lint('workflows/pacer.ts', "import type { Activities as _A } from '../activities/index.ts';")).filter((m) => m.startsWith('no-restricted-imports'))).toEqual([]);
    expect((await lint('workflows/pacer.ts', "import { openStore } from '../activities/index.ts';\nexport const _o = openStore;")).join('\n')).toMatch(
      /may import only types from activities\//,
    );
  });

  it('flags a floating promise (type-aware lint)', async () => {
    const messages = await lint('src/worker/health.ts', 'async function _later(): Promise<void> {}\n_later();');
    expect(messages.join('\n')).toContain('no-floating-promises');
  });
});
