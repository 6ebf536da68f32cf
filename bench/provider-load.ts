/**
 * Load test of the fault-injecting provider: N chat requests over keep-alive
 * connections at a fixed concurrency, zero latency. Prints requests per second.
 *
 *   node bench/provider-load.ts [--requests 20000] [--concurrency 64] [--api openai|anthropic]
 *                               [--profile none] [--url http://127.0.0.1:8787]
 *
 * Without --url it starts the provider in a child process (so client and server
 * do not share one event loop) and stops it afterwards.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { Agent, request } from 'node:http';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '20000' },
    concurrency: { type: 'string', default: '64' },
    api: { type: 'string', default: 'openai' },
    profile: { type: 'string', default: 'none' },
    url: { type: 'string' },
  },
});
const total = Number(values.requests);
const concurrency = Number(values.concurrency);
const anthropic = values.api === 'anthropic';

async function startChild(): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, ['src/provider/cli.ts', '--port', '0', '--latency-scale', '0', '--profile', values.profile], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  while (!/listening on (\S+)/.test(out)) await once(child.stdout!, 'data');
  return { url: /listening on (\S+)/.exec(out)?.[1] ?? '', child };
}

const started = values.url ? undefined : await startChild();
const base = new URL(values.url ?? started?.url ?? '');
const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
const schema = { type: 'object', properties: { label: { type: 'string', enum: ['a', 'b'] }, summary: { type: 'string' } }, required: ['label', 'summary'] };

function body(i: number): string {
  const messages = [{ role: 'user', content: `Classify item ${i}: the parcel arrived late and the box was damaged.` }];
  return JSON.stringify(
    anthropic
      ? { model: 'claude-3-5-haiku-latest', max_tokens: 256, messages, tools: [{ name: 'emit', input_schema: schema }], tool_choice: { type: 'tool', name: 'emit' } }
      : { model: 'gpt-4o-mini', max_tokens: 256, messages, response_format: { type: 'json_schema', json_schema: { name: 'out', schema } } },
  );
}

function once1(i: number): Promise<number> {
  const payload = body(i);
  return new Promise((resolve) => {
    const req = request(
      {
        agent,
        host: base.hostname,
        port: base.port,
        method: 'POST',
        path: anthropic ? '/v1/messages' : '/v1/chat/completions',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), authorization: 'Bearer bench', 'x-api-key': 'bench' },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', () => resolve(-1));
    req.end(payload);
  });
}

const statuses: Record<string, number> = {};
const latencies: number[] = [];
let next = 0;
async function worker(): Promise<void> {
  while (next < total) {
    const i = next++;
    const t = performance.now();
    const status = await once1(i);
    latencies.push(performance.now() - t);
    statuses[status] = (statuses[status] ?? 0) + 1;
  }
}

// Warm up connections and the JIT before timing.
await Promise.all(Array.from({ length: concurrency }, (_, i) => once1(-1 - i)));
const t0 = performance.now();
await Promise.all(Array.from({ length: concurrency }, () => worker()));
const secs = (performance.now() - t0) / 1000;
latencies.sort((a, b) => a - b);
const pct = (q: number): string => (latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0).toFixed(2);
console.log(`provider load: ${total} requests, concurrency ${concurrency}, api ${values.api}, profile ${values.profile}`);
console.log(`  ${(total / secs).toFixed(0)} req/s in ${secs.toFixed(2)} s; latency p50 ${pct(0.5)} ms, p99 ${pct(0.99)} ms`);
console.log(`  statuses: ${JSON.stringify(statuses)}`);
agent.destroy();
started?.child.kill('SIGTERM');
