import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createActivities, openStore } from '../../activities/index.ts';
import type { ResultStore } from '../../activities/index.ts';
import { slackMessage } from '../../activities/notify.ts';
import { FailureType } from '../../src/shared/failures.ts';

interface Received {
  path: string;
  contentType: string | undefined;
  body: unknown;
}

/** A webhook receiver whose next answers are scripted (default 200). */
let received: Received[] = [];
let answers: { status: number; headers?: Record<string, string> }[] = [];
const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    received.push({ path: req.url ?? '', contentType: req.headers['content-type'], body: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
    const a = answers.shift() ?? { status: 200 };
    res.writeHead(a.status, a.headers ?? {});
    res.end(a.status === 200 ? 'ok' : 'no_service');
  });
});
let base = '';
let store: ResultStore;

beforeAll(async () => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  store = await openStore({ dbPath: ':memory:' });
});
afterAll(async () => {
  server.close();
  await store.close();
});
beforeEach(() => {
  received = [];
  answers = [];
});

/** An activity environment whose logger only prints errors (failures here are expected). */
const quiet = (): MockActivityEnvironment => new MockActivityEnvironment({}, { logger: new DefaultLogger('ERROR') });

const alert = { batchId: 'b-1', kind: 'error_rate' as const, text: 'Error rate 7.5% is above 5%', fields: { failed: 3, total: 40 } };

async function failureOf(p: Promise<unknown>): Promise<ApplicationFailure> {
  try {
    await p;
  } catch (err: unknown) {
    if (err instanceof ApplicationFailure) return err;
    throw err;
  }
  throw new Error('expected a failure');
}

describe('notify', () => {
  it('POSTs Slack-compatible JSON to the webhook', async () => {
    const acts = createActivities({ store, simulatedProviderUrl: base, env: {} });
    const r = await quiet().run(acts.notify, { ...alert, webhookUrl: `${base}/services/T0/B0/secret` });
    expect(r).toEqual({ delivered: true });
    expect(received).toHaveLength(1);
    expect(received[0]!.path).toBe('/services/T0/B0/secret');
    expect(received[0]!.contentType).toBe('application/json');
    expect(received[0]!.body).toEqual(slackMessage(alert));
    expect(received[0]!.body).toMatchObject({
      text: '[steadfast] Error rate above threshold: batch b-1\nError rate 7.5% is above 5%',
      blocks: [
        { type: 'header' },
        { type: 'section', text: { type: 'mrkdwn', text: 'Error rate 7.5% is above 5%' } },
        {
          type: 'section',
          fields: [
            { type: 'mrkdwn', text: '*failed*\n3' },
            { type: 'mrkdwn', text: '*total*\n40' },
          ],
        },
      ],
    });
  });

  it('finds the webhook in the named env var, then the default', async () => {
    const acts = createActivities({ store, simulatedProviderUrl: base, env: { ALERT_HOOK: `${base}/from-env` }, webhookUrl: `${base}/default` });
    const env = quiet();
    await env.run(acts.notify, { ...alert, webhookUrlEnv: 'ALERT_HOOK' });
    await env.run(acts.notify, alert);
    expect(received.map((r) => r.path)).toEqual(['/from-env', '/default']);
  });

  it('returns delivered:false when no webhook is configured', async () => {
    const acts = createActivities({ store, simulatedProviderUrl: base, env: {} });
    expect(await quiet().run(acts.notify, alert)).toEqual({ delivered: false });
    expect(received).toHaveLength(0);
  });

  it('throws a retryable WebhookFailed on an HTTP error, without the URL', async () => {
    answers = [{ status: 500 }];
    const acts = createActivities({ store, simulatedProviderUrl: base, env: {} });
    const f = await failureOf(quiet().run(acts.notify, { ...alert, webhookUrl: `${base}/services/T0/B0/secret` }));
    expect(f.type).toBe(FailureType.WebhookFailed);
    expect(f.nonRetryable).toBe(false);
    expect(f.message).toContain('answered 500');
    expect(f.message).not.toContain('secret');
  });

  it('honours Retry-After on a 429', async () => {
    answers = [{ status: 429, headers: { 'retry-after': '3' } }];
    const acts = createActivities({ store, simulatedProviderUrl: base, env: {} });
    const f = await failureOf(quiet().run(acts.notify, { ...alert, webhookUrl: `${base}/hook` }));
    expect(f.type).toBe(FailureType.WebhookFailed);
    expect(f.nextRetryDelay).toBe(3000);
  });

  it('throws a retryable WebhookFailed when the receiver is unreachable', async () => {
    const acts = createActivities({ store, simulatedProviderUrl: base, env: {} });
    const f = await failureOf(quiet().run(acts.notify, { ...alert, webhookUrl: 'http://127.0.0.1:1/hook' }));
    expect(f.type).toBe(FailureType.WebhookFailed);
    expect(f.nonRetryable).toBe(false);
    expect(f.message).toContain('unreachable');
  });

  it('fails for good on a malformed webhook URL', async () => {
    const acts = createActivities({ store, simulatedProviderUrl: base, env: {} });
    const f = await failureOf(quiet().run(acts.notify, { ...alert, webhookUrl: 'not a url' }));
    expect(f.type).toBe(FailureType.WebhookFailed);
    expect(f.nonRetryable).toBe(true);
  });
});
