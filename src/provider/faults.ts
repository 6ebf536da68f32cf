/**
 * Fault profiles and the seeded per-request fault decision.
 *
 * Seed rule: a request's identity is a hash of (model, messages, schema); its
 * attempt number is how often this server saw that identity before. The transient
 * fault of an attempt is `unitHash(seed, identity, attempt)` mapped through the
 * cumulative rates, so the same seed replays the same run whatever the timing.
 * Permanent faults hash (seed, identity) only: a doomed item stays doomed.
 */
import { z } from 'zod';
import { unitHash } from './hash.ts';

/** Every fault the provider can inject. */
export const FAULT_KINDS = [
  'rate_limit', // 429 with retry-after and rate-limit headers
  'server_error', // 500
  'unavailable', // 503 on both APIs
  'overloaded', // 529 overloaded_error (Anthropic), 503 (OpenAI)
  'hang', // no answer until hangMs, or until the client gives up
  'reset', // the TCP connection is destroyed
  'bad_json', // 200 whose content is not JSON
  'schema_violation', // 200 whose JSON breaks the schema
  'refusal', // 200 with a refusal
  'truncated', // 200 cut short: finish_reason length / stop_reason max_tokens
  'auth', // 401 (permanent)
  'insufficient_quota', // OpenAI 429 insufficient_quota, Anthropic 400 credit balance (permanent)
  'context_length', // the context-length 400, as if the prompt were too long (permanent)
] as const;

export type FaultKind = (typeof FAULT_KINDS)[number];

/** Faults that a retry of the same request cannot clear. */
export const PERMANENT_FAULTS: readonly FaultKind[] = ['auth', 'insufficient_quota', 'context_length'];

/** One fault in a profile: injected on `rate` (0..1) of the eligible requests. */
export interface FaultSpec {
  kind: FaultKind;
  rate: number;
  /** Only these models get the fault. @default all models */
  models?: string[];
  /** For `rate_limit`: the advertised wait. @default the profile's retryAfterMs */
  retryAfterMs?: number;
}

/** A window during which a model answers 503/529 (or `kind`) to every request. */
export interface Outage {
  model: string;
  /** Start, in ms after the profile became active (or after `startAt`). @default 0 */
  fromMs?: number;
  /** End, in ms after the same origin. @default never */
  toMs?: number;
  /** Absolute origin (ISO 8601 or epoch ms) instead of the profile activation time. */
  startAt?: string | number;
  /** @default 'overloaded' */
  kind?: 'overloaded' | 'unavailable' | 'server_error' | 'hang' | 'reset';
}

/** A real token bucket per model: requests and (estimated) tokens per minute. */
export interface RateLimitConfig {
  rpm: number;
  tpm: number;
  /** Bucket capacity in seconds of refill, i.e. the allowed burst. @default 60 */
  burstSeconds?: number;
  /** Only these models are limited. @default all models */
  models?: string[];
}

/** How provider batches behave: their processing time and the batch-level faults. */
export interface BatchFaults {
  /** How long a batch stays in progress before it ends, in ms of the provider's clock. @default 200 */
  latencyMs?: number;
  /** Share (0..1) of batches that expire instead of completing, decided per (seed, batch input). @default 0 */
  expireRate?: number;
  /** Share (0..1) of an expiring batch's requests answered before it expired; the rest are expired. @default 0.5 */
  expireAnswered?: number;
  /** The first N file uploads (`POST /v1/files`) after the profile became active answer 500. @default 0 */
  fileUploadErrors?: number;
  /**
   * The first N batch creations (`POST /v1/batches`, `POST /v1/messages/batches`) after the
   * profile became active answer 500 (OpenAI) or 529 overloaded (Anthropic) and create nothing. @default 0
   */
  createErrors?: number;
  /**
   * The first N batch creations (after any `createErrors`) are accepted (the batch exists and
   * runs) but the connection is dropped before the answer: the client cannot know it was
   * created, as when a worker dies right after submitting. @default 0
   */
  createLostReplies?: number;
  /** Most requests in one batch. @default 50000 (OpenAI), 100000 (Anthropic) */
  maxRequests?: number;
  /** Largest batch input in bytes: the uploaded file (OpenAI), the create body (Anthropic). @default 200 MB (OpenAI), 256 MB (Anthropic) */
  maxBytes?: number;
}

/** A fault profile, named (see `profiles.ts`) or given as JSON. */
export interface FaultProfile {
  name: string;
  faults?: FaultSpec[];
  outages?: Outage[];
  rateLimit?: RateLimitConfig;
  /** How long a `hang` holds the socket before answering normally. @default 120000 */
  hangMs?: number;
  /** Transient faults repeat on every attempt of the same request. @default false */
  sticky?: boolean;
  /** Attempts (0-based) at or beyond this number never get a transient fault. @default 2 */
  maxFaultsPerRequest?: number;
  /** Default wait advertised by injected 429s. @default 1000 */
  retryAfterMs?: number;
  /** Provider batches: processing time and batch-level faults. */
  batch?: BatchFaults;
  /** A provider that serves at most this many chat requests at once and sheds the rest at once. */
  capacity?: CapacityConfig;
}

/** Load shedding past a concurrency: the requests beyond it are answered 429 (or 503/529) without waiting. */
export interface CapacityConfig {
  maxConcurrent: number;
  /** @default 'rate_limit' */
  kind?: 'rate_limit' | 'overloaded';
  /** The wait a shed 429 advertises. @default 1000 (as `capacity:...` builds it; 200 in a JSON profile) */
  retryAfterMs?: number;
}

const Kind = z.enum(FAULT_KINDS);
const NonNeg = z.number().finite().nonnegative();

