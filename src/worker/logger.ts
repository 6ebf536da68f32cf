/**
 * The process-wide Temporal Runtime (a singleton: install it once, before any
 * connection or worker; never in tests). Structured JSON logs from pino, with
 * secrets scrubbed, receive the SDK's own logs (worker, workflow and activity
 * logs, with their workflow and activity context) and the forwarded Core logs;
 * every line about an item carries `batchId` and `itemId`. Prometheus serves the
 * SDK's metrics and ours (activities/metrics.ts) on /metrics.
 */
import { Runtime } from '@temporalio/worker';
import type { ActivityInterceptorsFactory, LogLevel, LogMetadata, Logger } from '@temporalio/worker';
import { pino } from 'pino';
import { scrubSecrets, scrubValue } from '../../activities/scrub.ts';
import type { Config } from '../common/config.ts';
import { HISTOGRAM_BUCKETS } from '../../activities/metrics.ts';

const PINO_LEVEL: Record<LogLevel, 'trace' | 'debug' | 'info' | 'warn' | 'error'> = { TRACE: 'trace', DEBUG: 'debug', INFO: 'info', WARN: 'warn', ERROR: 'error' };

/** Errors keep their message and type when logged (their fields are not enumerable). */
function plain(meta: LogMetadata): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(meta)) {
    out[k] = v instanceof Error ? { name: v.name, message: v.message, type: (v as { type?: unknown }).type, cause: v.cause instanceof Error ? v.cause.message : undefined } : v;
  }
  return out;
}

/**
 * Adds `batchId` and `itemId` to a line that has a workflow context but not the ids:
 * an item workflow's id is `<batchId>/<itemId>` (a stable naming rule), a batch
 * workflow's id is its batch id (unless started with another `batchId`, in which
 * case the activity interceptor below supplies the real one from the input).
 */
export function withItemContext(meta: Record<string, unknown>): Record<string, unknown> {
  if (meta['batchId'] !== undefined) return meta;
  const id = meta['workflowId'];
  if (typeof id !== 'string') return meta;
  const type = meta['workflowType'];
  const slash = id.indexOf('/');
  if (type === 'itemPipeline' && slash > 0) return { batchId: id.slice(0, slash), itemId: id.slice(slash + 1), ...meta };
  if (type === 'batchPipeline') return { batchId: id, ...meta };
  return meta;
}

/** A Temporal `Logger` writing pino JSON lines; messages and metadata pass through the scrubber. */
export function pinoLogger(level: Config['logLevel'], destination: NodeJS.WritableStream = process.stderr): Logger & { pino: pino.Logger } {
  const p = pino(
    { level, base: { service: 'steadfast' }, redact: { paths: ['*.apiKey', '*.authorization', '*.Authorization', '*["x-api-key"]', 'headers.*'], censor: '[redacted]' } },
    destination,
  );
  // Check the level first: scrubbing is the costly part, and most lines (debug) are dropped.
  const log = (lvl: LogLevel, message: string, meta?: LogMetadata) => {
    if (!p.isLevelEnabled(PINO_LEVEL[lvl])) return;
    p[PINO_LEVEL[lvl]](meta ? scrubValue(withItemContext(plain(meta))) : {}, scrubSecrets(message));
  };
  return {
    pino: p,
    log,
    trace: (m, meta) => log('TRACE', m, meta),
    debug: (m, meta) => log('DEBUG', m, meta),
    info: (m, meta) => log('INFO', m, meta),
    warn: (m, meta) => log('WARN', m, meta),
    error: (m, meta) => log('ERROR', m, meta),
  };
}

/** The `host:port` a server listens on; an IPv6 address gets brackets. */
export function bindAddress(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Installs the Runtime with scrubbed JSON logs and, when `metricsPort` > 0, Prometheus on `listenHost:metricsPort`. */
export function installRuntime(config: Pick<Config, 'logLevel' | 'metricsPort' | 'listenHost'>): Logger & { pino: pino.Logger } {
  const logger = pinoLogger(config.logLevel);
  const coreLevel =
    config.logLevel === 'trace' ? 'TRACE' : config.logLevel === 'debug' ? 'DEBUG' : config.logLevel === 'info' ? 'INFO' : config.logLevel === 'warn' ? 'WARN' : 'ERROR';
  Runtime.install({
    logger,
    telemetryOptions: {
      logging: { forward: {}, filter: { core: coreLevel, other: 'WARN' } },
      ...(config.metricsPort > 0
        ? { metrics: { prometheus: { bindAddress: bindAddress(config.listenHost, config.metricsPort), histogramBucketOverrides: HISTOGRAM_BUCKETS } } }
        : {}),
    },
  });
  return logger;
}

/**
 * Activity interceptor: every log line of an activity whose input names a batch
 * and an item (`callLlm`, `persistResult`, `notify`, ...) carries `batchId` and
 * `itemId` from that input, whatever the workflow id looks like.
 */
export const activityLogContext: ActivityInterceptorsFactory = () => {
  let ids: Record<string, string> = {};
  return {
    inbound: {
      execute(input, next) {
        const first: unknown = input.args[0];
        if (first !== null && typeof first === 'object') {
          const { batchId, itemId } = first as { batchId?: unknown; itemId?: unknown };
          ids = { ...(typeof batchId === 'string' ? { batchId } : {}), ...(typeof itemId === 'string' ? { itemId } : {}) };
        }
        return next(input);
      },
    },
    outbound: {
      getLogAttributes: (attrs, next) => next({ ...attrs, ...ids }),
    },
  };
};
