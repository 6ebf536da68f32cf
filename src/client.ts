/**
 * Client-side helpers shared by the CLI, the demo and tests: connecting to
 * Temporal from the config, and starting a local dev server when none runs.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, openSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import type { Config } from './config.ts';
import { SEARCH_ATTRIBUTES } from '../workflows/search-attributes.ts';

/** Connects a client; rejects when the server does not answer within `timeoutMs`. */
export async function connectClient(config: Config, timeoutMs = 5_000): Promise<Client> {
  const connection = await Connection.connect({ address: config.temporalAddress, connectTimeout: timeoutMs });
  return new Client({ connection, namespace: config.namespace });
}

/** True when a Temporal frontend answers at the configured address. */
export async function temporalReachable(config: Config, timeoutMs = 2_000): Promise<boolean> {
  try {
    const connection = await Connection.connect({ address: config.temporalAddress, connectTimeout: timeoutMs });
    await connection.healthService.check({});
    await connection.close();
    return true;
  } catch {
    return false;
  }
}

function isLocal(address: string): boolean {
  return /^(localhost|127\.0\.0\.1|\[::1\]):\d+$/.test(address);
}

/**
 * Makes sure a Temporal server answers: when none does at a local address, starts
 * `npm run dev-server` in the background (it outlives this process, so the Web UI
 * stays up) with its log in data/dev-server.log.
 */
export async function ensureDevServer(config: Config, log: (msg: string) => void): Promise<'running' | 'started'> {
  if (await temporalReachable(config)) return 'running';
  if (!isLocal(config.temporalAddress)) throw new Error(`no Temporal server answers at ${config.temporalAddress} (TEMPORAL_ADDRESS)`);
  mkdirSync('data', { recursive: true });
  const out = openSync('data/dev-server.log', 'a');
  const port = config.temporalAddress.split(':').pop() ?? '7233';
  const script = fileURLToPath(new URL('./dev-server.ts', import.meta.url));
  log(`starting the Temporal dev server on ${config.temporalAddress} (log: data/dev-server.log)`);
  spawn(process.execPath, [script], { detached: true, stdio: ['ignore', out, out], env: { ...process.env, TEMPORAL_PORT: port } }).unref();
  const deadline = Date.now() + 90_000;
  while (Date.now() < deadline) {
    if (await temporalReachable(config, 1_000)) return 'started';
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error('the Temporal dev server did not come up within 90 s; see data/dev-server.log');
}

/** Web UI address of a workflow on the local dev server. */
export function webUiUrl(config: Config, workflowId: string): string | null {
  if (!isLocal(config.temporalAddress)) return null;
  const ui = process.env.TEMPORAL_UI_URL ?? 'http://localhost:8233';
  return `${ui}/namespaces/${encodeURIComponent(config.namespace)}/workflows/${encodeURIComponent(workflowId)}`;
}

/** IndexedValueType.KEYWORD of the Temporal API. */
const KEYWORD = 2;

/**
 * Registers Steadfast's search attributes on a server that lacks them (the
 * time-skipping test server, a fresh cluster). Existing ones are left as they are.
 */
export async function registerSearchAttributes(connection: Connection, namespace: string): Promise<void> {
  const searchAttributes = Object.fromEntries(Object.keys(SEARCH_ATTRIBUTES).map((name) => [name, KEYWORD]));
  try {
    await connection.operatorService.addSearchAttributes({ namespace, searchAttributes });
  } catch (err) {
    // ALREADY_EXISTS: registered before (the dev server registers them at start).
    if (!/already exists/i.test(String(err))) throw err;
  }
}
