/**
 * Where a tier's calls go and which key they carry, decided on the worker.
 *
 * The spec arrives in workflow input, so whoever can start a workflow writes it:
 * it may name a `baseURL` and an `apiKeyEnv`, and neither is trusted. The worker's
 * operator sets what is allowed through the worker's environment:
 *
 * - `STEADFAST_KEY_HOSTS` (`NAME=host,host;NAME=host`) lists the env vars a tier may
 *   read as its key and the only hosts each may be sent to. Built in:
 *   `OPENAI_API_KEY=api.openai.com` and `ANTHROPIC_API_KEY=api.anthropic.com`.
 * - `STEADFAST_ALLOWED_HOSTS` (`host,*.example.com`) lists further hosts a `baseURL`
 *   may name without a key. Built in: the vendors' API hosts and loopback.
 * - `STEADFAST_SIMULATED_PROVIDER_URL` is the explicit switch to the fault-injecting
 *   provider: tiers without a `baseURL` are answered by it, and every row says so.
 *   Without it, a tier without a `baseURL` calls its vendor's API with its key, and a
 *   missing key is a non-retryable AuthFailed naming the variable.
 *
 * A spec that names anything else fails at once with a non-retryable InvalidSpec
 * naming the field. A key never travels to a host it is not listed for.
 */
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../src/shared/failures.ts';
import type { ProviderSpec } from '../src/shared/spec.ts';
import type { EndpointInfo } from '../src/shared/types.ts';

/** The vendors' API hosts, and the key each vendor's tiers read by default. */
export const VENDOR_HOSTS = { openai: 'api.openai.com', anthropic: 'api.anthropic.com' } as const;
export const DEFAULT_KEY_ENV = { openai: 'OPENAI_API_KEY', anthropic: 'ANTHROPIC_API_KEY' } as const;

/** Loopback hosts: a model server on the worker's own machine (vLLM, Ollama, LM Studio). */
export const LOOPBACK_HOSTS: readonly string[] = ['127.0.0.1', 'localhost', '::1', '[::1]'];

/** Placeholder key for endpoints that take none: no secret ever goes to them. */
export const NO_KEY = 'no-key';

/** What the worker's operator allows; see the module comment. */
export interface EndpointPolicy {
  /** Env var name -> hosts its value may be sent to (lower case; `*.suffix` wildcards). */
  keyHosts: Record<string, string[]>;
  /** Hosts a baseURL may name (besides the key hosts). */
  allowedHosts: string[];
  /** The fault-injecting provider, when the worker is switched to it. */
  simulatedUrl: string | undefined;
}

function list(text: string | undefined): string[] {
  return (text ?? '')
    .split(',')
    .map((h) => h.trim().toLowerCase())
    .filter(Boolean);
}

/** Parses `NAME=host,host;NAME=host`; throws naming the variable on a malformed entry. */
export function parseKeyHosts(text: string | undefined): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const entry of (text ?? '').split(';').map((e) => e.trim())) {
    if (!entry) continue;
    const m = /^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.+)$/.exec(entry);
    if (!m || list(m[2]).length === 0) throw new Error(`STEADFAST_KEY_HOSTS: "${entry}" is not NAME=host[,host] (e.g. OPENROUTER_API_KEY=openrouter.ai)`);
    out[m[1]!] = [...(out[m[1]!] ?? []), ...list(m[2])];
  }
  return out;
}

/** The policy from a worker's environment. */
export function endpointPolicy(env: NodeJS.ProcessEnv): EndpointPolicy {
  const keyHosts: Record<string, string[]> = { [DEFAULT_KEY_ENV.openai]: [VENDOR_HOSTS.openai], [DEFAULT_KEY_ENV.anthropic]: [VENDOR_HOSTS.anthropic] };
  for (const [name, hosts] of Object.entries(parseKeyHosts(env['STEADFAST_KEY_HOSTS']))) keyHosts[name] = [...new Set([...(keyHosts[name] ?? []), ...hosts])];
  const simulatedUrl = env['STEADFAST_SIMULATED_PROVIDER_URL'] || undefined;
  return { keyHosts, allowedHosts: list(env['STEADFAST_ALLOWED_HOSTS']), simulatedUrl };
}

/** The env var names a tier may read as its key: their values are scrubbed wherever text leaves the worker. */
export function keyEnvNames(env: NodeJS.ProcessEnv): string[] {
  try {
    return Object.keys(endpointPolicy(env).keyHosts);
  } catch {
    // A malformed list is reported by the config check; scrubbing still covers the built-in names.
    return [DEFAULT_KEY_ENV.openai, DEFAULT_KEY_ENV.anthropic];
  }
}

/** Whether `host` matches a pattern (`api.example.com` or `*.example.com`). */
export function hostMatches(host: string, pattern: string): boolean {
  const h = host.toLowerCase();
  if (pattern.startsWith('*.')) return h.endsWith(pattern.slice(1)) && h.length > pattern.length - 1;
  return h === pattern;
}

/** Where one tier's calls go. */
export interface Endpoint extends EndpointInfo {
  kind: ProviderSpec['kind'];
  /** Undefined means the vendor's default API URL. */
  baseURL: string | undefined;
  apiKey: string;
  /** The env var the key came from (never its value), for messages. */
  keyEnv: string | undefined;
}

function invalid(field: string, message: string): ApplicationFailure {
  return ApplicationFailure.create({ type: FailureType.InvalidSpec, message: `${field}: ${message}`, nonRetryable: true });
}

/**
 * Resolves a tier's endpoint and key under the worker's policy.
 *
 * @param index the tier's index in `pipeline.providers`, for the field names in errors
 * @throws ApplicationFailure InvalidSpec (non-retryable) when the spec names a host or key
 *   the policy does not allow; AuthFailed (non-retryable) when the key's variable is unset
 */
