/**
 * Sources are read only under the operator's roots, symlinks resolved first, with
 * one error for every path outside (existing or not), and URLs only from allowed hosts.
 */
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { afterAll, describe, expect, it } from 'vitest';
import { createActivities, openStore } from '../../activities/index.ts';
import type { Page } from '../../activities/source.ts';
import { loadConfig } from '../../src/common/config.ts';
import { defaultSourceRoots, resolveUnderRoots } from '../../src/common/source-roots.ts';
import { FailureType } from '../../src/shared/failures.ts';

const base = realpathSync(mkdtempSync(join(tmpdir(), 'steadfast-roots-')));
const root = join(base, 'root');
const outside = join(base, 'outside');
mkdirSync(root);
mkdirSync(outside);
writeFileSync(join(root, 'items.jsonl'), '{"id":"a","text":"hello"}\n');
writeFileSync(join(outside, 'secret.jsonl'), '{"id":"s","text":"private"}\n');
symlinkSync(join(outside, 'secret.jsonl'), join(root, 'link.jsonl'));
symlinkSync(join(outside, 'gone.jsonl'), join(root, 'dangling.jsonl'));
symlinkSync(outside, join(root, 'subdir-link'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

const store = await openStore({ dbPath: ':memory:' });
afterAll(() => store.close());
const acts = createActivities({ store, env: {}, sourceRoots: [root], sourceHosts: ['files.internal'] });
const run = (path: string) =>
  new MockActivityEnvironment({}, { logger: new DefaultLogger('ERROR') }).run(acts.readItemsPage, { path, offset: 0, limit: 10 }).then(
    (page) => ({ page: page as Page, error: null }),
    (e: unknown) => ({ page: null, error: e as ApplicationFailure }),
  );

describe('readItemsPage under source roots', () => {
  it('reads a file under a root', async () => {
    const r = await run(join(root, 'items.jsonl'));
    expect(r.page?.items).toEqual([{ id: 'a', text: 'hello' }]);
  });

  it('refuses /etc/passwd and a missing file outside the roots with the same message (no existence oracle)', async () => {
    const messages: string[] = [];
    for (const path of ['/etc/passwd', '/etc/no-such-file-here', join(outside, 'secret.jsonl'), join(outside, 'missing.jsonl')]) {
      const r = await run(path);
      expect(r.page, path).toBeNull();
      expect(r.error).toBeInstanceOf(ApplicationFailure);
      expect(r.error).toMatchObject({ type: FailureType.InvalidInput, nonRetryable: true });
      messages.push(r.error!.message.replace(path, '<path>'));
    }
    expect(new Set(messages).size).toBe(1);
    expect(messages[0]).toBe(`source <path>: not under an allowed source root (${root}); copy the file under one, or add its directory to STEADFAST_SOURCE_ROOTS on the workers`);
    expect(messages[0]).not.toMatch(/ENOENT|EACCES/);
  });

  it('resolves symlinks before checking: a link out of a root is refused like the target itself', async () => {
    for (const path of [
      join(root, 'link.jsonl'),
      join(root, 'dangling.jsonl'),
      join(root, 'subdir-link', 'secret.jsonl'),
      join(root, 'subdir-link', 'missing.jsonl'),
      join(root, '..', 'outside', 'secret.jsonl'),
    ]) {
      const r = await run(path);
      expect(r.error?.message, path).toContain('not under an allowed source root');
    }
  });

  it('tells a missing file inside a root apart (the operator allowed that directory)', async () => {
    const r = await run(join(root, 'missing.jsonl'));
    expect(r.error?.message).toBe(`cannot read items file ${join(root, 'missing.jsonl')}: ENOENT`);
  });

  it('accepts URLs only from allowed hosts', async () => {
    expect((await run('http://169.254.169.254/latest/meta-data')).error?.message).toBe(
      'source http://169.254.169.254: host 169.254.169.254 is not an allowed source host; add it to STEADFAST_SOURCE_HOSTS on the workers',
    );
    expect((await run('https://files.internal/items.jsonl')).error?.message).toContain('URLs are not supported yet');
  });
});

describe('source roots configuration', () => {
  it('defaults to data/ under the working directory and the temp dir; STEADFAST_SOURCE_ROOTS replaces them', () => {
    expect(loadConfig({}).sourceRoots).toEqual(defaultSourceRoots());
    expect(defaultSourceRoots('/srv/app')).toEqual(['/srv/app/data', tmpdir()]);
    expect(loadConfig({ STEADFAST_SOURCE_ROOTS: '/data/in:relative' }).sourceRoots).toEqual(['/data/in', join(process.cwd(), 'relative')]);
    expect(loadConfig({ STEADFAST_SOURCE_HOSTS: 'Files.Internal, s3.local:9000' }).sourceHosts).toEqual(['files.internal', 's3.local:9000']);
  });

  it('refuses a relative path outright', () => {
    expect(() => resolveUnderRoots('data/items.jsonl', [root])).toThrow('not under an allowed source root');
  });
});
