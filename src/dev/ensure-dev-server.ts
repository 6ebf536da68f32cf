/** Starts the local Temporal dev server in the background when none answers (demo and `steadfast run`). */
import { spawn } from 'node:child_process';
import { mkdirSync, openSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isLocal, temporalReachable } from '../client/client.ts';
import type { Config } from '../common/config.ts';

/**
 * Makes sure a Temporal server answers: when none does at a local address, starts
 * `npm run dev-server` in the background (it outlives this process, so the Web UI
 * stays up) with its log in data/dev-server.log.
 */
export async function ensureDevServer(config: Config, log: (msg: string) => void): Promise<'running' | 'started'> {
  if (await temporalReachable(config)) return 'running';
  if (!isLocal(config.temporalAddress) || config.temporal.tls) throw new Error(`no Temporal server answers at ${config.temporalAddress} (TEMPORAL_ADDRESS)`);
  mkdirSync('data', { recursive: true });
  const out = openSync('data/dev-server.log', 'a');
  const port = config.temporalAddress.split(':').pop() ?? '7233';
  const script = fileURLToPath(new URL('./dev-server.ts', import.meta.url));
  log(`starting the Temporal dev server on ${config.temporalAddress} (log: data/dev-server.log)`);
  spawn(process.execPath, [script], {
    detached: true,
    stdio: ['ignore', out, out],
    env: { ...process.env, TEMPORAL_PORT: port, TEMPORAL_UI_PORT: String(Number(port) + 1000) },
  }).unref();
  const deadline = Date.now() + 90_000;
  while (Date.now() < deadline) {
    if (await temporalReachable(config, 1_000)) return 'started';
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error('the Temporal dev server did not come up within 90 s; see data/dev-server.log');
}
