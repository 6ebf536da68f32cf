/**
 * The CLI's exit codes and its one-line error type. A user error (bad file, bad
 * flag, unknown batch) is a `CliError` and prints as one line, never a stack.
 */

/** Exit codes: documented in docs/cli.md. */
export const ExitCode = {
  Ok: 0,
  /** The operation failed: the batch failed, a review was rejected, Temporal is unreachable. */
  Failed: 1,
  /** Bad input or usage: nothing was started or sent. */
  Usage: 2,
  /** Interrupted by Ctrl-C while watching (the batch keeps running). */
  Interrupted: 130,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** An error meant for the user: `lines` are printed as they are, then the process exits with `exitCode`. */
export class CliError extends Error {
  readonly exitCode: ExitCode;
  readonly lines: string[];

  constructor(exitCode: ExitCode, lines: string | string[]) {
    const all = typeof lines === 'string' ? [lines] : lines;
    super(all.join('\n'));
    this.name = 'CliError';
    this.exitCode = exitCode;
    this.lines = all;
  }
}

/** Bad input or usage (exit 2). */
export function usageError(lines: string | string[]): CliError {
  return new CliError(ExitCode.Usage, lines);
}

/** The operation failed (exit 1). */
export function failure(lines: string | string[]): CliError {
  return new CliError(ExitCode.Failed, lines);
}

/** The message of anything thrown, normalised once. */
export function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  if (typeof err === 'string') return err;
  try {
    return JSON.stringify(err);
  } catch {
    return String(err);
  }
}
