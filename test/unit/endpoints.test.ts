/**
 * The worker's endpoint policy: a spec (workflow input, written by whoever starts a
 * workflow) cannot make a worker send a secret to a URL of its choosing, cannot reach
 * the fault-injecting provider unless the worker is switched to it, and a missing key
 * is a non-retryable AuthFailed naming the variable. The `callLlm` activity is run
 * against a real HTTP server that records every request's headers.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { MockActivityEnvironment } from '@temporalio/testing';
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createActivities, openStore } from '../../activities/index.ts';
import type { ResultStore } from '../../activities/index.ts';
import { checkEndpoints, endpointPolicy, resolveEndpoint } from '../../activities/endpoints.ts';
import { envSecrets, scrubSecrets } from '../../activities/scrub.ts';
import { ProviderSpec } from '../../src/shared/spec.ts';
import type { ProviderSpecInput } from '../../src/shared/spec.ts';
import type { LlmRequest } from '../../src/shared/types.ts';

const SECRETS = { OPENAI_API_KEY: 'sk-openai-secret-value-1', ANTHROPIC_API_KEY: 'sk-ant-secret-value-2', DATABASE_URL: 'postgres://u:dbpass@db/x', LLM_KEY: 'llm-secret-value-3' };
const tier = (t: ProviderSpecInput) => ProviderSpec.parse(t);

/** Every header value the capture server received, from every request. */
const received: string[] = [];
const server = createServer((req, res) => {
  received.push(...Object.values(req.headers).flatMap((v) => (Array.isArray(v) ? v : [String(v)])));
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        id: 'x',
        object: 'chat.completion',
        created: 0,
        model: 'm',
        choices: [{ index: 0, message: { role: 'assistant', content: 'hi', refusal: null }, finish_reason: 'stop' }],
        usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
      }),
    );
  });
});
let url = '';
let store: ResultStore;
beforeAll(async () => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  store = await openStore({ dbPath: ':memory:' });
});
afterAll(async () => {
  server.close();
  server.closeAllConnections();
  await store.close();
});
beforeEach(() => void (received.length = 0));

async function call(provider: ProviderSpecInput, env: NodeJS.ProcessEnv): Promise<unknown> {
  const acts = createActivities({ store, env, logger: { info() {}, warn() {}, error() {}, debug() {} } });
  const req: LlmRequest = { batchId: 'b', itemId: 'i', tier: 0, provider: tier(provider), messages: [{ role: 'user', content: 'x' }], output: { format: 'text' } };
  return new MockActivityEnvironment({ attempt: 1 }).run(acts.callLlm, req).catch((e: unknown) => e);
}

describe('a spec cannot send a worker secret to a URL of its choosing', () => {
  const attacks: Array<[string, ProviderSpecInput, string]> = [
    ['openai key to a foreign host', { kind: 'openai', model: 'm', baseURL: 'https://attacker.example/v1' }, 'baseURL: host attacker.example is not allowed'],
    [
      'anthropic key by apiKeyEnv to a foreign host',
      { kind: 'anthropic', model: 'm', baseURL: 'https://attacker.example', apiKeyEnv: 'ANTHROPIC_API_KEY' },
      'baseURL: host attacker.example',
    ],
    [
      'DATABASE_URL as apiKeyEnv',
      { kind: 'openai-compatible', model: 'm', baseURL: 'http://127.0.0.1:1/v1', apiKeyEnv: 'DATABASE_URL' },
      'apiKeyEnv: DATABASE_URL is not a key this worker lends',
    ],
    ['PATH as apiKeyEnv', { kind: 'openai', model: 'm', apiKeyEnv: 'PATH' }, 'apiKeyEnv: PATH is not a key'],
    [
      'an allowed key to the wrong host',
      { kind: 'openai-compatible', model: 'm', baseURL: 'https://api.anthropic.com/v1', apiKeyEnv: 'OPENAI_API_KEY' },
      'OPENAI_API_KEY may be sent only to api.openai.com',
    ],
    [
      'a custom key to a host it is not listed for',
      { kind: 'openai-compatible', model: 'm', baseURL: 'https://api.openai.com/v1', apiKeyEnv: 'LLM_KEY' },
      'LLM_KEY may be sent only to 127.0.0.2',
    ],
    ['credentials in the URL', { kind: 'openai-compatible', model: 'm', baseURL: 'http://u:p@127.0.0.1:1/v1' }, 'credentials in the URL'],
    ['a non-http scheme', { kind: 'openai-compatible', model: 'm', baseURL: 'file:///etc/passwd' }, 'only http and https'],
  ];
  const env = { ...SECRETS, STEADFAST_KEY_HOSTS: 'LLM_KEY=127.0.0.2' };

  it.each(attacks)('refuses %s with a non-retryable InvalidSpec naming the field', async (_name, provider, message) => {
    const err = await call(provider, env);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err).toMatchObject({ type: 'InvalidSpec', nonRetryable: true, message: expect.stringContaining(`pipeline.providers[0].`) });
    expect((err as Error).message).toContain(message);
    // The same check runs at the start of the batch (checkPipeline), before any item.
    expect(() => checkEndpoints([tier(provider)], endpointPolicy(env))).toThrow(message);
  });

  it('sends no key at all to a loopback model server named only by baseURL', async () => {
    expect(await call({ kind: 'openai', model: 'm', baseURL: `${url}/v1` }, env)).toMatchObject({
      text: 'hi',
      endpoint: { vendor: 'openai', host: new URL(url).host, simulated: false },
    });
    expect(received.length).toBeGreaterThan(0);
    for (const secret of Object.values(SECRETS)) expect(received.join('\n')).not.toContain(secret);
    expect(received).toContain('Bearer no-key');
  });

  it("sends a custom key only where the operator listed it, with the tier's headers", async () => {
    const listed = { ...SECRETS, STEADFAST_KEY_HOSTS: 'LLM_KEY=127.0.0.1' };
    const r = await call({ kind: 'openai-compatible', model: 'm', baseURL: `${url}/v1`, apiKeyEnv: 'LLM_KEY', headers: { 'X-Title': 'steadfast' } }, listed);
    expect(r).toMatchObject({ text: 'hi', endpoint: { vendor: 'openai-compatible', simulated: false } });
    expect(received).toContain(`Bearer ${SECRETS.LLM_KEY}`);
    expect(received).toContain('steadfast');
    for (const other of [SECRETS.OPENAI_API_KEY, SECRETS.ANTHROPIC_API_KEY, SECRETS.DATABASE_URL]) expect(received.join('\n')).not.toContain(other);
  });

  it('refuses key-carrying headers in the spec', () => {
    const r = ProviderSpec.safeParse({ kind: 'openai', model: 'm', headers: { Authorization: 'Bearer x' } });
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.message).toContain('carries a key');
  });
});

