/**
 * Client-side helpers shared by the CLI, the demo and tests: connecting to
 * Temporal from the config, Web UI links, search-attribute registration.
 */
import { Client, Connection } from '@temporalio/client';
import type { Config } from '../common/config.ts';
import { clientCodec } from '../common/claim-check.ts';
import type { ClaimCheckCodec } from '../common/claim-check.ts';
import { SEARCH_ATTRIBUTES } from '../shared/search-attributes.ts';

const codecs = new WeakMap<Client, ClaimCheckCodec>();

/** Connects a client (with the claim-check codec); rejects when the server does not answer within `timeoutMs`. */
export async function connectClient(config: Config, timeoutMs = 5_000): Promise<Client> {
  const connection = await Connection.connect({ ...config.temporal.connectionOptions, connectTimeout: timeoutMs });
  const codec = clientCodec(config, () => import('../../activities/store.ts').then((m) => m.openStore(config)));
  const client = new Client({ connection, namespace: config.namespace, dataConverter: { payloadCodecs: [codec] } });
  codecs.set(client, codec);
  return client;
}

/** Closes a client from {@link connectClient}: its connection and the store its codec opened. */
export async function closeClient(client: Client): Promise<void> {
  await client.connection.close();
  await codecs.get(client)?.close();
}

/** True when a Temporal frontend answers at the configured address. */
export async function temporalReachable(config: Config, timeoutMs = 2_000): Promise<boolean> {
  try {
    const connection = await Connection.connect({ ...config.temporal.connectionOptions, connectTimeout: timeoutMs });
    await connection.healthService.check({});
    await connection.close();
    return true;
  } catch {
    return false;
  }
}

/** True for a loopback address (where a dev server may be started). */
export function isLocal(address: string): boolean {
  return /^(localhost|127\.0\.0\.1|\[::1\]):\d+$/.test(address);
}

/** Web UI address of a workflow (TEMPORAL_UI_URL, or the one derived from the address); null when unknown. */
export function webUiUrl(config: Config, workflowId: string): string | null {
  if (!config.uiUrl) return null;
  return `${config.uiUrl}/namespaces/${encodeURIComponent(config.namespace)}/workflows/${encodeURIComponent(workflowId)}`;
}

/** IndexedValueType.KEYWORD of the Temporal API. */
/** Indexed value types of the operator API (temporal.api.enums.v1.IndexedValueType). */
const INDEXED_VALUE_TYPE = { Keyword: 2, Datetime: 6 } as const;

/**
 * Registers the search attributes Steadfast's workflows upsert that the server
 * lacks (a dev server started by an older version, the time-skipping test
 * server, a fresh cluster); existing ones are left as they are. Returns the
 * names it added.
 */
export async function registerSearchAttributes(connection: Connection, namespace: string): Promise<string[]> {
  let existing: Set<string>;
  try {
    const r = await connection.operatorService.listSearchAttributes({ namespace });
    existing = new Set(Object.keys(r.customAttributes ?? {}));
  } catch {
    existing = new Set();
  }
  const missing = Object.entries(SEARCH_ATTRIBUTES).filter(([name]) => !existing.has(name));
  if (missing.length === 0) return [];
  const searchAttributes = Object.fromEntries(missing.map(([name, type]) => [name, INDEXED_VALUE_TYPE[type]]));
  try {
    await connection.operatorService.addSearchAttributes({ namespace, searchAttributes });
  } catch (err) {
    // ALREADY_EXISTS: another process registered them meanwhile.
    if (!/already exists/i.test(String(err))) throw err;
  }
  return missing.map(([name]) => name);
}
