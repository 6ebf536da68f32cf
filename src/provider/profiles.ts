/**
 * Built-in fault profiles, and the parser for profile strings.
 *
 * A profile string is a built-in name with optional parameters
 * (`outage:model=gpt-4o,toMs=30000`, `ratelimit:rpm=60,tpm=20000`,
 * `flaky:scale=2,hangMs=5000`) or a JSON profile (`{"name":"custom",...}`).
 */
import { parseProfile } from './faults.ts';
import type { FaultProfile } from './faults.ts';

type Params = Record<string, string>;

function numParam(params: Params, key: string, fallback: number): number {
  const raw = params[key];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) throw new Error(`profile parameter ${key}=${raw}: expected a non-negative number`);
  return n;
}

function flaky(p: Params): FaultProfile {
  const s = numParam(p, 'scale', 1);
  return {
    name: 'flaky',
    faults: [
      { kind: 'hang', rate: 0.07 * s },
      { kind: 'rate_limit', rate: 0.03 * s },
      { kind: 'overloaded', rate: 0.015 * s },
      { kind: 'bad_json', rate: 0.015 * s },
      { kind: 'schema_violation', rate: 0.015 * s },
    ],
  };
}

function chaos(p: Params): FaultProfile {
  const s = numParam(p, 'scale', 1);
  const kinds = ['hang', 'reset', 'rate_limit', 'server_error', 'unavailable', 'overloaded', 'bad_json', 'schema_violation', 'refusal', 'truncated'] as const;
  return { name: 'chaos', faults: kinds.map((kind) => ({ kind, rate: 0.03 * s })) };
}

function outage(p: Params): FaultProfile {
  return {
    name: 'outage',
    outages: [{ model: p['model'] ?? 'gpt-4o-mini', fromMs: numParam(p, 'fromMs', 0), toMs: numParam(p, 'toMs', 60_000) }],
  };
}

function ratelimit(p: Params): FaultProfile {
  return {
    name: 'ratelimit',
    rateLimit: {
      rpm: numParam(p, 'rpm', 600),
      tpm: numParam(p, 'tpm', 200_000),
      burstSeconds: numParam(p, 'burstSeconds', 60),
      ...(p['model'] ? { models: [p['model']] } : {}),
    },
  };
}

function capacity(p: Params): FaultProfile {
  const kind = p['as'] ?? 'rate_limit';
  if (kind !== 'rate_limit' && kind !== 'overloaded') throw new Error(`profile 'capacity': as=${kind}; expected rate_limit or overloaded`);
  return { name: 'capacity', capacity: { maxConcurrent: Math.floor(numParam(p, 'concurrent', 10)), kind, retryAfterMs: numParam(p, 'retryAfterMs', 1_000) } };
}

/**
 * The built-in profiles: `none`; `flaky` (7% hangs, 3% rate limits, 1.5% overloaded,
 * 3% bad output); `chaos` (3% of each transient kind); `outage` (`gpt-4o-mini` down
 * for 60 s from activation); `ratelimit` (token bucket, 600 rpm and 200000 tpm);
 * `capacity` (at most `concurrent` requests at once, default 10; the rest are shed
 * with a 429, or `as=overloaded` a 503/529).
 */
export const BUILTIN_PROFILES: Record<string, (params: Params) => FaultProfile> = {
  none: () => ({ name: 'none' }),
  flaky,
  chaos,
  outage,
  ratelimit,
  capacity,
};

const PARAM_KEYS: Record<string, readonly string[]> = {
  none: [],
  flaky: ['scale'],
  chaos: ['scale'],
  outage: ['model', 'fromMs', 'toMs'],
  ratelimit: ['rpm', 'tpm', 'burstSeconds', 'model'],
  capacity: ['concurrent', 'as'],
};
const COMMON_KEYS = [
  'hangMs',
  'sticky',
  'maxFaultsPerRequest',
  'retryAfterMs',
  'batchLatencyMs',
  'batchExpireRate',
  'batchExpireAnswered',
  'fileUploadErrors',
  'batchCreateErrors',
  'batchCreateLostReplies',
];

function parseNamed(spec: string): FaultProfile {
  const colon = spec.indexOf(':');
  const name = (colon < 0 ? spec : spec.slice(0, colon)).trim();
  const build = BUILTIN_PROFILES[name];
  if (!build) throw new Error(`unknown profile '${name}'; expected one of ${Object.keys(BUILTIN_PROFILES).join(', ')} or a JSON profile`);
  const params: Params = {};
  for (const pair of (colon < 0 ? '' : spec.slice(colon + 1)).split(',').filter((s) => s.trim())) {
    const [k, v] = pair.split('=').map((s) => s.trim());
    if (!k || v === undefined) throw new Error(`profile parameter '${pair}': expected key=value`);
    if (!(PARAM_KEYS[name] ?? []).includes(k) && !COMMON_KEYS.includes(k)) {
      throw new Error(`profile '${name}' has no parameter '${k}'; allowed: ${[...(PARAM_KEYS[name] ?? []), ...COMMON_KEYS].join(', ')}`);
    }
    params[k] = v;
  }
  const profile = build(params);
  if (params['hangMs'] !== undefined) profile.hangMs = numParam(params, 'hangMs', 0);
  if (params['retryAfterMs'] !== undefined) profile.retryAfterMs = numParam(params, 'retryAfterMs', 0);
  if (params['maxFaultsPerRequest'] !== undefined) profile.maxFaultsPerRequest = Math.floor(numParam(params, 'maxFaultsPerRequest', 2));
  if (params['sticky'] !== undefined) profile.sticky = params['sticky'] === 'true' || params['sticky'] === '1';
  const batch = {
    ...(params['batchLatencyMs'] !== undefined ? { latencyMs: numParam(params, 'batchLatencyMs', 0) } : {}),
    ...(params['batchExpireRate'] !== undefined ? { expireRate: numParam(params, 'batchExpireRate', 0) } : {}),
    ...(params['batchExpireAnswered'] !== undefined ? { expireAnswered: numParam(params, 'batchExpireAnswered', 0) } : {}),
    ...(params['fileUploadErrors'] !== undefined ? { fileUploadErrors: Math.floor(numParam(params, 'fileUploadErrors', 0)) } : {}),
    ...(params['batchCreateErrors'] !== undefined ? { createErrors: Math.floor(numParam(params, 'batchCreateErrors', 0)) } : {}),
    ...(params['batchCreateLostReplies'] !== undefined ? { createLostReplies: Math.floor(numParam(params, 'batchCreateLostReplies', 0)) } : {}),
  };
  if (Object.keys(batch).length > 0) profile.batch = { ...profile.batch, ...batch };
  return profile;
}

/**
 * Resolves a profile given by name, parameterised name, JSON text or object, and
 * validates it. Throws an Error that names the problem.
 */
export function resolveProfile(input: string | FaultProfile): FaultProfile {
  if (typeof input !== 'string') return parseProfile(input);
  const text = input.trim();
  if (text.startsWith('{')) {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      throw new Error(`profile JSON does not parse: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    return parseProfile(json);
  }
  return parseProfile(parseNamed(text || 'none'));
}
