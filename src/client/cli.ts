/**
 * `npx steadfast ...` (or `npm run cli -- ...`): start, watch, review and export
 * batches. Exit codes: 0 ok, 1 the operation failed, 2 bad input or usage
 * (nothing was started or sent). See docs/cli.md.
 */
import { readFileSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Client } from '@temporalio/client';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import type { Config } from '../common/config.ts';
import { configFrom, connect, processIo } from './cli/context.ts';
import { closeClient } from './client.ts';
import type { GlobalOptions, Io } from './cli/context.ts';
import { CliError, ExitCode, failure, messageOf, usageError } from './cli/errors.ts';
import { EXPORT_FORMATS, exportBatch, exportMerged } from './cli/export.ts';
import { mergedRows, rerunCommand } from './cli/rerun.ts';
import type { RerunOptions } from './cli/rerun.ts';
import type { ExportFormat } from './cli/export.ts';
import { cancelCommand } from './cli/cancel.ts';
import type { CancelOptions } from './cli/cancel.ts';
import { resumeCommand, reviewBulkCommand, reviewDecisionCommand, reviewListCommand } from './cli/review.ts';
import type { BulkOptions, DecisionOptions } from './cli/review.ts';
import { runCommand } from './cli/run.ts';
import { statusCommand } from './cli/status.ts';

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

function positiveSeconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('a number of seconds above 0');
  return n;
}

/** Runs a command that needs a client, closing the connection after it. */
async function withClient(config: Config, fn: (client: Client) => Promise<ExitCode>): Promise<ExitCode> {
  const client = await connect(config);
  try {
    return await fn(client);
  } finally {
    await closeClient(client);
  }
}

/**
 * The commander program. `done` receives each command's exit code; commander's
 * own errors (unknown option, missing argument) are thrown as CommanderError.
 */
