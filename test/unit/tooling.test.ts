/**
 * `./sf test` must pass on a checkout where a worker has run: what the worker and
 * the demo write (the workflow-bundle cache, SQLite files, logs, set-up tools) is
 * ignored by git, the linter and the formatter alike.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ESLint } from 'eslint';
import * as prettier from 'prettier';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
const GENERATED = ['.cache/workflow-bundle-0123456789abcdef.js', 'data/results.db', 'data/dev-server.log', '.tools/env.sh', 'bench-results/run.json'];

describe('generated files', () => {
  const made: string[] = [];
  afterAll(() => {
    for (const f of made) rmSync(join(ROOT, f), { force: true });
  });

  it.each(GENERATED)('%s is ignored by git, ESLint and Prettier', async (file) => {
    const abs = join(ROOT, file);
    mkdirSync(join(abs, '..'), { recursive: true });
    try {
      writeFileSync(abs, 'var  unformatted = (x) => { eval(x) }\n', { flag: 'wx' });
      made.push(file);
    } catch {
      // Already there (a real run left it): checking the path is enough.
    }
    expect(execFileSync('git', ['check-ignore', file], { cwd: ROOT, encoding: 'utf8' }).trim()).toBe(file);
    expect(await new ESLint({ cwd: ROOT }).isPathIgnored(abs)).toBe(true);
    const info = await prettier.getFileInfo(abs, { ignorePath: join(ROOT, '.prettierignore') });
    expect(info.ignored || info.inferredParser === null).toBe(true);
  });

  it('the checks would fail on such a file if it were not ignored (the test can fail)', async () => {
    const [r] = await new ESLint({ cwd: ROOT }).lintText('var  unformatted = (x) => { eval(x) }\n', { filePath: join(ROOT, 'bench/not-ignored.js') });
    expect(r!.messages.length).toBeGreaterThan(0);
    expect(await prettier.check('var  unformatted = 1\n', { parser: 'babel' })).toBe(false);
  });
});
