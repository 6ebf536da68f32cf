import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { promisify } from 'node:util';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { expectedAnswer, startProvider } from '../../src/provider/index.ts';
import type { FaultProfile, JsonSchema, RunningProvider } from '../../src/provider/index.ts';

const Out = z.object({ label: z.enum(['a', 'b']), summary: z.string() });
const schema = z.toJSONSchema(Out) as JsonSchema;

async function post(p: RunningProvider, text: string, headers: Record<string, string> = {}, model = 'gpt-4o-mini'): Promise<string> {
  try {
    const res = await fetch(`${p.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ model, messages: [{ role: 'user', content: text }] }),
    });
    await res.arrayBuffer();
    return `${res.status}:${res.headers.get('x-steadfast-fault') ?? '-'}`;
  } catch {
    return 'connection-error';
  }
}

async function adminPost(p: RunningProvider, path: string, body?: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${p.url}${path}`, { method: 'POST', ...(body === undefined ? {} : { body }) });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

const MIX: FaultProfile = {
  name: 'mix',
  faults: [
    { kind: 'rate_limit', rate: 0.15 },
    { kind: 'server_error', rate: 0.15 },
    { kind: 'overloaded', rate: 0.1 },
    { kind: 'bad_json', rate: 0.1 },
    { kind: 'reset', rate: 0.05 },
  ],
};

async function faultSequence(seed: number): Promise<string[]> {
  const p = await startProvider({ profile: MIX, seed, latencyScale: 0 });
  const out: string[] = [];
  try {
    for (let i = 0; i < 30; i++) for (let attempt = 0; attempt < 3; attempt++) out.push(await post(p, `item ${i}`));
  } finally {
    await p.close();
  }
  return out;
}

describe('seeded faults over HTTP', () => {
  it('replays the same fault sequence for the same seed, another for another seed', async () => {
    const a = await faultSequence(7);
    expect(await faultSequence(7)).toEqual(a);
    expect(await faultSequence(8)).not.toEqual(a);
    // Non-sticky: the third attempt of every identity is clean.
    expect(a.filter((_, i) => i % 3 === 2).every((s) => s === '200:-')).toBe(true);
  });

  it('heals every item within three attempts under chaos (official client)', async () => {
    const p = await startProvider({ profile: 'chaos', seed: 11, latencyScale: 0 });
    const client = new OpenAI({ baseURL: `${p.url}/v1`, apiKey: 'test', maxRetries: 0, timeout: 250 });
    const attemptsUsed: number[] = [];
    try {
      for (let i = 0; i < 30; i++) {
        const text = `Label item ${i}`;
        let value: unknown;
        for (let attempt = 1; attempt <= 3 && value === undefined; attempt++) {
          try {
            const r = await client.chat.completions.create({
              model: 'gpt-4o-mini',
              messages: [{ role: 'user', content: text }],
              response_format: { type: 'json_schema', json_schema: { name: 'out', schema } },
            });
            const c = r.choices[0];
            const parsed = c?.finish_reason === 'stop' ? Out.safeParse(JSON.parse(c.message.content ?? 'null')) : undefined;
            if (parsed?.success) value = parsed.data;
          } catch {
            // an injected fault: try again
          }
          if (value !== undefined) attemptsUsed.push(attempt);
        }
        expect(value).toEqual(expectedAnswer(schema, text));
      }
      expect(attemptsUsed.some((n) => n > 1)).toBe(true);
    } finally {
      await p.close();
    }
  });

  it('forces faults per attempt with a prompt directive', async () => {
    const p = await startProvider({ latencyScale: 0 });
    try {
      const text = 'item 5 [[fault:rate_limit,server_error,none]]';
      expect([await post(p, text), await post(p, text), await post(p, text), await post(p, text)]).toEqual(['429:rate_limit', '500:server_error', '200:-', '200:-']);
      expect(await post(p, 'x', { 'x-steadfast-fault': 'nonsense' })).toBe('400:-');
    } finally {
      await p.close();
    }
  });
});

describe('profiles over HTTP', () => {
  it('ratelimit: a real bucket with remaining and reset headers', async () => {
    const t = 1_000_000;
    const p = await startProvider({ profile: 'ratelimit:rpm=5,tpm=100000', latencyScale: 0, now: () => t });
    const oa = new OpenAI({ baseURL: `${p.url}/v1`, apiKey: 'test', maxRetries: 0 });
    try {
      for (let i = 0; i < 5; i++) {
        const { response } = await oa.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: `q${i}` }] }).withResponse();
        expect(response.headers.get('x-ratelimit-remaining-requests')).toBe(String(4 - i));
        expect(response.headers.get('x-ratelimit-limit-requests')).toBe('5');
      }
      const err = await oa.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'q5' }] }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.RateLimitError);
      const h = (err as InstanceType<typeof OpenAI.RateLimitError>).headers;
      expect(h.get('retry-after-ms')).toBe('12000');
      expect(h.get('x-ratelimit-reset-requests')).toBe('1m0s');
      const an = new Anthropic({ baseURL: p.url, apiKey: 'test', maxRetries: 0 });
      const { response } = await an.messages.create({ model: 'claude-3-5-haiku-latest', max_tokens: 10, messages: [{ role: 'user', content: 'x' }] }).withResponse();
      expect(response.headers.get('anthropic-ratelimit-requests-remaining')).toBe('4');
      expect(response.headers.get('anthropic-ratelimit-tokens-limit')).toBe('100000');
    } finally {
      await p.close();
    }
  });

  it('capacity: requests past the concurrency are shed at once with a 429, the rest answered', async () => {
    const p = await startProvider({ profile: 'capacity:concurrent=3', latencyScale: 20 });
    const oa = new OpenAI({ baseURL: `${p.url}/v1`, apiKey: 'test', maxRetries: 0 });
    try {
      const calls = Array.from({ length: 6 }, (_, i) =>
        oa.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: `c${i}` }] }).then(
          () => 'ok',
          (e: unknown) => e,
        ),
      );
      const results = await Promise.all(calls);
      const shed = results.filter((r) => r instanceof OpenAI.RateLimitError);
      expect(results.filter((r) => r === 'ok')).toHaveLength(3);
      expect(shed).toHaveLength(3);
      expect((shed[0] as InstanceType<typeof OpenAI.RateLimitError>).headers.get('retry-after-ms')).toBe('1000');
      expect(p.stats().byFault['capacity']).toBe(3);
    } finally {
      await p.close();
    }
  });

  it('outage: the model is down for its window, on both APIs', async () => {
    let t = 5_000_000;
    const p = await startProvider({ profile: 'outage:model=gpt-4o-mini,toMs=60000', latencyScale: 0, now: () => t });
    const an = new Anthropic({ baseURL: p.url, apiKey: 'test', maxRetries: 0 });
    try {
      expect(await post(p, 'a')).toBe('503:overloaded');
      expect(await post(p, 'a', {}, 'gpt-4o')).toBe('200:-');
      const err = await an.messages.create({ model: 'gpt-4o-mini', max_tokens: 5, messages: [{ role: 'user', content: 'a' }] }).catch((e: unknown) => e);
      expect(err).toMatchObject({ status: 529, type: 'overloaded_error' });
      t += 60_000;
      expect(await post(p, 'a')).toBe('200:-');
    } finally {
      await p.close();
    }
  });
});

