/**
 * Secret scrubbing for everything that leaves an activity: failure messages,
 * logs and the error context stored in the results store.
 *
 * Pure apart from reading an env object handed in (defaults to `process.env`),
 * so it is cheap to call on every error path.
 */

/** What replaces a secret. Fixed text so tests and post-mortems can grep for it. */
export const REDACTED = '[redacted]';

/** Env var names whose values are secrets. */
const SECRET_ENV_NAME = /(?:_API_KEY|_APIKEY|_TOKEN|_SECRET|_PASSWORD|^DATABASE_URL|_WEBHOOK_URL)$/i;

/**
 * Patterns of secrets that may appear without coming from our env: a provider
 * echoing a key back, an auth header in an SDK message, credentials in a URL.
 * Each keeps the label (header name, URL scheme) so the message stays readable.
 */
const SECRET_PATTERNS: ReadonlyArray<readonly [RegExp, string]> = [
  [/\bBearer\s+[A-Za-z0-9._~+/=-]{4,}/gi, 'Bearer [redacted]'],
  [/\bsk-[A-Za-z0-9_*-]{6,}/g, '[redacted]'],
  [/\b(x-api-key|api[-_]?key|authorization)(["']?\s*[:=]\s*["']?)(?!Bearer\b)[^\s"',;}]{4,}/gi, '$1$2[redacted]'],
  [/(\/\/[^/\s:@]+:)[^@\s/]+@/g, '$1[redacted]@'],
  [/https:\/\/hooks\.slack\.com\/services\/[A-Za-z0-9/_-]+/g, 'https://hooks.slack.com/services/[redacted]'],
];

import { keyEnvNames } from './endpoints.ts';

/** Values shorter than this are not treated as secrets: redacting "1" everywhere would destroy messages. */
const MIN_SECRET_LENGTH = 6;

const envSecretCache = new WeakMap<object, readonly string[]>();

/**
 * The secret values held in env vars named `*_API_KEY`, `*_TOKEN`, `*_SECRET`, ..., and in
 * every variable a tier may read as its key (STEADFAST_KEY_HOSTS), whatever its name (longest first).
 */
export function envSecrets(env: NodeJS.ProcessEnv = process.env): readonly string[] {
  // process.env is live (tests and operators change it), so only handed-in env objects are cached.
  const cacheable = env !== process.env;
  const cached = cacheable ? envSecretCache.get(env) : undefined;
  if (cached) return cached;
  const keyNames = new Set(keyEnvNames(env));
  const values = Object.entries(env)
    .filter(([name, value]) => (SECRET_ENV_NAME.test(name) || keyNames.has(name)) && typeof value === 'string' && value.length >= MIN_SECRET_LENGTH)
    .map(([, value]) => value as string)
    .sort((a, b) => b.length - a.length);
  if (cacheable) envSecretCache.set(env, values);
  return values;
}

/**
 * Removes secrets from a text: the values of secret env vars, `extra` literal
 * values (e.g. an item's secret fields), and well-known key/token patterns.
 *
 * @param extra literal secret values to redact as well
 * @param env where secret env vars are read from @default process.env
 */
export function scrubSecrets(text: string, extra: readonly string[] = [], env: NodeJS.ProcessEnv = process.env): string {
  let out = text;
  // Literal values first: a pattern pass could cut a known key in half and leave its tail.
  for (const value of [...extra].sort((a, b) => b.length - a.length).concat(envSecrets(env))) {
    if (value.length >= MIN_SECRET_LENGTH && out.includes(value)) out = out.split(value).join(REDACTED);
  }
  for (const [pattern, replacement] of SECRET_PATTERNS) out = out.replace(pattern, replacement);
  return out;
}

/** Options of {@link scrubValue}. */
export interface ScrubOptions {
  /** Object keys whose values are secret at any depth (the spec's `secretFields`). */
  fields?: readonly string[];
  /** Literal secret values. */
  values?: readonly string[];
  env?: NodeJS.ProcessEnv;
}

/**
 * Deep-copies a JSON-like value with secret fields replaced by {@link REDACTED}
 * and every string scrubbed by {@link scrubSecrets}. Also redacts `"field": "..."`
 * and `field=...` inside strings, which is how item fields leak into messages.
 */
export function scrubValue<T>(value: T, opts: ScrubOptions = {}): T {
  const fields = new Set(opts.fields ?? []);
  const fieldRe = fields.size ? new RegExp(`("?)(${[...fields].map(escapeRe).join('|')})\\1(\\s*[:=]\\s*)("[^"]*"|[^\\s,;}]+)`, 'g') : null;
  const scrubString = (s: string): string => {
    const t = scrubSecrets(s, opts.values ?? [], opts.env);
    return fieldRe ? t.replace(fieldRe, (_m, q: string, name: string, sep: string) => `${q}${name}${q}${sep}"${REDACTED}"`) : t;
  };
  const walk = (v: unknown): unknown => {
    if (typeof v === 'string') return scrubString(v);
    if (Array.isArray(v)) return v.map(walk);
    if (v !== null && typeof v === 'object') {
      const out: Record<string, unknown> = {};
      for (const [k, inner] of Object.entries(v)) out[k] = fields.has(k) ? REDACTED : walk(inner);
      return out;
    }
    return v;
  };
  return walk(value) as T;
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
