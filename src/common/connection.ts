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
import { existsSync, readFileSync } from 'node:fs';
import { connect as tlsConnect } from 'node:tls';
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
  // An empty file (or /dev/null, which the bench uses to keep a user's profiles out) holds no
  // profile; the SDK's loader would fail on it, so it is read as no file at all.
  const emptyFile = file !== undefined && readFileSync(file, 'utf8').trim() === '';
  let loaded: ClientConnectConfig;
  try {
    loaded = loadClientConnectConfig({ overrideEnvVars: vars, ...(profile ? { profile } : {}), ...(emptyFile ? { disableFile: true } : {}) });
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
 * Asks the server directly, with a plain TLS handshake using the same certificate,
 * key and CA, why a TLS connection fails. The gRPC clients hide it: with TLS 1.3
 * a rejected client certificate arrives after the handshake, as an alert that they
 * report as "broken pipe" or a missed deadline. Null when the handshake is accepted.
 */
export async function probeTls(c: TemporalConnection, timeoutMs = 3_000): Promise<string | null> {
  const opt = c.connectionOptions.tls;
  if (!c.tls) return null;
  const tls = typeof opt === 'object' && opt !== null ? opt : {};
  const i = c.address.lastIndexOf(':');
  const host = c.address.slice(0, i).replace(/^\[|\]$/g, '');
  const port = Number(c.address.slice(i + 1));
  return new Promise((resolve) => {
    let settled = false;
    const done = (reason: string | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(reason);
    };
    const socket = tlsConnect({
      host,
      port,
      servername: tls.serverNameOverride ?? (/^[\d.]+$|:/.test(host) ? undefined : host),
      ...(tls.serverRootCACertificate ? { ca: Buffer.from(tls.serverRootCACertificate) } : {}),
      ...(tls.clientCertPair ? { cert: Buffer.from(tls.clientCertPair.crt), key: Buffer.from(tls.clientCertPair.key) } : {}),
      ALPNProtocols: ['h2'],
    });
    // The server's verdict on our certificate comes after our side of the handshake (TLS 1.3):
    // keep reading for a moment so that its alert, if any, arrives as an error.
    let handshaken = false;
    socket.once('secureConnect', () => {
      handshaken = true;
      setTimeout(() => done(null), 500);
    });
    socket.on('data', () => undefined);
    socket.once('error', (err: NodeJS.ErrnoException) => done(tlsReason(err)));
    socket.once('close', () =>
      done(
        handshaken && tls.clientCertPair
          ? 'the server refused the client certificate (it closed the connection after the handshake)'
          : `the server closed the connection ${handshaken ? 'after' : 'during'} the TLS handshake`,
      ),
    );
    const timer = setTimeout(() => done(null), timeoutMs);
  });
}

/** The TLS error in words: which side refused which certificate. */
function tlsReason(err: NodeJS.ErrnoException): string {
  const code = err.code ?? '';
  const msg = err.message
    .replace(/^[^:]*routines:[^:]*:/, '')
    .replace(/\s+/g, ' ')
    .trim();
  if (/ALERT_(UNKNOWN_CA|BAD_CERTIFICATE|CERTIFICATE_REQUIRED|CERTIFICATE_UNKNOWN|DECRYPT_ERROR|HANDSHAKE_FAILURE)|ALERT_ACCESS_DENIED/.test(code))
    return `the server refused the client certificate (${msg})`;
  if (/CERT|SELF_SIGNED|UNABLE_TO|HOSTNAME|ERR_TLS_CERT_ALTNAME/.test(code)) return `the server certificate is not trusted (${msg})`;
  if (/KEY_VALUES_MISMATCH|key values mismatch/i.test(code + msg)) return 'the client key does not match the client certificate';
  return msg || code;
}

/**
 * One line for a failed connection, naming the address and what to check:
 * e.g. `cannot connect to Temporal at 127.0.0.1:7233 over TLS: certificate rejected; ...`.
 * With TLS the server is asked why ({@link probeTls}). Key material never appears.
 */
export async function explainConnectError(c: TemporalConnection, err: unknown): Promise<{ message: string; credentials: boolean }> {
  const raw = (err instanceof Error ? err.message : String(err)).replace(/\s+/g, ' ').trim();
  const at = `cannot connect to Temporal at ${c.address}${c.tls ? ' over TLS' : ''}`;
  const tlsWhy = c.tls ? ((/key values mismatch/i.test(raw) ? 'the client key does not match the client certificate' : null) ?? (await probeTls(c).catch(() => null))) : null;
  if (tlsWhy) {
    const check = /client/.test(tlsWhy)
      ? 'check --tls-cert-path and --tls-key-path (TEMPORAL_TLS_CLIENT_CERT_PATH, TEMPORAL_TLS_CLIENT_KEY_PATH)'
      : 'check --tls-ca-path and --tls-server-name (TEMPORAL_TLS_SERVER_CA_CERT_PATH, TEMPORAL_TLS_SERVER_NAME)';
    return { message: `${at}: certificate rejected: ${tlsWhy}; ${check}`, credentials: true };
  }
  if (/unauthenticated|permission denied|unauthorized|invalid api key/i.test(raw))
    return { message: `${at}: credentials rejected; check the API key (--api-key, TEMPORAL_API_KEY): ${raw}`, credentials: true };
  return { message: `${at}: ${raw}`, credentials: false };
}