export function resolveEndpoint(p: ProviderSpec, index: number, policy: EndpointPolicy, env: NodeJS.ProcessEnv): Endpoint {
  const field = `pipeline.providers[${index}]`;
  if (p.apiKeyEnv !== undefined && !policy.keyHosts[p.apiKeyEnv]) {
    throw invalid(
      `${field}.apiKeyEnv`,
      `${p.apiKeyEnv} is not a key this worker lends to tiers (allowed: ${Object.keys(policy.keyHosts).join(', ')}); the operator adds one with STEADFAST_KEY_HOSTS=${p.apiKeyEnv}=<host>`,
    );
  }
  const vendor = p.kind === 'openai-compatible' ? undefined : p.kind;

  if (p.baseURL === undefined) {
    if (policy.simulatedUrl) {
      const local = policy.simulatedUrl.replace(/\/+$/, '');
      const baseURL = p.kind === 'anthropic' ? local : `${local}/v1`;
      return { kind: p.kind, baseURL, apiKey: NO_KEY, keyEnv: undefined, vendor: 'simulated', host: new URL(local).host, simulated: true };
    }
    if (!vendor) throw invalid(`${field}.baseURL`, 'an openai-compatible tier needs the URL of its server (e.g. http://127.0.0.1:8000/v1)');
    const keyEnv = p.apiKeyEnv ?? DEFAULT_KEY_ENV[vendor];
    const host = VENDOR_HOSTS[vendor];
    if (!policy.keyHosts[keyEnv]!.some((h) => hostMatches(host, h))) {
      throw invalid(`${field}.apiKeyEnv`, `${keyEnv} may be sent only to ${policy.keyHosts[keyEnv]!.join(', ')}, not to ${host}`);
    }
    const key = env[keyEnv];
    if (!key) throw authMissing(field, keyEnv);
    return { kind: p.kind, baseURL: undefined, apiKey: key, keyEnv, vendor, host, simulated: false };
  }

  let url: URL;
  try {
    url = new URL(p.baseURL);
  } catch {
    throw invalid(`${field}.baseURL`, `${JSON.stringify(p.baseURL)} is not a URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw invalid(`${field}.baseURL`, `only http and https URLs are allowed, not ${url.protocol}`);
  if (url.username || url.password) throw invalid(`${field}.baseURL`, 'credentials in the URL are not allowed; name the key with apiKeyEnv');
  const host = url.hostname.toLowerCase();
  const simulated = policy.simulatedUrl !== undefined && new URL(policy.simulatedUrl).host === url.host;
  const allowed = [...Object.values(VENDOR_HOSTS), ...LOOPBACK_HOSTS, ...policy.allowedHosts, ...Object.values(policy.keyHosts).flat()];
  if (!simulated && !allowed.some((h) => hostMatches(host, h))) {
    throw invalid(`${field}.baseURL`, `host ${host} is not allowed on this worker (allowed: the vendors' API hosts, loopback, and STEADFAST_ALLOWED_HOSTS / STEADFAST_KEY_HOSTS)`);
  }
  // A key goes only where the operator listed it: the spec's apiKeyEnv, or the vendor's key when baseURL is the vendor's own host.
  let keyEnv = p.apiKeyEnv;
  if (keyEnv === undefined && vendor && hostMatches(host, VENDOR_HOSTS[vendor])) keyEnv = DEFAULT_KEY_ENV[vendor];
  if (keyEnv !== undefined && !policy.keyHosts[keyEnv]!.some((h) => hostMatches(host, h))) {
    throw invalid(`${field}.apiKeyEnv`, `${keyEnv} may be sent only to ${policy.keyHosts[keyEnv]!.join(', ')}, not to ${host}`);
  }
  const key = keyEnv ? env[keyEnv] : NO_KEY;
  if (keyEnv && !key) throw authMissing(field, keyEnv);
  const name = simulated ? 'simulated' : vendor && hostMatches(host, VENDOR_HOSTS[vendor]) ? vendor : p.kind;
  return { kind: p.kind, baseURL: p.baseURL, apiKey: key ?? NO_KEY, keyEnv, vendor: name, host: url.host, simulated };
}

function authMissing(field: string, keyEnv: string): ApplicationFailure {
  return ApplicationFailure.create({
    type: FailureType.AuthFailed,
    message: `${field}: ${keyEnv} is not set on this worker; set it in the worker's environment (or run the worker with STEADFAST_SIMULATED_PROVIDER_URL to use the fault-injecting provider)`,
    nonRetryable: true,
    details: [{ keyEnv }],
  });
}

/**
 * Checks every tier of a spec under the worker's policy without calling anything:
 * the batch runs it before its first item, so a spec naming a host or key the
 * operator does not allow fails the batch at once. A missing key is not an error
 * here (that tier fails with AuthFailed and the chain moves on).
 */
export function checkEndpoints(providers: readonly ProviderSpec[], policy: EndpointPolicy): void {
  providers.forEach((p, i) => describeEndpoint(p, i, policy));
}

/** Where a tier would go (vendor, host, simulated), checked under the policy; never reads a key. */
export function describeEndpoint(p: ProviderSpec, index: number, policy: EndpointPolicy): EndpointInfo {
  // Every variable "set" to a placeholder: the policy is checked, no key value is read.
  const anyKey = new Proxy({}, { get: () => NO_KEY }) as NodeJS.ProcessEnv;
  const { vendor, host, simulated } = resolveEndpoint(p, index, policy, anyKey);
  return { vendor, host, simulated };
}
