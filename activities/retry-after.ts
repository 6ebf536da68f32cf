/**
 * Reading a provider's "wait this long" headers into one delay in milliseconds.
 *
 * Precedence follows openai-node's own retry logic, extended with the
 * rate-limit reset headers both vendors send on 429s:
 * 1. `retry-after-ms` (milliseconds, OpenAI),
 * 2. `retry-after` (seconds, or an HTTP date),
 * 3. `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-reset` (RFC 3339 instants),
 * 4. `x-ratelimit-reset-{requests,tokens}` (OpenAI durations such as `6m0s`, `1s`, `20ms`).
 * For 3 and 4 the limit that is exhausted (`remaining` = 0) wins; otherwise the longest wait.
 */

/** Something that can return a header by (case-insensitive) name: `Headers` or a plain record. */
export type HeaderSource = { get(name: string): string | null } | Record<string, string | string[] | undefined>;

/** Returns one header value, whatever the container. */
export function headerValue(headers: HeaderSource | null | undefined, name: string): string | undefined {
  if (!headers) return undefined;
  if (typeof (headers as { get?: unknown }).get === 'function') {
    const v = (headers as { get(n: string): string | null }).get(name);
    return v ?? undefined;
  }
  const rec = headers as Record<string, string | string[] | undefined>;
  const key = Object.keys(rec).find((k) => k.toLowerCase() === name);
  const v = key === undefined ? undefined : rec[key];
  return Array.isArray(v) ? v[0] : v;
}

const OPENAI_DURATION = /^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+(?:\.\d+)?)ms)?$/;

/** Parses OpenAI's reset durations: `6m0s`, `1s`, `20ms`, `1h2m3.5s`, `0.5s`. */
export function parseOpenAIDuration(value: string): number | undefined {
  const v = value.trim();
  if (v === '') return undefined;
  const m = OPENAI_DURATION.exec(v);
  if (!m || m.slice(1).every((g) => g === undefined)) return undefined;
  const [h, min, s, ms] = m.slice(1).map((g) => (g === undefined ? 0 : Number(g))) as [number, number, number, number];
  return Math.round(h * 3_600_000 + min * 60_000 + s * 1_000 + ms);
}

/** `retry-after`: delta-seconds (possibly fractional) or an HTTP date. */
export function parseRetryAfter(value: string, now: number): number | undefined {
  const v = value.trim();
  if (/^\d+(?:\.\d+)?$/.test(v)) return Math.round(Number(v) * 1_000);
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

const ANTHROPIC_LIMITS = ['requests', 'tokens', 'input-tokens', 'output-tokens'] as const;
const OPENAI_LIMITS = ['requests', 'tokens'] as const;

/**
 * The delay a provider asked for, in ms, or `undefined` when it gave none.
 * Not capped here: the caller caps it, so tests can see the raw value.
 *
 * @param now epoch ms used for date headers (injected so tests are exact)
 */
export function retryDelayFromHeaders(headers: HeaderSource | null | undefined, now: number): number | undefined {
  if (!headers) return undefined;
  const ms = headerValue(headers, 'retry-after-ms');
  if (ms !== undefined && /^\d+(?:\.\d+)?$/.test(ms.trim())) return Math.round(Number(ms));
  const ra = headerValue(headers, 'retry-after');
  if (ra !== undefined) {
    const d = parseRetryAfter(ra, now);
    if (d !== undefined) return d;
  }
  const anthropic = pickReset(
    ANTHROPIC_LIMITS.map((l) => ({
      remaining: headerValue(headers, `anthropic-ratelimit-${l}-remaining`),
      delay: dateDelay(headerValue(headers, `anthropic-ratelimit-${l}-reset`), now),
    })),
  );
  if (anthropic !== undefined) return anthropic;
  return pickReset(
    OPENAI_LIMITS.map((l) => {
      const reset = headerValue(headers, `x-ratelimit-reset-${l}`);
      return { remaining: headerValue(headers, `x-ratelimit-remaining-${l}`), delay: reset === undefined ? undefined : parseOpenAIDuration(reset) };
    }),
  );
}

function dateDelay(value: string | undefined, now: number): number | undefined {
  if (value === undefined) return undefined;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

function pickReset(limits: { remaining: string | undefined; delay: number | undefined }[]): number | undefined {
  const known = limits.filter((l): l is { remaining: string | undefined; delay: number } => l.delay !== undefined);
  if (known.length === 0) return undefined;
  const exhausted = known.filter((l) => l.remaining !== undefined && Number(l.remaining) <= 0);
  const pool = exhausted.length > 0 ? exhausted : known;
  return Math.max(...pool.map((l) => l.delay));
}
