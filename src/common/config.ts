/**
 * Process configuration from the environment, validated once with zod.
 * Connection settings come from here only (through ./connection.ts, which reads
 * them the way the `temporal` CLI does); no literal address elsewhere.
 */
import { z } from 'zod';
import { formatIssues } from '../shared/spec.ts';
import { parseSourceHosts, parseSourceRoots } from './source-roots.ts';
import { loadConnection } from './connection.ts';
import type { ConnectionFlags, TemporalConnection } from './connection.ts';

const EnvConfig = z.object({
  /** Read through @temporalio/envconfig with the TLS, API-key and profile settings (./connection.ts). */
  TEMPORAL_ADDRESS: z.string().min(1).optional(),
  TEMPORAL_NAMESPACE: z.string().min(1).optional(),
  /** Base URL of the Temporal Web UI for links; default derived from the address (dev server: gRPC port + 1000). */
  TEMPORAL_UI_URL: z.string().url().optional(),
  STEADFAST_TASK_QUEUE: z.string().min(1).default('steadfast'),
  /** PostgreSQL results store; when unset, the SQLite file below is used. */
  DATABASE_URL: z.string().url().optional(),
  STEADFAST_DB_PATH: z.string().min(1).default('data/results.db'),
  /**
   * The explicit switch to the fault-injecting provider (tests, demo, bench, compose):
   * tiers without a baseURL are answered by it and recorded as simulated. Unset: they
   * call their vendor's API with its key, and a missing key is AuthFailed.
   */
  STEADFAST_SIMULATED_PROVIDER_URL: z.string().url().optional(),
  /** Extra keys a tier may name as apiKeyEnv, each with the only hosts it may go to: `NAME=host,host;NAME=host`. */
  STEADFAST_KEY_HOSTS: z
    .string()
    .regex(
      /^\s*(?:[A-Za-z_][A-Za-z0-9_]*\s*=\s*[^;=\s][^;=]*)(?:;\s*[A-Za-z_][A-Za-z0-9_]*\s*=\s*[^;=\s][^;=]*)*;?\s*$/,
      'NAME=host[,host][;NAME=host...] (e.g. OPENROUTER_API_KEY=openrouter.ai)',
    )
    .optional(),
  /** Extra hosts a tier's baseURL may name (keyless), comma-separated; `*.example.com` wildcards. */
  STEADFAST_ALLOWED_HOSTS: z.string().optional(),
  /** Default alert webhook (Slack-compatible) for batches whose spec names none. */
  STEADFAST_WEBHOOK_URL: z.string().url().optional(),
  /** Port of the worker's Prometheus /metrics; 0 disables. */
  STEADFAST_METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(9464),
  /**
   * Address the metrics and probe servers listen on. Loopback by default, so a worker on a
   * laptop or shared host exposes nothing; the container image sets 0.0.0.0 (Prometheus and
   * the kubelet reach the pod from outside).
   */
  STEADFAST_LISTEN_HOST: z
    .string()
    .regex(/^[A-Za-z0-9.:-]+$/, 'an IP address or host name, e.g. 127.0.0.1 or 0.0.0.0')
    .default('127.0.0.1'),
  /** Port of the worker's /livez and /readyz (Kubernetes probes); 0 disables. */
  STEADFAST_HEALTH_PORT: z.coerce.number().int().min(0).max(65535).default(8081),
  STEADFAST_LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  /** Largest LLM answer an attempt may return (bytes); larger ones fail as PayloadsTooLarge. Answers over STEADFAST_CLAIM_BYTES are claim-checked. */
  STEADFAST_MAX_ANSWER_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .max(16 << 20)
    .default(256 * 1024),
  /**
   * Temporal payloads (activity inputs and results, child inputs, carries) larger than this
   * many bytes are kept in the results database and history holds a key (claim check).
   * Well under Temporal's 2 MB payload limit, so many of them fit one workflow task.
   */
  STEADFAST_CLAIM_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .max(1536 * 1024)
    .default(128 * 1024),
  /** Directories (`:`-separated) batch sources may be read from. @default data/ under the working directory, and the OS temp dir */
  STEADFAST_SOURCE_ROOTS: z.string().optional(),
  /** Hosts (comma-separated) batch source URLs may name. @default none */
  STEADFAST_SOURCE_HOSTS: z.string().optional(),
  /** Concurrent activity executions per worker. */
  STEADFAST_MAX_ACTIVITIES: z.coerce.number().int().min(1).default(200),
});

