/**
 * What the entry points (worker, dev server, provider, demo) print for `--help`,
 * before anything starts: the shared text on how they reach Temporal.
 */

import { errorMessage } from '../shared/failures.ts';

/**
 * Runs an entry point: `--help` prints `usage` and starts nothing; otherwise `main` runs and a
 * failure prints `<name> failed: <message>` and exits 1.
 */
export function runEntry(name: string, usage: string, main: () => Promise<void>): void {
  if (helpRequested(process.argv.slice(2))) {
    console.log(usage);
    process.exit(0);
  }
  main().catch((err: unknown) => {
    console.error(`${name} failed:`, errorMessage(err));
    process.exit(1);
  });
}

/** True when the arguments ask for help. */
export function helpRequested(argv: readonly string[]): boolean {
  return argv.includes('--help') || argv.includes('-h');
}

/** The connection settings every entry point reads (./connection.ts), as the `temporal` CLI names them. */
export const CONNECTION_HELP = `Temporal connection (the same settings as the temporal CLI; flags > environment > temporal.toml profile):
  TEMPORAL_ADDRESS (localhost:7233), TEMPORAL_NAMESPACE (default), TEMPORAL_API_KEY,
  TEMPORAL_TLS=true, TEMPORAL_TLS_CLIENT_CERT_PATH, TEMPORAL_TLS_CLIENT_KEY_PATH, TEMPORAL_TLS_SERVER_CA_CERT_PATH,
  TEMPORAL_TLS_SERVER_NAME, TEMPORAL_PROFILE and TEMPORAL_CONFIG_FILE (default ~/.config/temporalio/temporal.toml),
  TEMPORAL_UI_URL (Web UI links; default: the dev server's, gRPC port + 1000). See docs/deploy.md.`;
