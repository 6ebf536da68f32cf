/**
 * Where a batch's `source` may be read from: under the operator's roots
 * (`STEADFAST_SOURCE_ROOTS`) for paths, from the allowed hosts
 * (`STEADFAST_SOURCE_HOSTS`) for URLs. The workers read whatever path a batch
 * names, so without this a batch could turn any file the worker can read
 * (`/etc/passwd`) into review items.
 *
 * A path is checked after resolving symlinks, and a path outside the roots gets
 * one error whether or not it exists: the answer must not tell which paths exist.
 */
import { lstatSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, isAbsolute, relative, resolve } from 'node:path';

/** The default roots: `data/` under the worker's working directory (where the CLI writes copies) and the OS temp dir. */
export function defaultSourceRoots(cwd: string = process.cwd()): string[] {
  return [resolve(cwd, 'data'), tmpdir()];
}

/** Parses a `:`-separated (`;` on Windows) list of directories; relative entries resolve against `cwd`. */
export function parseSourceRoots(value: string | undefined, cwd: string = process.cwd()): string[] {
  if (value === undefined || value.trim() === '') return defaultSourceRoots(cwd);
  return value
    .split(delimiter)
    .map((r) => r.trim())
    .filter(Boolean)
    .map((r) => resolve(cwd, r));
}

/** Parses a comma-separated list of host names (`host` or `host:port`), lower-cased. */
export function parseSourceHosts(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((h) => h.trim().toLowerCase())
    .filter(Boolean);
}

/** The real path of a root (roots that do not exist yet are taken as written). */
function realRoot(root: string): string {
  try {
    return realpathSync(root);
  } catch {
    return resolve(root);
  }
}

function inside(path: string, root: string): boolean {
  const rel = relative(root, path);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/** Why a source was refused; one message per kind, whatever the path's existence. */
export class SourceNotAllowedError extends Error {
  override readonly name = 'SourceNotAllowedError';
}

/**
 * The real path of `path` when it lies under one of `roots`, else a {@link SourceNotAllowedError}.
 * A missing file under a root resolves to its lexical path (the caller's open then reports ENOENT,
 * which is no secret inside the roots); a missing file or a dangling symlink elsewhere is refused
 * with the same message as an existing one.
 */
export function resolveUnderRoots(path: string, roots: readonly string[]): string {
  const refuse = (): never => {
    throw new SourceNotAllowedError(
      `source ${path}: not under an allowed source root (${roots.join(', ')}); copy the file under one, or add its directory to STEADFAST_SOURCE_ROOTS on the workers`,
    );
  };
  if (!isAbsolute(path)) refuse();
  const real = roots.map(realRoot);
  const allowed = (p: string): boolean => real.some((r) => inside(p, r)) || roots.some((r) => inside(p, resolve(r)));
  if (!allowed(resolve(path))) refuse();
  let target: string;
  try {
    target = realpathSync(path);
  } catch {
    // Missing: allowed only if it is no symlink (a dangling one may point anywhere) and its directory is really inside.
    let isLink = false;
    try {
      isLink = lstatSync(path).isSymbolicLink();
    } catch {
      // does not exist at all
    }
    let dir: string;
    try {
      dir = realpathSync(dirname(path));
    } catch {
      dir = resolve(dirname(path));
    }
    if (isLink || !real.some((r) => inside(dir, r))) refuse();
    return resolve(path);
  }
  if (!real.some((r) => inside(target, r))) refuse();
  return target;
}

/** Refuses a URL whose host (`host` or `host:port`) is not in `hosts`. */
export function checkSourceHost(url: string, hosts: readonly string[]): void {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new SourceNotAllowedError(`source ${url}: not a valid URL`);
  }
  const host = u.hostname.toLowerCase();
  if (!hosts.includes(host) && !hosts.includes(u.host.toLowerCase())) {
    throw new SourceNotAllowedError(`source ${u.origin}: host ${host} is not an allowed source host; add it to STEADFAST_SOURCE_HOSTS on the workers`);
  }
}
