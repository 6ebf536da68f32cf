/**
 * src/common/connection.ts: the Temporal connection from flags, environment and
 * temporal.toml, through @temporalio/envconfig. The profile file is written by
 * the real `temporal` CLI (`temporal config set`), so both read the same file.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultUiUrl, loadConfig } from '../../src/common/config.ts';
import { describeConnection, loadConnection } from '../../src/common/connection.ts';
import { temporalCliPath } from '../../src/dev/temporal-tools.ts';

const SECRET = 'sk-test-abcdef0123456789';

describe('loadConnection', () => {
  let dir: string;
  let toml: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'steadfast-envconfig-'));
    toml = join(dir, 'temporal.toml');
    const cli = temporalCliPath();
    expect(cli, 'the temporal CLI from scripts/setup.sh').toBeTruthy();
    const set = (profile: string, prop: string, value: string) =>
      execFileSync(cli!, ['config', 'set', '--config-file', toml, '--profile', profile, '--prop', prop, '--value', value]);
    set('default', 'address', 'default-host:7233');
    set('prod', 'address', 'prod.a1b2c.tmprl.cloud:7233');
    set('prod', 'namespace', 'prod.a1b2c');
    set('prod', 'api_key', SECRET);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('defaults to the local dev server, plaintext', () => {
    const c = loadConnection({ HOME: dir });
    expect(c).toMatchObject({ address: 'localhost:7233', namespace: 'default', tls: false, clientCert: false, apiKey: false });
    expect(c.connectionOptions).toMatchObject({ address: 'localhost:7233' });
  });

  it('reads an empty config file (or /dev/null) as none: the environment and the defaults apply', () => {
    expect(loadConnection({ TEMPORAL_CONFIG_FILE: '/dev/null', TEMPORAL_ADDRESS: '127.0.0.1:7999' })).toMatchObject({
      address: '127.0.0.1:7999',
      namespace: 'default',
      tls: false,
    });
    expect(loadConnection({ TEMPORAL_CONFIG_FILE: '/dev/null' }).address).toBe('localhost:7233');
  });

  it('reads the profile the temporal CLI wrote; an API key implies TLS', () => {
    const c = loadConnection({ TEMPORAL_CONFIG_FILE: toml, TEMPORAL_PROFILE: 'prod' });
    expect(c).toMatchObject({ address: 'prod.a1b2c.tmprl.cloud:7233', namespace: 'prod.a1b2c', tls: true, apiKey: true, profile: 'prod' });
    expect(c.connectionOptions.apiKey).toBe(SECRET);
    expect(loadConnection({ TEMPORAL_CONFIG_FILE: toml }).address).toBe('default-host:7233');
  });

  it('flags beat the environment, which beats the profile', () => {
    const env = { TEMPORAL_CONFIG_FILE: toml, TEMPORAL_PROFILE: 'prod', TEMPORAL_NAMESPACE: 'from-env' };
    expect(loadConnection(env)).toMatchObject({ address: 'prod.a1b2c.tmprl.cloud:7233', namespace: 'from-env' });
    expect(loadConnection(env, { namespace: 'from-flag', address: 'flag-host:7233' })).toMatchObject({ address: 'flag-host:7233', namespace: 'from-flag' });
    expect(loadConnection({ TEMPORAL_CONFIG_FILE: toml }, { profile: 'prod' }).namespace).toBe('prod.a1b2c');
    // An empty variable is unset (compose writes KEY: ${KEY:-}).
    expect(loadConnection({ TEMPORAL_ADDRESS: '', TEMPORAL_CONFIG_FILE: toml }).address).toBe('default-host:7233');
  });

  it('names what is wrong: an unknown profile, a missing file, half an mTLS pair', () => {
    expect(() => loadConnection({ TEMPORAL_CONFIG_FILE: toml, TEMPORAL_PROFILE: 'nope' })).toThrow("invalid Temporal connection settings: Profile 'nope' not found in config data");
    expect(() => loadConnection({ TEMPORAL_CONFIG_FILE: join(dir, 'missing.toml') })).toThrow(
      `cannot read ${join(dir, 'missing.toml')} (TEMPORAL_CONFIG_FILE or --config-file): no such file`,
    );
    expect(() => loadConnection({ HOME: dir, TEMPORAL_TLS_CLIENT_CERT_PATH: toml })).toThrow(/mTLS needs both a client certificate .* and its key/);
  });

  it('describes the connection without the API key', () => {
    const c = loadConnection({ TEMPORAL_CONFIG_FILE: toml, TEMPORAL_PROFILE: 'prod' });
    expect(describeConnection(c)).toBe('prod.a1b2c.tmprl.cloud:7233 (namespace prod.a1b2c, TLS with API key, profile prod)');
    expect(JSON.stringify(describeConnection(c))).not.toContain(SECRET);
  });
});

describe('the Web UI URL', () => {
  it('follows the dev server port (7233 -> 8233), knows Temporal Cloud, and is unknown elsewhere', () => {
    expect(defaultUiUrl('localhost:7233')).toBe('http://localhost:8233');
    expect(defaultUiUrl('127.0.0.1:7433')).toBe('http://localhost:8433');
    expect(defaultUiUrl('prod.a1b2c.tmprl.cloud:7233')).toBe('https://cloud.temporal.io');
    expect(defaultUiUrl('temporal:7233')).toBeNull();
  });

  it('comes from TEMPORAL_UI_URL when set (compose serves it on :8080)', () => {
    expect(loadConfig({ HOME: '/nonexistent', TEMPORAL_ADDRESS: 'temporal:7233', TEMPORAL_UI_URL: 'http://127.0.0.1:8080/' }).uiUrl).toBe('http://127.0.0.1:8080');
    expect(loadConfig({ HOME: '/nonexistent' }).uiUrl).toBe('http://localhost:8233');
    expect(() => loadConfig({ HOME: '/nonexistent', TEMPORAL_UI_URL: 'not a url' })).toThrow(/TEMPORAL_UI_URL/);
  });
});