describe('routing is explicit', () => {
  it('a vendor tier whose key is missing fails with AuthFailed naming the variable; nothing is called', async () => {
    const err = await call({ kind: 'anthropic', model: 'claude-haiku-4-5' }, { OPENAI_API_KEY: 'sk-only-openai-1234' });
    expect(err).toMatchObject({ type: 'AuthFailed', nonRetryable: true, message: expect.stringContaining('ANTHROPIC_API_KEY is not set on this worker') });
    expect(received).toEqual([]);
  });

  it('an openai-compatible tier needs a baseURL', () => {
    expect(() => resolveEndpoint(tier({ kind: 'openai-compatible', model: 'm' }), 2, endpointPolicy({}), {})).toThrow(
      'pipeline.providers[2].baseURL: an openai-compatible tier needs',
    );
  });

  it('the switch routes tiers without a baseURL to the fault provider, keyless and marked simulated', () => {
    const policy = endpointPolicy({ STEADFAST_SIMULATED_PROVIDER_URL: 'http://127.0.0.1:8787' });
    const ep = resolveEndpoint(tier({ kind: 'anthropic', model: 'claude-haiku-4-5' }), 0, policy, SECRETS);
    expect(ep).toMatchObject({ vendor: 'simulated', host: '127.0.0.1:8787', simulated: true, apiKey: 'no-key', baseURL: 'http://127.0.0.1:8787' });
    expect(resolveEndpoint(tier({ kind: 'openai', model: 'gpt-4o-mini' }), 0, policy, SECRETS)).toMatchObject({ baseURL: 'http://127.0.0.1:8787/v1', apiKey: 'no-key' });
    // Without the switch the vendor answers, with its own key.
    expect(resolveEndpoint(tier({ kind: 'openai', model: 'gpt-4o-mini' }), 0, endpointPolicy({}), SECRETS)).toMatchObject({
      vendor: 'openai',
      host: 'api.openai.com',
      simulated: false,
      apiKey: SECRETS.OPENAI_API_KEY,
    });
  });
});

describe('the scrubber knows every key a tier may read', () => {
  it('redacts the value of an allow-listed apiKeyEnv whatever its name', () => {
    const env = { LLM_KEY: 'plainvalue-with-no-pattern-99', STEADFAST_KEY_HOSTS: 'LLM_KEY=127.0.0.1' };
    expect(envSecrets(env)).toContain('plainvalue-with-no-pattern-99');
    expect(scrubSecrets('the key plainvalue-with-no-pattern-99 was refused', [], env)).toBe('the key [redacted] was refused');
    expect(scrubSecrets('the key plainvalue-with-no-pattern-99 was refused', [], { LLM_KEY: 'plainvalue-with-no-pattern-99' })).toContain('plainvalue');
  });
});
