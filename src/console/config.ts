/**
 * The review console's settings, from the environment, validated once with zod.
 * Safe by default: it binds to loopback; bound anywhere else it refuses to start
 * unless a token or a trusted auth-proxy header guards it.
 */
import { z } from 'zod';
import { formatIssues } from '../shared/spec.ts';

const Env = z.object({
  /** Interface to bind. @default 127.0.0.1 */
  STEADFAST_CONSOLE_HOST: z.string().min(1).default('127.0.0.1'),
  /** Port to listen on; 0 picks a free one. @default 8590 */
  STEADFAST_CONSOLE_PORT: z.coerce.number().int().min(0).max(65535).default(8590),
  /** Shared secret: `Authorization: Bearer <token>`, or once `/login?token=<token>` (sets an HttpOnly cookie). */
  STEADFAST_CONSOLE_TOKEN: z.string().min(16, 'at least 16 characters (e.g. openssl rand -hex 24)').optional(),
  /** Header an authenticating reverse proxy sets to the user's name, e.g. X-Forwarded-User; trusted as the reviewer. */
  STEADFAST_CONSOLE_AUTH_HEADER: z
    .string()
    .regex(/^[A-Za-z0-9-]+$/, 'an HTTP header name')
    .optional(),
  /** Seconds between the page's refreshes. @default 2 */
  STEADFAST_CONSOLE_POLL_SECONDS: z.coerce.number().min(0.5).max(60).default(2),
  /** Web UI origins (comma-separated) that may call `/codec/decode`. @default the dev server's Web UI, http://localhost:8233 and http://127.0.0.1:8233 */
  STEADFAST_CONSOLE_CODEC_ORIGINS: z
    .string()
    .transform((s) =>
      s
        .split(',')
        .map((o) => o.trim())
        .filter(Boolean),
    )
    .pipe(z.array(z.string().regex(/^https?:\/\/[^/\s]+$/, 'an origin like https://temporal.example.com (scheme and host, no path)')))
    .optional(),
});

/** The console's settings. */
export interface ConsoleConfig {
  host: string;
  port: number;
  token: string | undefined;
  /** Lower-case header name, or undefined. */
  authHeader: string | undefined;
  pollSeconds: number;
  /** Origins whose pages may call the codec routes. */
  codecOrigins: string[];
}

/** True for a loopback interface, where only this machine's users reach the console. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127(\.\d{1,3}){3}$/.test(host);
}

/** Reads the settings; an error names the variable and the fix. */
export function loadConsoleConfig(env: NodeJS.ProcessEnv = process.env): ConsoleConfig {
  const r = Env.safeParse(Object.fromEntries(Object.entries(env).filter(([k, v]) => k.startsWith('STEADFAST_CONSOLE_') && v !== undefined && v !== '')));
  if (!r.success) throw new Error(`invalid environment: ${formatIssues(r.error)}`);
  const c = r.data;
  const config: ConsoleConfig = {
    host: c.STEADFAST_CONSOLE_HOST,
    port: c.STEADFAST_CONSOLE_PORT,
    token: c.STEADFAST_CONSOLE_TOKEN,
    authHeader: c.STEADFAST_CONSOLE_AUTH_HEADER?.toLowerCase(),
    pollSeconds: c.STEADFAST_CONSOLE_POLL_SECONDS,
    codecOrigins: c.STEADFAST_CONSOLE_CODEC_ORIGINS ?? ['http://localhost:8233', 'http://127.0.0.1:8233'],
  };
  if (!isLoopback(config.host) && !config.token && !config.authHeader) {
    throw new Error(
      `STEADFAST_CONSOLE_HOST=${config.host} is not a loopback address: set STEADFAST_CONSOLE_TOKEN (a secret of 16+ characters) or STEADFAST_CONSOLE_AUTH_HEADER (the user header of an authenticating proxy), or bind to 127.0.0.1`,
    );
  }
  return config;
}