describe('admin', () => {
  it('switches profiles, takes models down and up, counts and resets', async () => {
    const p = await startProvider({ latencyScale: 0 });
    try {
      expect(await post(p, 'a')).toBe('200:-');
      expect((await adminPost(p, '/admin/models/gpt-4o-mini/down')).json).toEqual({ ok: true, model: 'gpt-4o-mini', down: true });
      expect(await post(p, 'a')).toBe('503:overloaded');
      await adminPost(p, '/admin/models/gpt-4o-mini/up');
      expect(await post(p, 'a')).toBe('200:-');
      expect((await adminPost(p, '/admin/profile', 'flaky')).json['ok']).toBe(true);
      expect((await adminPost(p, '/admin/profile', JSON.stringify({ name: 'x', faults: [{ kind: 'server_error', rate: 1 }] }))).status).toBe(200);
      expect(await post(p, 'b')).toBe('500:server_error');
      expect((await adminPost(p, '/admin/profile', '{"faults":[{"kind":"boom"}]}')).status).toBe(400);
      const stats = (await (await fetch(`${p.url}/admin/stats`)).json()) as ReturnType<RunningProvider['stats']>;
      expect(stats).toMatchObject({ profile: 'x', requests: 4, successes: 2, byStatus: { '200': 2, '503': 1, '500': 1 }, byModel: { 'gpt-4o-mini': 4 } });
      expect(stats.identities).toEqual({ seen: 2, succeeded: 1, succeededMoreThanOnce: 1 });
      await adminPost(p, '/admin/reset');
      expect(p.stats()).toMatchObject({ requests: 0, identities: { seen: 0 } });
    } finally {
      await p.close();
    }
  });

  it('close() releases hanging sockets at once', async () => {
    const p = await startProvider({ latencyScale: 0 });
    const pending = post(p, 'x', { 'x-steadfast-fault': 'hang' });
    while (p.stats().openHangs === 0) await new Promise((r) => setTimeout(r, 5));
    const t0 = Date.now();
    await p.close();
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(await pending).toBe('connection-error');
  });

  it('the CLI starts, answers admin subcommands and stops on SIGTERM', async () => {
    const cli = 'src/provider/cli.ts';
    const child = spawn(process.execPath, [cli, '--port', '0', '--profile', 'flaky', '--seed', '5', '--latency-scale', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    while (!/listening on (\S+)/.test(out)) await once(child.stdout, 'data');
    const url = /listening on (\S+)/.exec(out)?.[1] ?? '';
    const { stdout } = await promisify(execFile)(process.execPath, [cli, 'stats', '--url', url]);
    expect(JSON.parse(stdout)).toMatchObject({ profile: 'flaky', seed: 5, requests: 0 });
    child.kill('SIGTERM');
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code).toBe(0);
  });
});
