/**
 * The process-wide Temporal Runtime (a singleton: install it once, before any
 * connection or worker; never in tests). Structured JSON logs from pino, with
 * secrets scrubbed, receive the SDK's own logs and the forwarded Core logs;
 * Prometheus serves the SDK's metrics (and ours) on /metrics.
 */
import { Runtime } from '@temporalio/worker';
import type { LogLevel, LogMetadata, Logger } from '@temporalio/worker';
import { pino } from 'pino';
import { scrubSecrets, scrubValue } from '../activities/scrub.ts';
import type { Config } from './config.ts';

const PINO_LEVEL: Record<LogLevel, 'trace' | 'debug' | 'info' | 'warn' | 'error'> = { TRACE: 'trace', DEBUG: 'debug', INFO: 'info', WARN: 'warn', ERROR: 'error' };

/** Errors keep their message and type when logged (their fields are not enumerable). */
function plain(meta: LogMetadata): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(meta)) {
    out[k] = v instanceof Error ? { name: v.name, message: v.message, type: (v as { type?: unknown }).type, cause: v.cause instanceof Error ? v.cause.message : undefined } : v;
  }
  return out;
}

/** A Temporal `Logger` writing pino JSON lines; messages and metadata pass through the scrubber. */
export function pinoLogger(level: Config['logLevel'], destination: NodeJS.WritableStream = process.stderr): Logger & { pino: pino.Logger } {
  const p = pino({ level, base: { service: 'steadfast' }, redact: { paths: ['*.apiKey', '*.authorization', '*.Authorization', '*["x-api-key"]', 'headers.*'], censor: '[redacted]' } }, destination);
  const log = (lvl: LogLevel, message: string, meta?: LogMetadata) => p[PINO_LEVEL[lvl]](meta ? scrubValue(plain(meta)) : {}, scrubSecrets(message));
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

/** Installs the Runtime with scrubbed JSON logs and, when `metricsPort` > 0, Prometheus on that port. */
export function installRuntime(config: Pick<Config, 'logLevel' | 'metricsPort'>): Logger & { pino: pino.Logger } {
  const logger = pinoLogger(config.logLevel);
  const coreLevel = config.logLevel === 'trace' ? 'TRACE' : config.logLevel === 'debug' ? 'DEBUG' : config.logLevel === 'info' ? 'INFO' : config.logLevel === 'warn' ? 'WARN' : 'ERROR';
  Runtime.install({
    logger,
    telemetryOptions: {
      logging: { forward: {}, filter: { core: coreLevel, other: 'WARN' } },
      ...(config.metricsPort > 0 ? { metrics: { prometheus: { bindAddress: `0.0.0.0:${config.metricsPort}` } } } : {}),
    },
  });
  return logger;
}
