/**
 * How every entry point (worker, CLI, demo, bench) reaches Temporal, in one place:
 * the SDK's own `@temporalio/envconfig`, so the settings are the ones the
 * `temporal` CLI reads: `TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`, `TEMPORAL_API_KEY`,
 * `TEMPORAL_TLS`, `TEMPORAL_TLS_CLIENT_CERT_PATH` / `_KEY_PATH`, `TEMPORAL_TLS_SERVER_CA_CERT_PATH`,
 * `TEMPORAL_TLS_SERVER_NAME` (and the `_DATA` forms), `TEMPORAL_GRPC_META_*`, and the
 * profiles of `temporal.toml` (`TEMPORAL_PROFILE`, `TEMPORAL_CONFIG_FILE`, default
 * `~/.config/temporalio/temporal.toml`). Precedence: flags, then environment, then the
 * profile, then the defaults (`localhost:7233`, namespace `default`).
 *
 * The API key and the TLS key are secrets: they are passed to the SDK and never
 * appear in {@link describeConnection}, in errors or in logs.
 */
import { existsSync } from 'node:fs';
import { loadClientConnectConfig } from '@temporalio/envconfig';
import type { ClientConnectConfig } from '@temporalio/envconfig';

/** The connection flags of the steadfast CLI, named as the `temporal` CLI names them. */
export interface ConnectionFlags {
  address?: string;
  namespace?: string;
  apiKey?: string;
  tlsCertPath?: string;
  tlsKeyPath?: string;
  tlsCaPath?: string;
  tlsServerName?: string;
  /** Profile of temporal.toml (`--profile`, or `--env`). */
  profile?: string;
  configFile?: string;
}

/** Options for `Connection.connect` (client) and `NativeConnection.connect` (worker): the same fields. */
export type ConnectionOptions = ClientConnectConfig['connectionOptions'] & { address: string };

/** Where and how to reach Temporal. */
export interface TemporalConnection {
  address: string;
  namespace: string;
  connectionOptions: ConnectionOptions;
  /** TLS on (explicitly, by a certificate, or implied by an API key). */
  tls: boolean;
  /** A client certificate is presented (mTLS). */
  clientCert: boolean;
  apiKey: boolean;
  /** The temporal.toml profile asked for, if any. */
  profile: string | undefined;
}

/** The environment variables this module reads (besides `TEMPORAL_GRPC_META_*`), for docs and checks. */
export const CONNECTION_VARIABLES = [
  'TEMPORAL_ADDRESS',
  'TEMPORAL_NAMESPACE',
  'TEMPORAL_API_KEY',
  'TEMPORAL_TLS',
  'TEMPORAL_TLS_CLIENT_CERT_PATH',
  'TEMPORAL_TLS_CLIENT_CERT_DATA',
  'TEMPORAL_TLS_CLIENT_KEY_PATH',
  'TEMPORAL_TLS_CLIENT_KEY_DATA',
  'TEMPORAL_TLS_SERVER_CA_CERT_PATH',
  'TEMPORAL_TLS_SERVER_CA_CERT_DATA',
  'TEMPORAL_TLS_SERVER_NAME',
  'TEMPORAL_PROFILE',
  'TEMPORAL_CONFIG_FILE',
] as const;

const FLAG_VARIABLES: Record<keyof ConnectionFlags, string> = {
  address: 'TEMPORAL_ADDRESS',
  namespace: 'TEMPORAL_NAMESPACE',
  apiKey: 'TEMPORAL_API_KEY',
  tlsCertPath: 'TEMPORAL_TLS_CLIENT_CERT_PATH',
  tlsKeyPath: 'TEMPORAL_TLS_CLIENT_KEY_PATH',
  tlsCaPath: 'TEMPORAL_TLS_SERVER_CA_CERT_PATH',
  tlsServerName: 'TEMPORAL_TLS_SERVER_NAME',
  profile: 'TEMPORAL_PROFILE',
  configFile: 'TEMPORAL_CONFIG_FILE',
};

/** Thrown for settings that cannot work (a missing certificate file, an unknown profile): the message is one line. */
export class ConnectionConfigError extends Error {
  override name = 'ConnectionConfigError';
}

const DEFAULT_ADDRESS = 'localhost:7233';
const DEFAULT_NAMESPACE = 'default';