/** Validates a JSON profile; errors name the field. */
export const FaultProfileSchema = z
  .object({
    name: z.string().min(1).default('custom'),
    faults: z.array(z.object({ kind: Kind, rate: z.number().min(0).max(1), models: z.array(z.string()).optional(), retryAfterMs: NonNeg.optional() }).strict()).optional(),
    outages: z
      .array(
        z
          .object({
            model: z.string().min(1),
            fromMs: NonNeg.optional(),
            toMs: NonNeg.optional(),
            startAt: z.union([z.string().refine((s) => !Number.isNaN(Date.parse(s)), 'an ISO 8601 time'), NonNeg]).optional(),
            kind: z.enum(['overloaded', 'unavailable', 'server_error', 'hang', 'reset']).optional(),
          })
          .strict(),
      )
      .optional(),
    rateLimit: z
      .object({ rpm: z.number().positive(), tpm: z.number().positive(), burstSeconds: z.number().positive().optional(), models: z.array(z.string()).optional() })
      .strict()
      .optional(),
    capacity: z
      .object({ maxConcurrent: z.number().int().positive(), kind: z.enum(['rate_limit', 'overloaded']).optional(), retryAfterMs: NonNeg.optional() })
      .strict()
      .optional(),
    hangMs: NonNeg.optional(),
    sticky: z.boolean().optional(),
    maxFaultsPerRequest: z.number().int().nonnegative().optional(),
    retryAfterMs: NonNeg.optional(),
    batch: z
      .object({
        latencyMs: NonNeg.optional(),
        expireRate: z.number().min(0).max(1).optional(),
        expireAnswered: z.number().min(0).max(1).optional(),
        fileUploadErrors: z.number().int().nonnegative().optional(),
        createErrors: z.number().int().nonnegative().optional(),
        createLostReplies: z.number().int().nonnegative().optional(),
        maxRequests: z.number().int().positive().optional(),
        maxBytes: z.number().int().positive().optional(),
      })
      .strict()
      .optional(),
  })
  .strict()
  .refine((p) => (p.faults ?? []).reduce((a, f) => a + f.rate, 0) <= 1 + 1e-9, { message: 'fault rates add up to more than 1', path: ['faults'] });

// Compile-time check that the schema's output is a FaultProfile.
const _assignable: (p: z.output<typeof FaultProfileSchema>) => FaultProfile = (p) => p;

/** Parses and validates a profile object; throws an Error naming the bad field. */
export function parseProfile(input: unknown): FaultProfile {
  const r = FaultProfileSchema.safeParse(input);
  if (!r.success) {
    const msg = r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new Error(`invalid fault profile: ${msg}`);
  }
  return _assignable(r.data);
}

/** What the decision needs to know about one request. */
export interface FaultQuery {
  seed: number;
  identity: string;
  attempt: number;
  model: string;
}

function applies(f: FaultSpec, model: string): boolean {
  return !f.models || f.models.includes(model);
}

function pickByRate(faults: readonly FaultSpec[], u: number): FaultSpec | undefined {
  let acc = 0;
  for (const f of faults) {
    acc += f.rate;
    if (u < acc) return f;
  }
  return undefined;
}

/**
 * The profile's fault for one request, or undefined. Permanent faults are
 * decided per identity; transient ones per (identity, attempt), and not at all
 * from attempt `maxFaultsPerRequest` on unless the profile is sticky.
 */
export function decideFault(profile: FaultProfile, q: FaultQuery): FaultSpec | undefined {
  const eligible = (profile.faults ?? []).filter((f) => f.rate > 0 && applies(f, q.model));
  const permanent = eligible.filter((f) => PERMANENT_FAULTS.includes(f.kind));
  const hit = pickByRate(permanent, unitHash('permanent', q.seed, q.identity));
  if (hit) return hit;
  const sticky = profile.sticky ?? false;
  if (!sticky && q.attempt >= (profile.maxFaultsPerRequest ?? 2)) return undefined;
  const transient = eligible.filter((f) => !PERMANENT_FAULTS.includes(f.kind));
  return pickByRate(transient, unitHash('transient', q.seed, q.identity, sticky ? 0 : q.attempt));
}

/** The outage that covers `model` at `now` (epoch ms), if any. */
export function activeOutage(profile: FaultProfile, model: string, now: number, activatedAt: number): Outage | undefined {
  return (profile.outages ?? []).find((o) => {
    if (o.model !== model) return false;
    const origin = o.startAt === undefined ? activatedAt : typeof o.startAt === 'number' ? o.startAt : Date.parse(o.startAt);
    const t = now - origin;
    return t >= (o.fromMs ?? 0) && t < (o.toMs ?? Number.POSITIVE_INFINITY);
  });
}

/**
 * A forced fault list from the `x-steadfast-fault` header or a `[[fault:...]]`
 * directive in the last user message: comma-separated kinds (or `none`), one per
 * attempt; beyond the list the last entry repeats. Returns an error text for an
 * unknown kind so a typo fails loudly.
 */
export function forcedFault(spec: string, attempt: number): FaultKind | 'none' | { error: string } {
  const list = spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const k of list) {
    if (k !== 'none' && !(FAULT_KINDS as readonly string[]).includes(k)) {
      return { error: `unknown fault kind '${k}'; expected one of none, ${FAULT_KINDS.join(', ')}` };
    }
  }
  return (list[Math.min(attempt, list.length - 1)] ?? 'none') as FaultKind | 'none';
}

/** Matches a fault directive in a prompt, e.g. `[[fault:rate_limit,none]]`. */
export const FAULT_DIRECTIVE_RE = /\[\[fault:([a-z_,\s]+)\]\]/;
