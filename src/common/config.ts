/**
 * Process configuration from the environment, validated once with zod.
 * Connection settings come from here only; no literal address elsewhere.
 */
import { z } from 'zod';
import { formatIssues } from '../shared/spec.ts';

const EnvConfig = z.object({
  TEMPORAL_ADDRESS: z.string().min(1).default('localhost:7233'),
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  STEADFAST_TASK_QUEUE: z.string().min(1).default('steadfast'),
  /** PostgreSQL results store; when unset, the SQLite file below is used. */
  DATABASE_URL: z.string().url().optional(),
  STEADFAST_DB_PATH: z.string().min(1).default('data/results.db'),
  /** The local fault-injecting provider, used by tiers with no baseURL and no API key. */
  STEADFAST_PROVIDER_URL: z.string().url().default('http://127.0.0.1:8787'),
  /** Default alert webhook (Slack-compatible) for batches whose spec names none. */
  STEADFAST_WEBHOOK_URL: z.string().url().optional(),
  /** Port of the worker's Prometheus /metrics; 0 disables. */
  STEADFAST_METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(9464),
  /** Port of the worker's /livez and /readyz (Kubernetes probes); 0 disables. */
  STEADFAST_HEALTH_PORT: z.coerce.number().int().min(0).max(65535).default(8081),
  STEADFAST_LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  /** Concurrent activity executions per worker. */
  STEADFAST_MAX_ACTIVITIES: z.coerce.number().int().min(1).default(200),
});

export type Config = {
  temporalAddress: string;
  namespace: string;
  taskQueue: string;
  databaseUrl: string | undefined;
  webhookUrl: string | undefined;
  dbPath: string;
  providerUrl: string;
  metricsPort: number;
  healthPort: number;
  logLevel: z.output<typeof EnvConfig>['STEADFAST_LOG_LEVEL'];
  maxActivities: number;
};

/** Reads and validates the configuration; an error names the variable and the fix. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // An empty variable means unset (docker compose writes `KEY: ${KEY:-}` that way).
  const r = EnvConfig.safeParse(Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== '')));
  if (!r.success) throw new Error(`invalid environment: ${formatIssues(r.error)}`);
  const c = r.data;
  return {
    temporalAddress: c.TEMPORAL_ADDRESS,
    namespace: c.TEMPORAL_NAMESPACE,
    taskQueue: c.STEADFAST_TASK_QUEUE,
    databaseUrl: c.DATABASE_URL,
    webhookUrl: c.STEADFAST_WEBHOOK_URL,
    dbPath: c.STEADFAST_DB_PATH,
    providerUrl: c.STEADFAST_PROVIDER_URL,
    metricsPort: c.STEADFAST_METRICS_PORT,
    healthPort: c.STEADFAST_HEALTH_PORT,
    logLevel: c.STEADFAST_LOG_LEVEL,
    maxActivities: c.STEADFAST_MAX_ACTIVITIES,
  };
}
