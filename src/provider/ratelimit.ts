/**
 * A real token-bucket rate limiter, per model, on requests and tokens per minute.
 * The clock is injected so a test can drive minutes of virtual time without sleeping.
 */

/** Options of {@link tokenBucket}. */
export interface TokenBucketOptions {
  /** Most units the bucket holds (the burst). */
  capacity: number;
  /** Units added per minute, continuously. */
  perMinute: number;
  /** Clock in milliseconds. @default Date.now */
  now?: () => number;
}

/** A continuously refilled token bucket. */
export interface TokenBucket {
  /** Takes `n` units if available now. */
  tryTake(n: number): boolean;
  /** Milliseconds until `n` units are available (0 if they are). */
  waitMs(n: number): number;
  /** Units available now, rounded down. */
  remaining(): number;
  /** Milliseconds until the bucket is full again. */
  resetMs(): number;
  readonly capacity: number;
}

/** Creates a full bucket. */
export function tokenBucket(options: TokenBucketOptions): TokenBucket {
  const { capacity, perMinute } = options;
  // `??` rather than a spread: an explicit `undefined` must still mean the default.
  const now = options.now ?? Date.now;
  const perMs = perMinute / 60_000;
  let level = capacity;
  let last = now();
  const refill = (): void => {
    const t = now();
    if (t > last) level = Math.min(capacity, level + (t - last) * perMs);
    last = Math.max(last, t);
  };
  return {
    capacity,
    tryTake(n) {
      refill();
      if (level + 1e-9 < n) return false;
      level -= n;
      return true;
    },
    waitMs(n) {
      refill();
      if (level >= n) return 0;
      // A request bigger than the bucket never fits: advertise a full refill.
      return Math.ceil((Math.min(n, capacity) - level) / perMs);
    },
    remaining() {
      refill();
      return Math.max(0, Math.floor(level + 1e-9));
    },
    resetMs() {
      refill();
      return Math.ceil((capacity - level) / perMs);
    },
  };
}

/** The state of one model's limits, as advertised in rate-limit headers. */
export interface RateInfo {
  limitRequests: number;
  remainingRequests: number;
  resetRequestsMs: number;
  limitTokens: number;
  remainingTokens: number;
  resetTokensMs: number;
}

/** Result of asking the limiter to admit one request. */
export type Admission = { ok: true; info: RateInfo } | { ok: false; info: RateInfo; limitedBy: 'requests' | 'tokens'; retryAfterMs: number; requested: number };

/** Options of {@link rateLimiter}. */
export interface RateLimiterOptions {
  rpm: number;
  tpm: number;
  /** Bucket capacity as seconds of refill. @default 60 (one minute, like the vendors' buckets) */
  burstSeconds?: number;
  /** @default Date.now */
  now?: () => number;
}

/** Per-model request and token buckets; both must admit a request, or neither is charged. */
export interface RateLimiter {
  admit(model: string, tokens: number): Admission;
}

/** Creates a limiter with one pair of buckets per model, created on first use. */
export function rateLimiter(options: RateLimiterOptions): RateLimiter {
  const { rpm, tpm } = options;
  const burstSeconds = options.burstSeconds ?? 60;
  const now = options.now ?? Date.now;
  const buckets = new Map<string, { req: TokenBucket; tok: TokenBucket }>();
  const scale = burstSeconds / 60;
  const info = (b: { req: TokenBucket; tok: TokenBucket }): RateInfo => ({
    limitRequests: rpm,
    remainingRequests: b.req.remaining(),
    resetRequestsMs: b.req.resetMs(),
    limitTokens: tpm,
    remainingTokens: b.tok.remaining(),
    resetTokensMs: b.tok.resetMs(),
  });
  return {
    admit(model, tokens) {
      let b = buckets.get(model);
      if (!b) {
        b = {
          req: tokenBucket({ capacity: Math.max(1, rpm * scale), perMinute: rpm, now }),
          tok: tokenBucket({ capacity: Math.max(1, tpm * scale), perMinute: tpm, now }),
        };
        buckets.set(model, b);
      }
      const reqWait = b.req.waitMs(1);
      // A request larger than the token bucket never fits; it is told to wait a minute, like a vendor's 'request too large'.
      const tokWait = tokens > b.tok.capacity ? Math.max(60_000, b.tok.resetMs()) : b.tok.waitMs(tokens);
      if (reqWait > 0 || tokWait > 0) {
        const limitedBy = reqWait >= tokWait ? 'requests' : 'tokens';
        return { ok: false, info: info(b), limitedBy, retryAfterMs: Math.max(reqWait, tokWait), requested: tokens };
      }
      b.req.tryTake(1);
      b.tok.tryTake(tokens);
      return { ok: true, info: info(b) };
    },
  };
}