/** The connection from flags, environment and temporal.toml (in that order of precedence). */
export function loadConnection(env: NodeJS.ProcessEnv = process.env, flags: ConnectionFlags = {}): TemporalConnection {
  // An empty variable means unset (docker compose writes `KEY: ${KEY:-}` that way).
  const vars: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && v !== '') vars[k] = v;
  for (const [flag, name] of Object.entries(FLAG_VARIABLES)) {
    const v = flags[flag as keyof ConnectionFlags];
    if (v !== undefined && v !== '') vars[name] = v;
  }
  const profile = vars['TEMPORAL_PROFILE'];
  // The default file is optional; one named explicitly must exist.
  const file = vars['TEMPORAL_CONFIG_FILE'];
  if (file && !existsSync(file)) throw new ConnectionConfigError(`invalid Temporal connection settings: cannot read ${file} (TEMPORAL_CONFIG_FILE or --config-file): no such file`);
  let loaded: ClientConnectConfig;
  try {
    loaded = loadClientConnectConfig({ overrideEnvVars: vars, ...(profile ? { profile } : {}) });
  } catch (err) {
    throw new ConnectionConfigError(`invalid Temporal connection settings: ${explainLoadError(err, vars)}`);
  }
  const opts = loaded.connectionOptions;
  const tlsOpt = opts.tls;
  const tls = tlsOpt === true || (typeof tlsOpt === 'object' && tlsOpt !== null);
  const clientCert = typeof tlsOpt === 'object' && tlsOpt !== null && tlsOpt.clientCertPair !== undefined;
  if (typeof tlsOpt === 'object' && tlsOpt !== null && !tlsOpt.clientCertPair && (vars['TEMPORAL_TLS_CLIENT_CERT_PATH'] || vars['TEMPORAL_TLS_CLIENT_KEY_PATH'])) {
    throw new ConnectionConfigError(
      'invalid Temporal connection settings: mTLS needs both a client certificate (--tls-cert-path, TEMPORAL_TLS_CLIENT_CERT_PATH) and its key (--tls-key-path, TEMPORAL_TLS_CLIENT_KEY_PATH)',
    );
  }
  const address = opts.address ?? DEFAULT_ADDRESS;
  return {
    address,
    namespace: loaded.namespace ?? DEFAULT_NAMESPACE,
    connectionOptions: { ...opts, address },
    tls,
    clientCert,
    apiKey: opts.apiKey !== undefined,
    profile,
  };
}

function explainLoadError(err: unknown, vars: Record<string, string>): string {
  const e = err as NodeJS.ErrnoException;
  if (e?.code === 'ENOENT' && typeof e.path === 'string') {
    const variable = CONNECTION_VARIABLES.find((v) => vars[v] === e.path);
    return `cannot read ${e.path}${variable ? ` (${variable})` : ''}: no such file`;
  }
  const message = err instanceof Error ? err.message : String(err);
  return message.split('\n')[0]!;
}

/** A one-line description without secrets, e.g. `tls.example:7233 (namespace prod, TLS with client certificate)`. */
export function describeConnection(c: TemporalConnection): string {
  const how = c.clientCert ? 'TLS with client certificate' : c.apiKey ? 'TLS with API key' : c.tls ? 'TLS' : 'plaintext';
  return `${c.address} (namespace ${c.namespace}, ${how}${c.profile ? `, profile ${c.profile}` : ''})`;
}

/**
 * One line for a failed connection, naming the address and what to check:
 * e.g. `cannot connect to Temporal at 127.0.0.1:7233 over TLS: certificate rejected (...)`.
 * The SDK's message is kept (it names the TLS alert) but never carries the key.
 */
export function connectionErrorMessage(c: TemporalConnection, err: unknown): string {
  const raw = (err instanceof Error ? err.message : String(err)).replace(/\s+/g, ' ').trim();
  const over = c.tls ? ' over TLS' : '';
  const at = `cannot connect to Temporal at ${c.address}${over}`;
  if (c.tls && /certificate|handshake|tls|ssl|alert|unknown ca|bad certificate|x509/i.test(raw)) {
    const who = c.clientCert
      ? 'the client certificate or key (--tls-cert-path, --tls-key-path) or the server CA (--tls-ca-path)'
      : 'the server certificate or CA (--tls-ca-path, --tls-server-name)';
    return `${at}: certificate rejected; check ${who}: ${raw}`;
  }
  if (/unauthenticated|permission|unauthorized|api key/i.test(raw)) return `${at}: credentials rejected; check the API key (--api-key, TEMPORAL_API_KEY): ${raw}`;
  if (!c.tls && /connection reset|broken pipe|http2|protocol|frame/i.test(raw))
    return `${at}: the server closed the connection; does it require TLS (TEMPORAL_TLS=true, --tls-ca-path)?: ${raw}`;
  return `${at}: ${raw}`;
}

/** True when the failure is about certificates or credentials: retrying cannot help. */
export function isCredentialError(c: TemporalConnection, err: unknown): boolean {
  const raw = err instanceof Error ? err.message : String(err);
  return (c.tls && /certificate|handshake|unknown ca|bad certificate|x509|alert/i.test(raw)) || /unauthenticated|permission denied|invalid api key/i.test(raw);
}
