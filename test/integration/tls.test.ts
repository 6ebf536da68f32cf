/**
 * mTLS end to end: the run's dev server behind a TLS proxy that requires a
 * client certificate from a throwaway CA. The worker and the steadfast CLI
 * connect with the settings of src/common/connection.ts (TEMPORAL_TLS_* and
 * the --tls-* flags) and run a batch; a certificate from another CA or a key
 * that does not match is one clear line, and no key material is printed.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NativeConnection } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { openStore } from '../../activities/index.ts';
import type { ResultStore } from '../../activities/index.ts';
import { loadConfig } from '../../src/common/config.ts';
import type { Config } from '../../src/common/config.ts';
import { explainConnectError } from '../../src/common/connection.ts';
import { startProvider } from '../../src/provider/index.ts';
import type { RunningProvider } from '../../src/provider/index.ts';
import { createWorker } from '../../src/worker/worker.ts';
import { makeTestPki, startTlsProxy } from '../support/tls.ts';
import type { TestPki, TlsProxy } from '../support/tls.ts';

const CLI = join(import.meta.dirname, '..', '..', 'src', 'client', 'cli.ts');
const EXAMPLES = join(import.meta.dirname, '..', '..', 'examples');

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

describe('mTLS to Temporal (worker and CLI)', () => {
  let pki: TestPki;
  let proxy: TlsProxy;
  let provider: RunningProvider;
  let store: ResultStore;
  let dir: string;
  let config: Config;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    pki = makeTestPki();
    proxy = await startTlsProxy(pki, inject('temporalAddress'));
    provider = await startProvider({ port: 0, profile: 'none', seed: 1, latencyScale: 0 });
    dir = mkdtempSync(join(tmpdir(), 'steadfast-tls-'));
    env = {
      ...process.env,
      TEMPORAL_ADDRESS: proxy.address,
      TEMPORAL_NAMESPACE: 'default',
      TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki.caCert,
      TEMPORAL_TLS_SERVER_NAME: 'localhost',
      TEMPORAL_CONFIG_FILE: '',
      TEMPORAL_PROFILE: '',
      STEADFAST_TASK_QUEUE: `tls-${Date.now().toString(36)}`,
      STEADFAST_DB_PATH: join(dir, 'results.db'),
      STEADFAST_SIMULATED_PROVIDER_URL: provider.url,
      DATABASE_URL: '',
    };
    // The worker takes its certificate from the environment, as in a Kubernetes pod.
    config = loadConfig({ ...env, TEMPORAL_TLS_CLIENT_CERT_PATH: pki.clientCert, TEMPORAL_TLS_CLIENT_KEY_PATH: pki.clientKey });
    store = await openStore({ databaseUrl: undefined, dbPath: config.dbPath });
  });
  afterAll(async () => {
    await store?.close();
    await provider?.close();
    await proxy?.close();
    pki?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** The CLI as users run it; the certificate comes from the --tls-* flags, like the temporal CLI's. */
  function cli(args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<CliResult> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [CLI, ...args], { cwd: dir, env: { ...env, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
  }

  it('connects the worker and the CLI over mTLS and runs a batch', async () => {
    expect(config.temporal).toMatchObject({ address: proxy.address, tls: true, clientCert: true, apiKey: false });
    const connection = await NativeConnection.connect(config.temporal.connectionOptions);
    const worker = await createWorker({
      connection,
      config,
      deps: { store, simulatedProviderUrl: provider.url },
      workflowBundle: { codePath: inject('workflowBundlePath') },
      overrides: { shutdownGraceTime: '1 s' },
    });
    const before = proxy.authorized.length;
    const run = await worker.runUntil(() =>
      cli([
        '--tls-cert-path',
        pki.clientCert,
        '--tls-key-path',
        pki.clientKey,
        '--tls-ca-path',
        pki.caCert,
        'run',
        join(EXAMPLES, 'items.jsonl'),
        '--pipeline',
        join(EXAMPLES, 'pipeline.json'),
        '--batch-id',
        'tls-batch',
      ]),
    );
    await connection.close();
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('batch tls-batch started');
    expect(await store.count('tls-batch')).toBeGreaterThan(0);
    // Every session through the proxy presented our client certificate.
    expect(proxy.authorized.length).toBeGreaterThan(before);
    expect(new Set(proxy.authorized)).toEqual(new Set(['steadfast-worker']));
  });

  it('a certificate from another CA is one clear line, without key material', async () => {
    const r = await cli(['--tls-cert-path', pki.rogueCert, '--tls-key-path', pki.rogueKey, '--tls-ca-path', pki.caCert, 'status', 'tls-batch']);
    expect(r.code).toBe(1);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      new RegExp(
        `^cannot connect to Temporal at ${proxy.address.replace(/\./g, '\\.')} over TLS: certificate rejected: the server refused the client certificate \\(.*\\); check --tls-cert-path and --tls-key-path`,
      ),
    );
    expect(r.stderr).not.toContain('PRIVATE KEY');
    expect(r.stderr).not.toContain(readFileSync(pki.rogueKey, 'utf8').split('\n')[1]!);
    expect(proxy.rejected).toBeGreaterThan(0);
  });

  it('a key that does not match the certificate is one clear line', async () => {
    const r = await cli(['--tls-cert-path', pki.clientCert, '--tls-key-path', pki.rogueKey, '--tls-ca-path', pki.caCert, 'status', 'tls-batch']);
    expect(r.code).not.toBe(0);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toBe(
      `cannot connect to Temporal at ${proxy.address} over TLS: certificate rejected: the client key does not match the client certificate; check --tls-cert-path and --tls-key-path (TEMPORAL_TLS_CLIENT_CERT_PATH, TEMPORAL_TLS_CLIENT_KEY_PATH)`,
    );
    expect(r.stderr).not.toContain(readFileSync(pki.rogueKey, 'utf8').split('\n')[1]!);
  });

  it('the worker side: a rejected certificate is a credential error, not a retry', async () => {
    const rogue = loadConfig({ ...env, TEMPORAL_TLS_CLIENT_CERT_PATH: pki.rogueCert, TEMPORAL_TLS_CLIENT_KEY_PATH: pki.rogueKey });
    const err = await NativeConnection.connect(rogue.temporal.connectionOptions).then(
      async (c) => {
        await c.close();
        return null;
      },
      (e: unknown) => e,
    );
    expect(err, 'the proxy must refuse the rogue certificate').not.toBeNull();
    const why = await explainConnectError(rogue.temporal, err);
    expect(why.credentials).toBe(true);
    expect(why.message).toMatch(/^cannot connect to Temporal at .* over TLS: certificate rejected: the server refused the client certificate \(.*\); check --tls-cert-path/);
  });

  it('a missing certificate file names the file and the variable', () => {
    expect(() => loadConfig({ ...env, TEMPORAL_TLS_CLIENT_CERT_PATH: join(dir, 'nope.pem'), TEMPORAL_TLS_CLIENT_KEY_PATH: pki.clientKey })).toThrow(
      `invalid Temporal connection settings: cannot read ${join(dir, 'nope.pem')} (TEMPORAL_TLS_CLIENT_CERT_PATH): no such file`,
    );
  });
});
