import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/client/cli.ts';
import { configFrom } from '../../src/client/cli/context.ts';
import type { Io } from '../../src/client/cli/context.ts';

async function cli(...args: string[]) {
  const io = { stdout: '', stderr: '', tty: false, out: (t: string) => void (io.stdout += t), err: (t: string) => void (io.stderr += t), columns: () => 100 } satisfies Io & {
    stdout: string;
    stderr: string;
  };
  const code = await main(['node', 'steadfast', ...args], io);
  return { code, ...io };
}

const dir = mkdtempSync(join(tmpdir(), 'cli-main-'));
const file = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};
// An address where nothing listens: a command that got past validation would fail with exit 1, not 2.
const NOWHERE = ['--address', '127.0.0.1:9'];

describe('steadfast (argument handling)', () => {
  it('prints help with exit 0', async () => {
    const r = await cli('--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Usage: steadfast/);
    expect(r.stdout).toMatch(/run \[options\] <items>/);
  });

  it('exits 2 on usage errors', async () => {
    expect((await cli('frobnicate')).code).toBe(2);
    const missing = await cli('run', 'items.jsonl');
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("required option '-p, --pipeline <spec>' not specified");
    const fmt = await cli('export', 'b1', '--format', 'xml');
    expect(fmt.code).toBe(2);
    expect(fmt.stderr).toContain('Allowed choices are jsonl, csv');
    expect((await cli('review', 'approve', 'b1')).code).toBe(2);
    expect((await cli('review', 'skip', 'b1', 'i1', '--timeout', '0')).code).toBe(2);
  });

  it('validates the files before connecting: exit 2, every problem, nothing started', async () => {
    const spec = file('p.yaml', 'name: t\nprompt:\n  template: "{{text}}"\nproviders:\n  - kind: openai\n    model: m\n');
    const items = file('i.jsonl', '{"id":"1","text":"a"}\n{"id":"1","text":"b"}\n{"id":"2"}\n');
    const r = await cli(...NOWHERE, 'run', items, '--pipeline', spec, '--detach');
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.split('\n')).toEqual([
      `${items}:2: duplicate id "1" (first on line 1)`,
      `${items}:3: text: missing (the prompt template or input.required uses it)`,
      'nothing was started (2 problems)',
      '',
    ]);
  });

  it('rejects a bad --batch-id before connecting', async () => {
    const spec = file('p2.yaml', 'prompt:\n  template: "{{text}}"\nproviders:\n  - kind: openai\n    model: m\n');
    const r = await cli(...NOWHERE, 'run', file('ok.csv', 'id,text\n1,a\n'), '-p', spec, '--batch-id', 'a/b');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^--batch-id "a\/b": /);
  });

  it('exits 1 when the results store does not exist', async () => {
    const prev = process.env.STEADFAST_DB_PATH;
    process.env.STEADFAST_DB_PATH = join(dir, 'none.db');
    try {
      const r = await cli('export', 'b1');
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(`no results store at ${join(dir, 'none.db')} (STEADFAST_DB_PATH); run the export where the workers write, or set DATABASE_URL\n`);
    } finally {
      if (prev === undefined) delete process.env.STEADFAST_DB_PATH;
      else process.env.STEADFAST_DB_PATH = prev;
    }
  });

  it('lets the global flags override the environment', () => {
    const env = { TEMPORAL_ADDRESS: 'env:7233', STEADFAST_TASK_QUEUE: 'env-q' };
    expect(configFrom({}, env)).toMatchObject({ temporalAddress: 'env:7233', namespace: 'default', taskQueue: 'env-q' });
    expect(configFrom({ address: 'flag:7233', namespace: 'ns', taskQueue: 'flag-q' }, env)).toMatchObject({ temporalAddress: 'flag:7233', namespace: 'ns', taskQueue: 'flag-q' });
    expect(() => configFrom({}, { STEADFAST_METRICS_PORT: 'x' })).toThrow(/invalid environment: STEADFAST_METRICS_PORT/);
  });
});
