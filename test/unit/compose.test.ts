/**
 * There is no Docker engine here, so docker-compose.yml is checked as data: the
 * services the README promises, their wiring, and the Dockerfile's inputs.
 */
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig } from '../../src/common/config.ts';
import { METRICS, METRIC_NAMES } from '../../activities/metrics.ts';

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
    // The fault provider is an explicit, overridable switch (empty in .env: the vendors answer).
    expect(env.STEADFAST_SIMULATED_PROVIDER_URL).toBe('${STEADFAST_SIMULATED_PROVIDER_URL-http://provider:8787}');
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
    expect(dockerfile).toMatch(/CMD \["node", "src\/worker\/worker\.ts"\]/);
  });
});

describe('observability in docker-compose.yml (Prometheus, Grafana, the dashboard)', () => {
  interface Mounted extends Service {
    volumes?: string[];
  }
  const svc = (name: string) => services[name] as Mounted | undefined;
  /** Host paths of a service's bind mounts, relative to the repo. */
  const binds = (name: string) => (svc(name)?.volumes ?? []).filter((v) => v.startsWith('./')).map((v) => ({ host: v.split(':')[0]!, container: v.split(':')[1]! }));

  it('adds Prometheus on 9090 and Grafana on 3000, mounting files that exist', () => {
    expect(svc('prometheus')?.image).toMatch(/^prom\/prometheus:v\d/);
    expect(svc('grafana')?.image).toMatch(/^grafana\/grafana:\d/);
    expect(svc('prometheus')?.ports).toContain('9090:9090');
    expect(svc('grafana')?.ports).toContain('3000:3000');
    for (const name of ['prometheus', 'grafana']) {
      expect(binds(name).length).toBeGreaterThan(0);
      for (const b of binds(name)) expect(existsSync(b.host), `${name} mounts ${b.host}`).toBe(true);
    }
    expect(binds('prometheus')).toContainEqual({ host: './deploy/prometheus.yml', container: '/etc/prometheus/prometheus.yml' });
  });

  it('scrapes every worker replica on the metrics port the workers are given', () => {
    const prom = parse(readFileSync('deploy/prometheus.yml', 'utf8')) as {
      scrape_configs: { job_name: string; dns_sd_configs?: { names: string[]; type: string; port: number }[] }[];
    };
    const job = prom.scrape_configs.find((j) => j.dns_sd_configs?.some((d) => d.names.includes('worker')));
    expect(job, 'a DNS service-discovery job for the worker service').toBeDefined();
    expect(job!.dns_sd_configs![0]).toMatchObject({ type: 'A', port: Number(services['worker']!.environment!.STEADFAST_METRICS_PORT) });
    expect(loadConfig({}).metricsPort).toBe(9464);
  });

  it('provisions the Prometheus datasource and the dashboard folder Grafana reads', () => {
    const ds = parse(readFileSync('deploy/grafana/provisioning/datasources/prometheus.yml', 'utf8')) as { datasources: { uid: string; type: string; url: string }[] };
    expect(ds.datasources[0]).toMatchObject({ type: 'prometheus', url: 'http://prometheus:9090', uid: 'steadfast-prometheus' });
    const dash = parse(readFileSync('deploy/grafana/provisioning/dashboards/steadfast.yml', 'utf8')) as { providers: { type: string; options: { path: string } }[] };
    const path = dash.providers[0]!.options.path;
    expect(binds('grafana')).toContainEqual({ host: './deploy/grafana/dashboards', container: path });
    expect(existsSync('deploy/grafana/dashboards/steadfast.json')).toBe(true);
  });

  describe('the dashboard', () => {
    interface Panel {
      type: string;
      title: string;
      datasource?: { uid: string };
      targets?: { expr: string }[];
      gridPos: { x: number; y: number; w: number; h: number };
    }
    const dashboard = JSON.parse(readFileSync('deploy/grafana/dashboards/steadfast.json', 'utf8')) as { uid: string; title: string; panels: Panel[] };
    const panels = dashboard.panels.filter((p) => p.type !== 'row');
    const exprs = panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
    const byTitle = (re: RegExp) =>
      panels
        .filter((p) => re.test(p.title))
        .flatMap((p) => (p.targets ?? []).map((t) => t.expr))
        .join('\n');

    it('has the dashboard panels, each querying the metric that answers it', () => {
      expect(byTitle(/^Error rate/)).toMatch(/steadfast_llm_calls_total\{outcome!="ok"\}.*\/.*steadfast_llm_calls_total/);
      expect(byTitle(/^Retries$/)).toContain('steadfast_llm_retries_total');
      expect(byTitle(/^Fallback use per tier$/)).toMatch(/by \(tier, provider\).*steadfast_llm_calls_total\{outcome="ok"\}/);
      expect(byTitle(/^Review queue/)).toContain('steadfast_review_queue');
      expect(byTitle(/^Item recovery time/)).toMatch(/histogram_quantile\(0\.5,.*steadfast_item_recovery_seconds_bucket[\s\S]*histogram_quantile\(0\.95,/);
      expect(byTitle(/^Cost \(total/)).toContain('steadfast_llm_cost_usd_sum');
      expect(byTitle(/^Cost per item/)).toMatch(/steadfast_item_cost_usd_sum.*\/.*steadfast_item_cost_usd_count/);
      expect(byTitle(/^LLM calls by outcome$/)).toMatch(/by \(outcome\).*steadfast_llm_calls_total/);
      expect(byTitle(/^Circuit state per provider$/)).toContain('steadfast_circuit_state');
      expect(new Set(panels.map((p) => p.title)).size).toBe(panels.length);
    });

    it('queries only metrics we emit, with labels they carry, from the provisioned datasource', () => {
      const known = new Map<string, readonly string[]>();
      for (const m of Object.values(METRICS)) {
        const names = m.type === 'histogram' ? [`${m.name}_sum`, `${m.name}_count`, `${m.name}_bucket`] : [m.name];
        for (const n of names) known.set(n, m.labels);
      }
      for (const expr of exprs) {
        const used = [...expr.matchAll(/\b(steadfast_[a-z_]+)/g)].map((m) => m[1]!);
        const sdk = [...expr.matchAll(/\b(temporal_[a-z_]+)/g)].map((m) => m[1]!);
        expect(used.length + sdk.length, expr).toBeGreaterThan(0);
        for (const n of used) expect(known.has(n), `${n} in ${expr} is one of activities/metrics.ts METRICS`).toBe(true);
        if (sdk.length > 0) continue;
        const allowed = new Set(['le', 'instance', 'job', ...used.flatMap((n) => known.get(n) ?? [])]);
        const labels = [...expr.matchAll(/by \(([^)]*)\)/g)]
          .flatMap((m) => m[1]!.split(',').map((s) => s.trim()))
          .concat([...expr.matchAll(/[{,]\s*([a-z_]+)\s*(?:!=|=~|!~|=)/g)].map((m) => m[1]!));
        for (const l of labels) expect(allowed.has(l), `label ${l} in ${expr}`).toBe(true);
      }
      for (const p of panels) expect(p.datasource?.uid, p.title).toBe('steadfast-prometheus');
      expect(
        METRIC_NAMES.filter((n) => !exprs.some((e) => e.includes(n))),
        'metrics no panel shows',
      ).toEqual([]);
    });

    it('lays the panels out on the 24-column grid without overlaps', () => {
      for (const p of dashboard.panels) expect(p.gridPos.x + p.gridPos.w, p.title).toBeLessThanOrEqual(24);
      const cells = new Set<string>();
      for (const p of dashboard.panels) {
        for (let x = p.gridPos.x; x < p.gridPos.x + p.gridPos.w; x++) {
          for (let y = p.gridPos.y; y < p.gridPos.y + p.gridPos.h; y++) {
            expect(cells.has(`${x},${y}`), `${p.title} overlaps at ${x},${y}`).toBe(false);
            cells.add(`${x},${y}`);
          }
        }
      }
    });
  });
});
