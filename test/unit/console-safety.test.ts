/**
 * The review console is safe to expose: it refuses a non-loopback bind without
 * a token or a proxy header, every route needs the token (or the proxy's user),
 * a state-changing request needs the page's CSRF token and a same-origin
 * Origin, and the item details the page gets mask secret field values.
 * The routes are exercised through the Hono app itself (no Temporal call is
 * reached: each request here is refused before the data layer).
 */
import { Client } from '@temporalio/client';
import { describe, expect, it } from 'vitest';
import { createApp } from '../../src/console/app.ts';
import { loadConsoleConfig } from '../../src/console/config.ts';
import { ConsoleData } from '../../src/console/data.ts';
import { loadConfig } from '../../src/common/config.ts';
import { MASK, maskItem, reviewDetails } from '../../src/shared/review-details.ts';
import { PipelineSpec } from '../../src/shared/spec.ts';

const TOKEN = 'a-console-token-of-32-characters';

/** A client whose connection is never opened: these requests stop before any call. */
function data(): ConsoleData {
  return new ConsoleData(new Client({ namespace: 'default' }), loadConfig({}));
}

describe('console settings', () => {
  it('binds to loopback by default and refuses another host without a token or proxy header', () => {
    expect(loadConsoleConfig({})).toMatchObject({ host: '127.0.0.1', port: 8590, token: undefined });
    expect(() => loadConsoleConfig({ STEADFAST_CONSOLE_HOST: '0.0.0.0' })).toThrow(/STEADFAST_CONSOLE_HOST=0.0.0.0 is not a loopback address: set STEADFAST_CONSOLE_TOKEN/);
    expect(loadConsoleConfig({ STEADFAST_CONSOLE_HOST: '0.0.0.0', STEADFAST_CONSOLE_TOKEN: TOKEN }).token).toBe(TOKEN);
    expect(loadConsoleConfig({ STEADFAST_CONSOLE_HOST: '0.0.0.0', STEADFAST_CONSOLE_AUTH_HEADER: 'X-Forwarded-User' }).authHeader).toBe('x-forwarded-user');
    expect(() => loadConsoleConfig({ STEADFAST_CONSOLE_TOKEN: 'short' })).toThrow(/STEADFAST_CONSOLE_TOKEN: at least 16 characters/);
  });
});

describe('console access', () => {
  const app = createApp(data(), loadConsoleConfig({ STEADFAST_CONSOLE_TOKEN: TOKEN }));

  it('needs the token on every route, by header or by the cookie /login sets', async () => {
    expect((await app.request('/')).status).toBe(401);
    expect((await app.request('/fragments/queue')).status).toBe(401);
    expect((await app.request('/', { headers: { authorization: 'Bearer wrong-token-wrong-token' } })).status).toBe(401);
    expect((await app.request('/login?token=nope')).status).toBe(401);
    const login = await app.request(`/login?token=${TOKEN}`);
    expect(login.status).toBe(302);
    const cookie = login.headers.get('set-cookie') ?? '';
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    const page = await app.request('/', { headers: { cookie: cookie.split(';')[0]! } });
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('Steadfast review console');
    expect(html).not.toContain(TOKEN);
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
  });

  it('refuses a decision without the CSRF token or from another origin', async () => {
    const auth = { authorization: `Bearer ${TOKEN}` };
    const body = new URLSearchParams({ batch: 'b', item: 'x', reviewer: 'Mallory' });
    const noToken = await app.request('/decide/skip', {
      method: 'POST',
      body,
      headers: { ...auth, 'content-type': 'application/x-www-form-urlencoded', origin: 'http://localhost' },
    });
    expect(noToken.status).toBe(403);
    expect(await noToken.text()).toContain('CSRF');
    const html = await (await app.request('/', { headers: auth })).text();
    const csrf = /X-CSRF-Token&quot;:&quot;([\w-]+)&quot;|"X-CSRF-Token":"([\w-]+)"/.exec(html);
    const token = csrf?.[1] ?? csrf?.[2];
    expect(token).toBeTruthy();
    const crossSite = await app.request('http://localhost/decide/skip', {
      method: 'POST',
      body,
      headers: { ...auth, 'content-type': 'application/x-www-form-urlencoded', origin: 'https://evil.example', 'x-csrf-token': token! },
    });
    expect(crossSite.status).toBe(403);
  });

  it('takes the reviewer from the proxy header and refuses requests without it', async () => {
    const proxied = createApp(data(), loadConsoleConfig({ STEADFAST_CONSOLE_AUTH_HEADER: 'X-Forwarded-User' }));
    expect((await proxied.request('/')).status).toBe(401);
    const page = await proxied.request('/', { headers: { 'x-forwarded-user': 'ann@example.com' } });
    expect(page.status).toBe(200);
    expect(await page.text()).toMatch(/id="reviewer" name="reviewer" value="ann@example.com" readonly/);
  });
});

describe('reviewDetails masking', () => {
  const spec = PipelineSpec.parse({
    prompt: { template: 'Account {{account}}: {{text}}' },
    output: { format: 'json', schema: { type: 'object' } },
    providers: [{ kind: 'openai', model: 'gpt-4o-mini' }],
    secretFields: ['account'],
  });
  const item = { id: 'i1', account: 'SECRET-4242', text: 'my account SECRET-4242 was charged twice', long: 'x'.repeat(20_000) };

  it('masks secret fields in the input, the prompt, the output and the reasons, and bounds long texts', () => {
    expect(maskItem(item, spec.secretFields)['account']).toBe(MASK);
    const d = reviewDetails({
      batchId: 'b',
      item,
      spec,
      status: 'awaiting_review',
      attempts: [
        { tier: 0, tierName: 'openai:gpt-4o-mini', model: 'gpt-4o-mini', outcome: 'InvalidOutput', reason: 'echoed SECRET-4242', costUsd: 0.001, at: '2026-01-01T00:00:00Z' },
      ],
      attemptsDropped: 0,
      bestOutput: '{"note": "SECRET-4242"}',
      bestOutputErrors: ['$.category: Required'],
      lastError: { type: 'InvalidOutput', message: 'bad output for SECRET-4242' },
      retried: 0,
      review: null,
    });
    const json = JSON.stringify(d);
    expect(json).not.toContain('SECRET-4242');
    expect(d.messages[0]!.content).toContain(`Account ${MASK}: my account ${MASK} was charged twice`);
    expect(String(d.input['long']).length).toBeLessThan(8_100);
    expect(json.length).toBeLessThan(64_000);
  });
});
