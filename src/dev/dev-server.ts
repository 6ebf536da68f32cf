/**
 * `npm run dev-server`: the Temporal dev server on localhost:7233, Web UI on
 * :8233, state persisted in ./data/temporal.db (a restart keeps running
 * workflows), with Steadfast's search attributes registered. TEMPORAL_PORT and
 * TEMPORAL_UI_PORT move it (the UI default follows the port: port + 1000).
 */
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { SEARCH_ATTRIBUTES } from '../shared/search-attributes.ts';
import { temporalCliPath } from './temporal-tools.ts';
import { helpRequested } from '../common/usage.ts';

export interface DevServerOptions {
  port?: number;
  uiPort?: number;
  dbFile?: string;
  namespace?: string;
  logLevel?: string;
}

/** The arguments of `temporal server start-dev` for Steadfast. */
export function devServerArgs(o: DevServerOptions = {}): string[] {
  const args = ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(o.port ?? 7233), '--ui-port', String(o.uiPort ?? 8233)];
  args.push('--db-filename', o.dbFile ?? 'data/temporal.db', '--namespace', o.namespace ?? 'default');
  // WAL raises the single-connection SQLite store's throughput (TEMPORAL.md).
  args.push('--sqlite-pragma', 'journal_mode=wal', '--sqlite-pragma', 'synchronous=normal', '--log-level', o.logLevel ?? 'warn');
  // One task-queue partition: the dev server is one host, and with the default four a new
  // workflow's first task waits to be forwarded to a partition with a poller (about +0.07 on
  // the 1 s throughput ratio in docs/benchmarks.md).
  args.push('--dynamic-config-value', 'matching.numTaskqueueReadPartitions=1', '--dynamic-config-value', 'matching.numTaskqueueWritePartitions=1');
  for (const [name, type] of Object.entries(SEARCH_ATTRIBUTES)) args.push('--search-attribute', `${name}=${type}`);
  return args;
}

const USAGE = `usage: npm run dev-server   (node src/dev/dev-server.ts)
  Runs \`temporal server start-dev\` on 127.0.0.1 with Steadfast's search attributes, state in data/temporal.db.
  TEMPORAL_PORT   gRPC port (default 7233)
  TEMPORAL_UI_PORT  Web UI port (default TEMPORAL_PORT + 1000, i.e. 8233)
  Point workers and the CLI at it with TEMPORAL_ADDRESS=localhost:<TEMPORAL_PORT>; their Web UI links
  follow (TEMPORAL_UI_URL overrides).`;

async function main(): Promise<void> {
  if (helpRequested(process.argv.slice(2))) {
    console.log(USAGE);
    return;
  }
  const cli = temporalCliPath();
  if (!cli) {
    console.error('dev-server: no `temporal` CLI found. Run `bash scripts/setup.sh` (or ./sf dev-server), or set TEMPORAL_CLI.');
    process.exit(1);
  }
  mkdirSync('data', { recursive: true });
  const port = Number(process.env.TEMPORAL_PORT ?? 7233);
  const args = devServerArgs({ port, uiPort: Number(process.env.TEMPORAL_UI_PORT ?? port + 1000) });
  console.log(`dev-server: ${cli} ${args.join(' ')}`);
  const child = spawn(cli, args, { stdio: 'inherit' });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => child.kill(sig));
  child.on('exit', (code) => process.exit(code ?? 0));
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) void main();
