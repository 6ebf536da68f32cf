/**
 * `steadfast console` (`npm run console`, `./sf console`): serves the review
 * console on STEADFAST_CONSOLE_HOST:STEADFAST_CONSOLE_PORT (loopback by default).
 * A client-side process like the CLI: it talks to Temporal (and reads claim-checked
 * payloads from the results store), and sends
 * decisions through the batch's `reviewItem` Update.
 */
import { realpathSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { serve } from '@hono/node-server';
import { Client, Connection } from '@temporalio/client';
import { clientCodec } from '../common/claim-check.ts';
import type { ClaimCheckCodec } from '../common/claim-check.ts';
import { loadConfig } from '../common/config.ts';
import type { Config } from '../common/config.ts';
import { createApp } from './app.ts';
import { loadConsoleConfig } from './config.ts';
import type { ConsoleConfig } from './config.ts';
import { ConsoleData } from './data.ts';

/** A running console. */
export interface RunningConsole {
  url: string;
  close(): Promise<void>;
}

/** Options of {@link startConsole}. */
export interface StartConsoleOptions {
  config: Config;
  console: ConsoleConfig;
  /** A client to use (tests); otherwise one is connected from `config` and closed with the console. */
  client?: Client;
}

/** Starts the console's HTTP server; resolves once it listens. */
export async function startConsole(opts: StartConsoleOptions): Promise<RunningConsole> {
  let client = opts.client;
  let connection: Connection | null = null;
  let codec: ClaimCheckCodec | null = null;
  if (!client) {
    const config = opts.config;
    connection = await Connection.connect({ ...config.temporal.connectionOptions, connectTimeout: 5_000 });
    codec = clientCodec(config, () => import('../../activities/store.ts').then((m) => m.openStore(config)));
    client = new Client({ connection, namespace: config.namespace, dataConverter: { payloadCodecs: [codec] } });
  }
  const decoder = codec;
  const app = createApp(
    new ConsoleData(client, opts.config),
    opts.console,
    decoder ? { decode: (payloads) => decoder.decode(payloads), origins: opts.console.codecOrigins } : undefined,
  );
  const server = await new Promise<ReturnType<typeof serve>>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, hostname: opts.console.host, port: opts.console.port }, () => resolve(s));
    s.once('error', reject);
  });
  const { port } = server.address() as AddressInfo;
  const host = opts.console.host.includes(':') && !opts.console.host.startsWith('[') ? `[${opts.console.host}]` : opts.console.host;
  return {
    url: `http://${host}:${port}`,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        (server as { closeAllConnections?: () => void }).closeAllConnections?.();
      });
      await connection?.close();
      await codec?.close();
    },
  };
}

/** Entry point: reads the environment, starts, and stops on SIGINT/SIGTERM. */
export async function runConsole(env: NodeJS.ProcessEnv = process.env, log: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): Promise<RunningConsole> {
  const config = loadConfig(env);
  const consoleConfig = loadConsoleConfig(env);
  const running = await startConsole({ config, console: consoleConfig });
  log(`steadfast console: ${running.url} (Temporal ${config.temporalAddress}, namespace ${config.namespace}, task queue ${config.taskQueue})`);
  if (consoleConfig.token) log(`sign in once with ${running.url}/login?token=<STEADFAST_CONSOLE_TOKEN>`);
  const stop = () => void running.close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  return running;
}

function isEntry(): boolean {
  try {
    return Boolean(process.argv[1]) && realpathSync(process.argv[1]!) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntry()) {
  try {
    await runConsole();
  } catch (err) {
    process.stderr.write(`steadfast console: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  }
}