export type Config = {
  /** Where and how to reach Temporal (address, namespace, TLS, API key, profile). */
  temporal: TemporalConnection;
  temporalAddress: string;
  namespace: string;
  /** Base URL of the Web UI, or null when it cannot be known (set TEMPORAL_UI_URL). */
  uiUrl: string | null;
  taskQueue: string;
  databaseUrl: string | undefined;
  webhookUrl: string | undefined;
  dbPath: string;
  /** The fault-injecting provider when the worker is switched to it (STEADFAST_SIMULATED_PROVIDER_URL). */
  simulatedProviderUrl: string | undefined;
  metricsPort: number;
  healthPort: number;
  listenHost: string;
  logLevel: z.output<typeof EnvConfig>['STEADFAST_LOG_LEVEL'];
  maxActivities: number;
  maxAnswerBytes: number;
  /** Payloads above this many bytes are claim-checked (src/common/claim-check.ts). */
  claimBytes: number;
  sourceRoots: string[];
  sourceHosts: string[];
};

/**
 * The Web UI for an address: the dev server serves it on its gRPC port + 1000
 * (7233 -> 8233), Temporal Cloud on cloud.temporal.io; elsewhere it cannot be guessed.
 */
export function defaultUiUrl(address: string): string | null {
  const m = /^(localhost|127\.0\.0\.1|\[::1\]):(\d+)$/.exec(address);
  if (m) return `http://localhost:${Number(m[2]) + 1000}`;
  if (/\.tmprl\.cloud:\d+$/.test(address)) return 'https://cloud.temporal.io';
  return null;
}

/** Reads and validates the configuration; an error names the variable and the fix. `flags` override the connection variables. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, flags: ConnectionFlags = {}): Config {
  // An empty variable means unset (docker compose writes `KEY: ${KEY:-}` that way).
  const set = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  // The old name routed every keyless tier to the fault provider silently; refuse it rather than guess.
  if (set['STEADFAST_PROVIDER_URL'] && !set['STEADFAST_SIMULATED_PROVIDER_URL']) {
    throw new Error(
      'invalid environment: STEADFAST_PROVIDER_URL was renamed: set STEADFAST_SIMULATED_PROVIDER_URL to route tiers without a baseURL to the fault-injecting provider, or unset it to call the vendors',
    );
  }
  const r = EnvConfig.safeParse(set);
  if (!r.success) throw new Error(`invalid environment: ${formatIssues(r.error)}`);
  const c = r.data;
  const temporal = loadConnection(env, flags);
  return {
    temporal,
    temporalAddress: temporal.address,
    namespace: temporal.namespace,
    uiUrl: c.TEMPORAL_UI_URL?.replace(/\/+$/, '') ?? defaultUiUrl(temporal.address),
    taskQueue: c.STEADFAST_TASK_QUEUE,
    databaseUrl: c.DATABASE_URL,
    webhookUrl: c.STEADFAST_WEBHOOK_URL,
    dbPath: c.STEADFAST_DB_PATH,
    simulatedProviderUrl: c.STEADFAST_SIMULATED_PROVIDER_URL,
    metricsPort: c.STEADFAST_METRICS_PORT,
    healthPort: c.STEADFAST_HEALTH_PORT,
    listenHost: c.STEADFAST_LISTEN_HOST,
    logLevel: c.STEADFAST_LOG_LEVEL,
    maxActivities: c.STEADFAST_MAX_ACTIVITIES,
    maxAnswerBytes: c.STEADFAST_MAX_ANSWER_BYTES,
    claimBytes: c.STEADFAST_CLAIM_BYTES,
    sourceRoots: parseSourceRoots(c.STEADFAST_SOURCE_ROOTS),
    sourceHosts: parseSourceHosts(c.STEADFAST_SOURCE_HOSTS),
  };
}
