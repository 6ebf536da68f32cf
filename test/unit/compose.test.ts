/**
 * There is no Docker engine here, so docker-compose.yml is checked as data: the
 * services the README promises, their wiring, and the Dockerfile's inputs.
 */
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

interface Service {
  image?: string;
  build?: string;
  command?: string[] | string;
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }>;
  ports?: string[];
}
const compose = parse(readFileSync('docker-compose.yml', 'utf8'), { merge: true }) as { services: Record<string, Service> };
const services = compose.services;

describe('docker-compose.yml', () => {
  it('runs a PostgreSQL-backed Temporal, its Web UI, results PostgreSQL, the provider and workers', () => {
    expect(services['temporal']?.image).toMatch(/^temporalio\/auto-setup:\d/);
    expect(services['temporal']?.environment).toMatchObject({ DB: 'postgres12', POSTGRES_SEEDS: 'temporal-db' });
    expect(services['temporal-db']?.image).toMatch(/^postgres:\d+/);
    expect(services['temporal-ui']?.image).toMatch(/^temporalio\/ui:\d/);
    expect(services['temporal-ui']?.environment?.TEMPORAL_ADDRESS).toBe('temporal:7233');
    expect(services['results-db']?.image).toMatch(/^postgres:\d+/);
    expect(services['worker']?.build).toBe('.');
    expect(services['provider']?.build).toBe('.');
  });

  it('points the workers at the compose services, not at localhost', () => {
    const env = services['worker']!.environment!;
    expect(env.TEMPORAL_ADDRESS).toBe('temporal:7233');
    expect(env.STEADFAST_TASK_QUEUE).toBe('steadfast');
    expect(new URL(env.DATABASE_URL!).hostname).toBe('results-db');
    expect(new URL(env.STEADFAST_PROVIDER_URL!).hostname).toBe('provider');
    // Keys come from the user's shell; none is written into the file.
    expect(env.OPENAI_API_KEY).toBe('${OPENAI_API_KEY:-}');
  });

  it('has consistent dependencies and no port used twice', () => {
    for (const [name, svc] of Object.entries(services)) {
      for (const dep of Object.keys(svc.depends_on ?? {})) expect(services, `${name} depends on ${dep}`).toHaveProperty(dep);
    }
    const hostPorts = Object.values(services).flatMap((s) => (s.ports ?? []).map((p) => p.split(':')[0]));
    expect(new Set(hostPorts).size).toBe(hostPorts.length);
  });

  it('registers the search attributes the workflows upsert', () => {
    const cmd = JSON.stringify(services['temporal-setup']?.command);
    for (const sa of ['BatchId', 'ItemStatus', 'Provider']) expect(cmd).toContain(sa);
  });

  it('builds from a Dockerfile whose inputs exist and that runs the worker', () => {
    const dockerfile = readFileSync('Dockerfile', 'utf8');
    for (const m of dockerfile.matchAll(/^COPY (\S+)/gm)) {
      for (const f of m[1]!.split(' ')) expect(existsSync(f), `Dockerfile copies ${f}`).toBe(true);
    }
    expect(dockerfile).toMatch(/^FROM node:24/m);
    expect(dockerfile).toContain('npm ci --omit=dev');
    expect(dockerfile).toMatch(/CMD \["node", "src\/worker\.ts"\]/);
  });
});
