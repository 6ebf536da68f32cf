/**
 * What every command shares: the configuration (env, overridden by the global
 * flags), a client connection with a clear error when Temporal is not there,
 * the batch's handle, and where output goes.
 */
import { WorkflowNotFoundError } from '@temporalio/client';
import type { Client, WorkflowExecutionDescription, WorkflowHandle } from '@temporalio/client';
import { connectClient } from '../client.ts';
import { loadConfig } from '../../common/config.ts';
import type { Config } from '../../common/config.ts';
import { explainConnectError } from '../../common/connection.ts';
import type { ConnectionFlags } from '../../common/connection.ts';
import { failure, messageOf, usageError } from './errors.ts';

/** How users invoke the CLI; used in the hints it prints (on PATH after `source .tools/env.sh`). */
export const PROG = 'steadfast';

/** The global flags; each overrides its environment variable (the connection ones as the `temporal` CLI names them). */
export interface GlobalOptions extends ConnectionFlags {
  taskQueue?: string;
  /** `--env`: the temporal.toml profile, like `--profile`. */
  env?: string;
}

/** The configuration from the environment with the global flags applied. */
export function configFrom(opts: GlobalOptions, env: NodeJS.ProcessEnv = process.env): Config {
  try {
    const { taskQueue, env: envName, ...connection } = opts;
    return loadConfig({ ...env, STEADFAST_TASK_QUEUE: taskQueue ?? env.STEADFAST_TASK_QUEUE }, { ...connection, profile: connection.profile ?? envName });
  } catch (err) {
    throw usageError(messageOf(err));
  }
}

/** Where a command writes: results to `out`, notes and errors to `err`. */
export interface Io {
  out(text: string): void;
  err(text: string): void;
  /** True when stdout is a terminal (live progress bar instead of plain lines). */
  tty: boolean;
  columns(): number;
}

/** The process's stdout and stderr. */
export function processIo(): Io {
  return {
    out: (text) => void process.stdout.write(text),
    err: (text) => void process.stderr.write(text),
    tty: Boolean(process.stdout.isTTY),
    columns: () => process.stdout.columns || 100,
  };
}

/** Connects to Temporal; an unreachable server is one line naming the address and the fix. */
export async function connect(config: Config): Promise<Client> {
  try {
    return await connectClient(config);
  } catch (err) {
    const line = (await explainConnectError(config.temporal, err)).message;
    // A local plaintext address with nothing listening: say how to start one.
    const hint =
      !config.temporal.tls && /unavailable|connect|refused|deadline|timed? ?out/i.test(line)
        ? '; start a dev server with: npm run dev-server (or set TEMPORAL_ADDRESS / --address)'
        : '';
    throw failure(`${line}${hint}`);
  }
}

/** Runs a client call with a deadline, so a missing worker or server is an error instead of a hang. */
export function withDeadline<T>(client: Client, ms: number, fn: () => Promise<T>): Promise<T> {
  return client.withDeadline(Date.now() + ms, fn);
}

/** A batch's handle and its description; an unknown id is a one-line error. */
export async function describeBatch(client: Client, config: Config, batchId: string): Promise<{ handle: WorkflowHandle; desc: WorkflowExecutionDescription }> {
  const handle = client.workflow.getHandle(batchId);
  try {
    const desc = await withDeadline(client, 10_000, () => handle.describe());
    return { handle, desc };
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw failure(`no batch ${JSON.stringify(batchId)} in namespace ${config.namespace}`);
    throw failure(`cannot describe batch ${batchId}: ${messageOf(err)}`);
  }
}

/** {@link describeBatch} for the commands that act on batches only: another workflow type is an error. */
export async function describeBatchOnly(client: Client, config: Config, batchId: string): Promise<{ handle: WorkflowHandle; desc: WorkflowExecutionDescription }> {
  const found = await describeBatch(client, config, batchId);
  if (found.desc.type !== 'batchPipeline') throw failure(`${batchId} is a ${found.desc.type} workflow, not a batch`);
  return found;
}

/** The failure's message, walking to the root cause (e.g. the ApplicationFailure under a WorkflowFailedError). */
export function rootCause(err: unknown): { type: string | null; message: string } {
  let cur: unknown = err;
  for (let depth = 0; depth < 10; depth += 1) {
    const next = cur instanceof Error ? (cur as Error & { cause?: unknown }).cause : undefined;
    if (!(next instanceof Error)) break;
    cur = next;
  }
  const type = cur instanceof Error && 'type' in cur && typeof cur.type === 'string' ? cur.type : null;
  return { type, message: messageOf(cur) };
}