export function buildProgram(io: Io, done: (code: ExitCode) => void, signal?: AbortSignal): Command {
  const program = new Command('steadfast');
  const config = (cmd: Command) => configFrom(cmd.optsWithGlobals<GlobalOptions>());

  program
    .description('Run LLM batch pipelines on Temporal: start, watch, review and export batches.')
    .version(version(), '-V, --version')
    .option('--address <host:port>', 'Temporal frontend address (default: env TEMPORAL_ADDRESS, the profile, or localhost:7233)')
    .option('--namespace <name>', 'Temporal namespace (default: env TEMPORAL_NAMESPACE, the profile, or default)')
    .option('--api-key <key>', 'Temporal API key, e.g. for Temporal Cloud; implies TLS (default: env TEMPORAL_API_KEY)')
    .option('--tls-cert-path <path>', 'client certificate for mTLS (default: env TEMPORAL_TLS_CLIENT_CERT_PATH)')
    .option('--tls-key-path <path>', 'client private key for mTLS (default: env TEMPORAL_TLS_CLIENT_KEY_PATH)')
    .option('--tls-ca-path <path>', 'CA certificate that signed the server certificate (default: env TEMPORAL_TLS_SERVER_CA_CERT_PATH)')
    .option('--tls-server-name <name>', 'server name to verify in its certificate (default: env TEMPORAL_TLS_SERVER_NAME)')
    .option('--profile <name>', 'profile of temporal.toml, shared with the temporal CLI (default: env TEMPORAL_PROFILE or default)')
    .option('--env <name>', 'same as --profile')
    .option('--config-file <path>', 'temporal.toml to read (default: env TEMPORAL_CONFIG_FILE or ~/.config/temporalio/temporal.toml)')
    .option('--task-queue <name>', 'task queue of the workers (default: env STEADFAST_TASK_QUEUE or steadfast)')
    .showHelpAfterError('(add --help for usage)')
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .exitOverride();

  program
    .command('run')
    .description('validate the items and the spec, start a batch, and show its progress until it is done')
    .argument('<items>', 'items file: .jsonl (one JSON object per line) or .csv (header row; must have an "id" column)')
    .requiredOption('-p, --pipeline <spec>', 'pipeline spec: .yaml, .yml or .json')
    .option('--batch-id <id>', 'batch id, also the workflow id (default: <spec name>-<yyyymmddThhmmss>)')
    .option('-d, --detach', 'start the batch and return at once')
    .option('--source-by-reference', 'pass the items as a JSONL path the workers read (automatic above 2,000 items or 1 MiB)')
    .action(async (items: string, opts: { pipeline: string; batchId?: string; detach?: boolean; sourceByReference?: boolean }, cmd: Command) => {
      done(await runCommand(items, opts, config(cmd), io, signal));
    });

  program
    .command('status')
    .description("a batch's progress while it runs, its summary once done (or <batchId>/<itemId> for one item)")
    .argument('<batchId>')
    .option('--json', 'print the raw status as JSON')
    .action(async (batchId: string, opts: { json?: boolean }, cmd: Command) => {
      const c = config(cmd);
      done(await withClient(c, (client) => statusCommand(client, c, batchId, opts, io)));
    });

  const review = program.command('review').description('items that failed for good and wait for a human');
  review
    .command('list')
    .description('the items awaiting review: item id, error type, how long it waits, reason')
    .argument('<batchId>')
    .option('--json', 'print the list as JSON')
    .action(async (batchId: string, opts: { json?: boolean }, cmd: Command) => {
      const c = config(cmd);
      done(await withClient(c, (client) => reviewListCommand(client, c, batchId, opts, io)));
    });

  const decision = (name: 'approve' | 'retry' | 'skip', description: string, extra: (cmd: Command) => Command) => {
    const cmd = review.command(name).description(description).argument('<batchId>').argument('[itemId]', 'the item; leave it out with --all');
    extra(cmd)
      .option('--note <text>', 'a note kept with the decision')
      .option('--all', 'decide every item awaiting review (narrow it with --error-type and --since)')
      .option('--error-type <type>', 'with --all: only items waiting because of this error type, e.g. AuthFailed')
      .option('--since <age>', 'with --all: only items waiting at least this long (30m, 2h, 1d) or since this ISO time or earlier')
      .option('--step <name>', 'with --all: only items waiting at this step of a multi-step pipeline')
      .option('--signal', 'send the review signal (fire-and-forget) instead of the Update that confirms or rejects')
      .addOption(new Option('--timeout <seconds>', 'how long to wait for the batch to accept or reject').default(30).argParser(positiveSeconds))
      .action(async (batchId: string, itemId: string | undefined, opts: DecisionOptions & BulkOptions, c2: Command) => {
        const c = config(c2);
        if (opts.all) {
          if (itemId !== undefined) throw usageError(`give an item id or --all, not both`);
          done(await withClient(c, (client) => reviewBulkCommand(client, c, batchId, name, opts, io)));
          return;
        }
        if (itemId === undefined) throw usageError(`review ${name} needs an item id, or --all for every item awaiting review`);
        if (opts.errorType !== undefined || opts.since !== undefined || opts.step !== undefined) throw usageError('--error-type, --since and --step go with --all');
        done(await withClient(c, (client) => reviewDecisionCommand(client, c, batchId, itemId, name, opts, io)));
      });
  };
  decision('approve', 'accept the item: the supplied output, or the best one available', (c) =>
    c.option('--output <file>', "output to accept: a .json file is parsed (validated against the pipeline's schema), any other file is text"),
  );
  decision('retry', 'run the item again, optionally with edited fields or from another provider tier', (c) =>
    c.option('--input <file.json>', "JSON object of fields that replace the item's (the id stays)").option('--provider <tier>', 'tier name (or index) to start from'),
  );
  decision('skip', 'give the item up; it stays in the dead-letter list', (c) => c);

  program
    .command('resume')
    .description('resume a batch paused after too many consecutive failures, or raise its budget (--budget) and resume it')
    .argument('<batchId>')
    .option('--budget <usd>', "raise the batch's budget to this many USD (a batch paused at its budget resumes)")
    .action(async (batchId: string, opts: { budget?: string }, cmd: Command) => {
      const c = config(cmd);
      done(await withClient(c, (client) => resumeCommand(client, c, batchId, io, opts)));
    });

  program
    .command('cancel')
    .description('cancel a batch: nothing new starts, running items stop, their rows say cancelled (the hard stop is temporal workflow terminate)')
    .argument('<batchId>')
    .option('--reason <text>', 'why; kept in the summary and the alert')
    .option('--rollback <mode>', "rows the batch wrote: none (keep), mark (status rolled_back) or delete; default: the spec's batch.rollbackOnCancel")
    .option('--wait', 'wait until every item stopped and print the summary')
    .addOption(new Option('--timeout <seconds>', 'how long to wait for the batch to accept the cancel').default(30).argParser(positiveSeconds))
    .action(async (batchId: string, opts: CancelOptions, cmd: Command) => {
      const c = config(cmd);
      done(await withClient(c, (client) => cancelCommand(client, c, batchId, opts, io)));
    });

  program
    .command('console')
    .description('serve the review console (web page): batches, the review queue, decisions; env STEADFAST_CONSOLE_HOST/PORT/TOKEN')
    .option('--host <host>', 'interface to bind (default: env STEADFAST_CONSOLE_HOST or 127.0.0.1)')
    .option('--port <port>', 'port (default: env STEADFAST_CONSOLE_PORT or 8590)')
    .action(async (opts: { host?: string; port?: string }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const { runConsole } = await import('../console/server.ts');
      const env = {
        ...process.env,
        ...(g.address ? { TEMPORAL_ADDRESS: g.address } : {}),
        ...(g.namespace ? { TEMPORAL_NAMESPACE: g.namespace } : {}),
        ...(g.taskQueue ? { STEADFAST_TASK_QUEUE: g.taskQueue } : {}),
        ...(opts.host ? { STEADFAST_CONSOLE_HOST: opts.host } : {}),
        ...(opts.port ? { STEADFAST_CONSOLE_PORT: opts.port } : {}),
      };
      try {
        await runConsole(env, (line) => io.err(`${line}\n`));
      } catch (err) {
        // Bad settings (the environment, a non-loopback host without a token) are usage errors.
        const msg = messageOf(err);
        throw /invalid environment|STEADFAST_CONSOLE_/.test(msg) ? usageError(msg) : failure(`cannot start the console: ${msg}`);
      }
      // Serves until SIGINT/SIGTERM; the process stays up on the server's handle.
      await new Promise<never>(() => undefined);
    });

  program
    .command('export')
    .description("a batch's results from the results store, or with --failed its dead-letter list")
    .argument('<batchId>')
    .addOption(new Option('-f, --format <format>', 'output format').choices(EXPORT_FORMATS).default('jsonl'))
    .option('--failed', 'the dead-letter list: failed, awaiting-review and skipped items with their error context')
    .option('-o, --out <file>', 'write to a file instead of stdout')
    .option('--step <name>', "multi-step pipelines: one step's results per item (status, tier, model, attempts, tokens, cost, output)")
    .option('--merged', 'one row per item over the batch and all its re-runs: the latest good result, else the latest row, with fromBatch')
    .action(async (batchId: string, opts: { format: ExportFormat; failed?: boolean; out?: string; merged?: boolean; step?: string }, cmd: Command) => {
      const c = config(cmd);
      if (opts.step !== undefined && (opts.failed || opts.merged)) throw usageError('--step goes with neither --failed nor --merged');
      if (opts.merged) {
        if (opts.failed) throw usageError('--merged and --failed do not go together');
        await withClient(c, async (client) => {
          const { rows, batches } = await mergedRows(client, c, batchId);
          io.err(`merged ${batches.length} batch${batches.length === 1 ? '' : 'es'}: ${batches.join(', ')}\n`);
          await exportMerged(rows, opts.format, opts.out, (msg) => io.err(`${msg}\n`));
          return ExitCode.Ok;
        });
        done(ExitCode.Ok);
        return;
      }
      await exportBatch(c, batchId, { format: opts.format, failed: Boolean(opts.failed), out: opts.out, step: opts.step }, (msg) => io.err(`${msg}\n`));
      done(ExitCode.Ok);
    });

  program
    .command('rerun')
    .description('start a new batch of the items that did not succeed (or only --failed, --skipped, or --ids), linked by ParentBatch; then export --merged')
    .argument('<batchId>')
    .option('--failed', 'only items that ended without a decision (failed, cancelled, rolled back)')
    .option('--skipped', 'items that were skipped')
    .option('--ids <file>', 'items whose ids are in this file, one per line')
    .option('-p, --pipeline <spec>', "a fixed pipeline spec (.json or .yaml); default: the original batch's")
    .option('--batch-id <id>', 'id of the new batch (default: <root>-rerun-<time>)')
    .action(async (batchId: string, opts: RerunOptions, cmd: Command) => {
      const c = config(cmd);
      done(await withClient(c, (client) => rerunCommand(client, c, batchId, opts, io)));
    });

  return program;
}

