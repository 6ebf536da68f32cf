/**
 * The set-up script docker-compose.yml runs in temporalio/admin-tools, run here
 * with the same `temporal` CLI against the test run's dev server: it creates a
 * namespace, waits for it, registers the search attributes, and fails loudly
 * (non-zero, with the reason) when the server never answers.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { describe, expect, inject, it } from 'vitest';
import { temporalCliPath } from '../../src/dev/temporal-tools.ts';
import { SEARCH_ATTRIBUTES } from '../../src/shared/search-attributes.ts';

const run = promisify(execFile);
const script = 'deploy/compose/temporal-register.sh';

function setupEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const cli = temporalCliPath();
  if (!cli) throw new Error('the temporal CLI from scripts/setup.sh');
  return { PATH: process.env.PATH, HOME: process.env.HOME, TEMPORAL: cli, TEMPORAL_CONFIG_FILE: '/dev/null', ...extra };
}

describe('deploy/compose/temporal-register.sh', () => {
  it('creates the namespace, waits for it and registers every search attribute the workflows upsert; a second run changes nothing', async () => {
    const ns = `compose-${randomUUID().slice(0, 8)}`;
    const env = setupEnv({ TEMPORAL_ADDRESS: inject('temporalAddress'), TEMPORAL_NAMESPACE: ns, STEADFAST_SETUP_TIMEOUT: '30' });
    const first = await run('sh', [script], { env });
    expect(first.stderr).toContain(`creating namespace ${ns}`);
    expect(first.stderr).toContain(`namespace ${ns} ready with search attributes ${Object.keys(SEARCH_ATTRIBUTES).join(', ')}`);
    expect(first.stderr).toContain('registering search attribute ReviewSince (Datetime)');
    const { stdout } = await run(env.TEMPORAL!, ['operator', 'search-attribute', 'list', '--address', inject('temporalAddress'), '--namespace', ns, '--output', 'json'], { env });
    for (const sa of Object.keys(SEARCH_ATTRIBUTES)) expect(stdout).toContain(`"${sa}"`);
    const second = await run('sh', [script], { env });
    expect(second.stderr).not.toContain('creating namespace');
    expect(second.stderr.match(/already registered/g)).toHaveLength(Object.keys(SEARCH_ATTRIBUTES).length);
  }, 60_000);

  it('exits non-zero with the reason when the frontend never answers', async () => {
    const env = setupEnv({ TEMPORAL_ADDRESS: '127.0.0.1:1', STEADFAST_SETUP_TIMEOUT: '2' });
    const err = await run('sh', [script], { env }).then(
      () => null,
      (e: unknown) => e as { code: number; stderr: string },
    );
    expect(err, 'the script must fail').not.toBeNull();
    expect(err!.code).not.toBe(0);
    expect(err!.stderr).toContain('gave up after 2 s waiting for the frontend at 127.0.0.1:1');
  }, 30_000);
});
