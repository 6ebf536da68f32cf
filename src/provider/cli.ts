/**
 * Command line for the fault-injecting provider:
 *
 *   npm run provider -- --profile flaky --port 8787 --seed 42
 *   npm run provider -- stats --url http://127.0.0.1:8787
 *   npm run provider -- profile outage:model=gpt-4o,toMs=30000
 *   npm run provider -- profile ./my-profile.json
 *   npm run provider -- down gpt-4o-mini     (and: up <model>, reset)
 */
import { existsSync, readFileSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import { parse as parseYaml } from 'yaml';
import type { FaultProfile } from './faults.ts';
import { startProvider } from './server.ts';

const DEFAULT_URL = process.env['STEADFAST_SIMULATED_PROVIDER_URL'] ?? 'http://127.0.0.1:8787';

function num(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError('expected a non-negative number');
  return n;
}

/** A profile argument: a file (JSON or YAML) when one exists at that path, else a name or JSON text. */
function profileArg(v: string): string | FaultProfile {
  if (!v.trim().startsWith('{') && existsSync(v)) {
    const text = readFileSync(v, 'utf8');
    return (/\.ya?ml$/i.test(v) ? parseYaml(text) : JSON.parse(text)) as FaultProfile;
  }
  return v;
}

async function callAdmin(url: string, method: 'GET' | 'POST', path: string, body?: unknown): Promise<void> {
  const res = await fetch(new URL(path, url), {
    method,
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
  });
  const text = await res.text();
  let out: unknown = text;
  try {
    out = JSON.parse(text);
  } catch {
    // Not JSON: print as is.
  }
  console.log(typeof out === 'string' ? out : JSON.stringify(out, null, 2));
  if (!res.ok) process.exitCode = 1;
}

const program = new Command('provider').description('Steadfast fault-injecting LLM provider (OpenAI and Anthropic APIs)');

program
  .command('start', { isDefault: true })
  .description('start the provider and print its URL')
  .option('--profile <profile>', 'none | flaky | chaos | outage | ratelimit (name:key=value,...), JSON text or a JSON/YAML file', 'none')
  .option('--port <port>', 'port, 0 for a free one', num, 8787)
  .option('--host <host>', 'interface to bind', '127.0.0.1')
  .option('--seed <seed>', 'seed of every fault decision', num, 0)
  .option('--latency-scale <x>', 'multiplies model latencies; 0 removes latency', num, 1)
  .option('--api-key <key>', 'reject requests that carry another key (401)')
  .action(async (o: { profile: string; port: number; host: string; seed: number; latencyScale: number; apiKey?: string }) => {
    const p = await startProvider({
      profile: profileArg(o.profile),
      port: o.port,
      host: o.host,
      seed: o.seed,
      latencyScale: o.latencyScale,
      ...(o.apiKey !== undefined ? { apiKey: o.apiKey } : {}),
    });
    const profileName = p.stats().profile;
    // First line is stable and parsed by scripts: "listening on <url>".
    console.log(`steadfast provider listening on ${p.url} (profile ${profileName}, seed ${o.seed}${o.apiKey ? ', api key required' : ''})`);
    console.log(`  OpenAI baseURL:    ${p.url}/v1`);
    console.log(`  Anthropic baseURL: ${p.url}`);
    console.log(`  stats:             ${p.url}/admin/stats`);
    let closing = false;
    const stop = (signal: string): void => {
      if (closing) return;
      closing = true;
      console.log(`${signal}: closing provider`);
      void p.close().then(() => process.exit(0));
    };
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
  });

const urlOption = ['--url <url>', 'provider URL', DEFAULT_URL] as const;

program
  .command('stats')
  .description('print the counters')
  .option(...urlOption)
  .action((o: { url: string }) => callAdmin(o.url, 'GET', '/admin/stats'));

program
  .command('profile <profile>')
  .description('switch profile: a name (name:key=value,...), JSON text, or a JSON/YAML file')
  .option(...urlOption)
  .action((profile: string, o: { url: string }) => callAdmin(o.url, 'POST', '/admin/profile', profileArg(profile)));

program
  .command('down <model>')
  .description('take a model down (503 OpenAI / 529 Anthropic on every call)')
  .option(...urlOption)
  .action((model: string, o: { url: string }) => callAdmin(o.url, 'POST', `/admin/models/${encodeURIComponent(model)}/down`));

program
  .command('up <model>')
  .description('bring a model back up')
  .option(...urlOption)
  .action((model: string, o: { url: string }) => callAdmin(o.url, 'POST', `/admin/models/${encodeURIComponent(model)}/up`));

program
  .command('advance <ms>')
  .description("move the provider's clock forward by <ms> milliseconds (batches end, outage windows pass)")
  .option(...urlOption)
  .action((ms: string, o: { url: string }) => callAdmin(o.url, 'POST', '/admin/clock', { advanceMs: Number(ms) }));

program
  .command('reset')
  .description('clear counters, attempt memory and rate-limit buckets')
  .option(...urlOption)
  .action((o: { url: string }) => callAdmin(o.url, 'POST', '/admin/reset'));

try {
  await program.parseAsync(process.argv);
} catch (err) {
  console.error(`provider: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