/** Parses `argv` (process.argv form), runs the command and returns the exit code; never throws. */
export async function main(argv: string[] = process.argv, io: Io = processIo(), signal?: AbortSignal): Promise<number> {
  let code: number = ExitCode.Ok;
  const program = buildProgram(io, (c) => (code = c), signal);
  try {
    await program.parseAsync(argv);
    return code;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version exit 0; every other parse error is a usage error.
      return err.exitCode === 0 ? ExitCode.Ok : ExitCode.Usage;
    }
    if (err instanceof CliError) {
      for (const line of err.lines) io.err(`${line}\n`);
      return err.exitCode;
    }
    io.err(`error: ${messageOf(err)}\n`);
    if (process.env.STEADFAST_DEBUG && err instanceof Error && err.stack) io.err(`${err.stack}\n`);
    else io.err('(set STEADFAST_DEBUG=1 for the stack trace)\n');
    return ExitCode.Failed;
  }
}

/** Entry point for `node src/client/cli.ts` and bin/steadfast.js. */
export async function runMain(): Promise<void> {
  // `steadfast export ... | head` closes the pipe early: that is not an error.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(ExitCode.Ok);
    throw err;
  });
  const code = await main(process.argv, processIo());
  // Let stdout drain, then exit: an idle gRPC channel must not keep the process alive.
  await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
  process.exit(code);
}

function isEntry(): boolean {
  if (!process.argv[1]) return false;
  try {
    return realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntry()) await runMain();
