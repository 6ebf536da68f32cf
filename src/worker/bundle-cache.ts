/**
 * A content-addressed cache of the workflow bundle, so a restarted worker polls
 * sooner: bundling the workflows with webpack takes about 1.8 s of the 4 s a worker
 * needs from spawn to polling on two cores (docs/benchmarks.md).
 *
 * The key hashes every TypeScript source the bundle could include (workflows/,
 * src/, activities/), the lockfile and the SDK version, so any change to the code
 * or the dependencies builds a fresh bundle: a stale bundle is never used. The
 * cache directory is STEADFAST_BUNDLE_CACHE (default `.cache/` in the project);
 * when it cannot be written (a read-only image), the worker bundles in memory.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import type { Logger } from '@temporalio/worker';
import { errorMessage } from '../shared/failures.ts';

const ROOT = resolve(import.meta.dirname, '..', '..');
const SOURCE_DIRS = ['workflows', 'src', 'activities'];

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

/** The cache key of the bundle that `workflowsPath` would produce now. */
export function bundleKey(root = ROOT): string {
  const h = createHash('sha256');
  for (const file of SOURCE_DIRS.flatMap((d) => sources(join(root, d)))) h.update(file.slice(root.length)).update('\0').update(readFileSync(file)).update('\0');
  for (const extra of ['package-lock.json', 'node_modules/@temporalio/worker/package.json']) {
    try {
      h.update(extra).update(readFileSync(join(root, extra)));
    } catch {
      h.update(`${extra}: missing`);
    }
  }
  return h.digest('hex').slice(0, 16);
}

/** Reads the bundle for the current sources from the cache, or builds and stores it; `key` names it. */
export async function cachedWorkflowBundle(
  workflowsPath: string,
  logger: Logger,
  cacheDir = process.env['STEADFAST_BUNDLE_CACHE'] ?? join(ROOT, '.cache'),
): Promise<{ code: string; key: string }> {
  const key = bundleKey();
  const file = join(cacheDir, `workflow-bundle-${key}.js`);
  try {
    const code = readFileSync(file, 'utf8');
    logger.info('workflow bundle from cache', { file });
    return { code, key };
  } catch {
    // Not cached yet.
  }
  const started = Date.now();
  const { code } = await bundleWorkflowCode({ workflowsPath, logger });
  try {
    mkdirSync(cacheDir, { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, code);
    renameSync(tmp, file); // atomic: a concurrent worker reads the old file or the whole new one
    logger.info('workflow bundle cached', { file, ms: Date.now() - started });
  } catch (err: unknown) {
    logger.warn('cannot cache the workflow bundle; bundling at every start', { cacheDir, error: errorMessage(err) });
  }
  return { code, key };
}

// `node src/worker/bundle-cache.ts` builds the cache ahead of time (the Dockerfile does, so containers start polling sooner).
if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  const quiet = { info() {}, warn: console.warn, error: console.error, debug() {}, trace() {}, log() {} } as unknown as Logger;
  const workflowsPath = join(ROOT, 'workflows', 'index.ts');
  const { key } = await cachedWorkflowBundle(workflowsPath, quiet);
  console.log(`workflow bundle ${key} cached`);
}
