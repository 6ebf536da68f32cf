/**
 * There is no Docker engine here, so docker-compose.yml is checked as data:
 * against the compose-spec JSON schema (test/fixtures/compose-spec.json, from
 * compose-spec/compose-spec), the upstream Temporal recipe (temporalio/server,
 * temporalio/admin-tools for the schemas and the set-up), healthchecks, ports
 * on loopback only, every variable the config loader reads wired, and the
 * Dockerfile's inputs. The set-up scripts themselves run in the cluster suite
 * and in test/integration/compose-setup.test.ts.
 */
import { existsSync, readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { FormatsPlugin } from 'ajv-formats';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig } from '../../src/common/config.ts';
import { SEARCH_ATTRIBUTES } from '../../src/shared/search-attributes.ts';
import { METRICS, METRIC_NAMES } from '../../activities/metrics.ts';

interface Healthcheck {
  test: string[] | string;
  interval?: string;
}
interface Service {
  image?: string;
  build?: string;
  command?: string[] | string;
  entrypoint?: string[] | string;
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }>;
  ports?: string[];
  volumes?: (string | { type: string; source: string; target: string; read_only?: boolean })[];
  healthcheck?: Healthcheck;
  restart?: string;
}
const text = readFileSync('docker-compose.yml', 'utf8');
const compose = parse(text, { merge: true }) as { services: Record<string, Service> };
const services = compose.services;
/** Services that run once and exit; the others stay up and need a healthcheck. */
const oneShots = Object.entries(services)
  .filter(([, s]) => s.restart === 'no')
  .map(([n]) => n);
const longRunning = Object.keys(services).filter((n) => !oneShots.includes(n));

/** The variables src/common/config.ts validates: the keys of its zod object. */
function configVariables(): string[] {
  const src = readFileSync('src/common/config.ts', 'utf8');
  return [...src.matchAll(/^\s+([A-Z][A-Z0-9_]+): z\b/gm)].map((m) => m[1]!);
}

describe('docker-compose.yml', () => {
  it('is valid under the compose specification', () => {
    const schema = JSON.parse(readFileSync('test/fixtures/compose-spec.json', 'utf8')) as Record<string, unknown>;
    const ajv = new Ajv({ allErrors: true, strict: false });
    // ajv-formats is CommonJS: its default export arrives wrapped under ESM.
    const addFormats = ((addFormatsModule as unknown as { default?: FormatsPlugin }).default ?? addFormatsModule) as FormatsPlugin;
    addFormats(ajv);
    const validate = ajv.compile({ ...schema, $schema: undefined });
    // Merge keys (`<<: *anchor`) resolved, as docker compose does before it validates.
    const ok = validate(parse(text, { merge: true }));
    expect(ajv.errorsText(validate.errors, { separator: '\n' })).toBe('No errors');
    expect(ok).toBe(true);
    // The schema rejects what it must: a typo in a service key.
    expect(validate({ services: { worker: { imagee: 'x' } } })).toBe(false);
  });

  it('runs Temporal on the upstream recipe: admin-tools sets up the schemas, then temporalio/server', () => {
    expect(text).not.toMatch(/auto-setup/);
    const version = /^temporalio\/server:(\d+\.\d+\.\d+)$/.exec(services['temporal']!.image!)?.[1];
    expect(version, 'temporalio/server pinned to a release').toBeDefined();
    expect(services['temporal-schema']?.image).toBe(`temporalio/admin-tools:${version}`);
    expect(services['temporal-register']?.image).toBe(`temporalio/admin-tools:${version}`);
    // The version scripts/cluster.sh builds from the Go module and the cluster suite runs.
    expect(readFileSync('scripts/cluster.sh', 'utf8')).toContain(`STEADFAST_CLUSTER_VERSION:-v${version}}`);
    expect(services['temporal']?.environment).toMatchObject({ DB: 'postgres12', POSTGRES_SEEDS: 'temporal-db', BIND_ON_IP: '0.0.0.0' });
    expect(services['temporal-schema']?.environment).toMatchObject({ DB: 'postgres12', POSTGRES_SEEDS: 'temporal-db' });
    expect(services['temporal']?.depends_on).toEqual({ 'temporal-schema': { condition: 'service_completed_successfully' } });
    expect(services['temporal-register']?.depends_on).toEqual({ temporal: { condition: 'service_healthy' } });
    const ui = /^temporalio\/ui:(\d+)\.(\d+)\.\d+$/.exec(services['temporal-ui']!.image!);
    expect(Number(ui?.[1]) * 1000 + Number(ui?.[2]), 'a current temporalio/ui (2.49 or later)').toBeGreaterThanOrEqual(2049);
    expect(services['temporal-ui']?.environment?.TEMPORAL_ADDRESS).toBe('temporal:7233');
    expect(services['temporal-db']?.image).toMatch(/^postgres:\d+/);
    expect(services['results-db']?.image).toMatch(/^postgres:\d+/);
    expect(services['worker']?.build).toBe('.');
    expect(services['provider']?.build).toBe('.');
  });

  it('pins every image to a version, never latest', () => {
    for (const [name, svc] of Object.entries(services)) {
      expect(svc.image ?? svc.build, `${name} has an image or a build`).toBeDefined();
      if (svc.image) expect(svc.image, name).toMatch(/^[a-z0-9/_.-]+:v?\d+(\.\d+)*$/);
    }
  });

  it('sets up the namespace and search attributes by a script that waits and fails loudly', () => {
    for (const [name, script] of [
      ['temporal-schema', 'deploy/compose/temporal-schema.sh'],
      ['temporal-register', 'deploy/compose/temporal-register.sh'],
    ] as const) {
      const svc = services[name]!;
      const mount = svc.volumes!.find((v): v is string => typeof v === 'string' && v.startsWith(`./${script}:`))!;
      expect(mount, `${name} mounts ${script}`).toBeDefined();
      expect(svc.entrypoint).toEqual(['/bin/sh', mount.split(':')[1]]);
      const body = readFileSync(script, 'utf8');
      expect(body).toMatch(/^set -eu$/m);
      expect(body).not.toMatch(/\|\| *true|\|\| *:/);
    }
    const register = readFileSync('deploy/compose/temporal-register.sh', 'utf8');
    // Exactly the search attributes the workflows upsert, with their types.
    const list = /STEADFAST_SEARCH_ATTRIBUTES:-([^}]*)\}/.exec(register)?.[1];
    expect(list?.split(' ').sort()).toEqual(
      Object.entries(SEARCH_ATTRIBUTES)
        .map(([name, type]) => `${name}=${type}`)
        .sort(),
    );
    expect(register).toMatch(/wait_for "namespace/);
    expect(register).toContain('exit 1');
    expect(text).not.toMatch(/\|\| *true/);
    // Everything that needs Temporal waits for the set-up to have succeeded.
    for (const name of ['worker', 'temporal-ui']) expect(services[name]!.depends_on?.['temporal-register']).toEqual({ condition: 'service_completed_successfully' });
  });

  it('has a healthcheck on every long-running service, the worker on /readyz', () => {
    expect(oneShots.sort()).toEqual(['temporal-register', 'temporal-schema']);
    for (const name of longRunning) expect(services[name]!.healthcheck?.test, `${name} healthcheck`).toBeDefined();
    const worker = JSON.stringify(services['worker']!.healthcheck!.test);
    const port = Number(services['worker']!.environment!.STEADFAST_HEALTH_PORT);
    expect(port).toBe(loadConfig({}).healthPort);
    expect(worker).toContain(`http://127.0.0.1:${port}/readyz`);
    // The image has node but no curl or wget: the check must use node.
    expect((services['worker']!.healthcheck!.test as string[]).slice(0, 2)).toEqual(['CMD', 'node']);
  });

  it('publishes only what a user needs, on 127.0.0.1 only', () => {
    const published = Object.entries(services).flatMap(([name, s]) => (s.ports ?? []).map((p) => ({ name, p })));
    for (const { name, p } of published) expect(p, name).toMatch(/^127\.0\.0\.1:\d+:\d+$/);
    expect(published.map(({ name, p }) => `${name} ${p.split(':')[1]}`).sort()).toEqual(['console 8590', 'grafana 3000', 'prometheus 9090', 'temporal 7233', 'temporal-ui 8080']);
    for (const hidden of ['temporal-db', 'results-db', 'provider', 'worker']) expect(services[hidden]!.ports, hidden).toBeUndefined();
  });

  it('points the workers at the compose services and wires every variable the config loader reads', () => {
    const env = services['worker']!.environment!;
    expect(env.TEMPORAL_ADDRESS).toBe('temporal:7233');
    expect(env.STEADFAST_TASK_QUEUE).toBe('steadfast');
    expect(new URL(env.DATABASE_URL!).hostname).toBe('results-db');
    // The fault provider is an explicit, overridable switch (empty in .env: the vendors answer).
    expect(env.STEADFAST_SIMULATED_PROVIDER_URL).toBe('${STEADFAST_SIMULATED_PROVIDER_URL-http://provider:8787}');
    // Keys come from the user's shell; none is written into the file.
    expect(env.OPENAI_API_KEY).toBe('${OPENAI_API_KEY:-}');
    expect(env.ANTHROPIC_API_KEY).toBe('${ANTHROPIC_API_KEY:-}');
    const read = configVariables();
    expect(read.length).toBeGreaterThan(8);
    /** Read by the loader but meaningless here, with the reason. */
    const notInCompose: Record<string, string> = { STEADFAST_DB_PATH: 'DATABASE_URL is set: results go to PostgreSQL' };
    for (const v of read) if (!(v in notInCompose)) expect(env, `worker environment sets ${v}`).toHaveProperty(v);
    // And nothing is set that no code reads (a typo would be silently ignored).
    for (const v of Object.keys(env)) expect([...read, 'OPENAI_API_KEY', 'ANTHROPIC_API_KEY'], `${v} is read by the code`).toContain(v);
    expect(loadConfig(Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v.startsWith('${') ? '' : v])))).toMatchObject({
      temporalAddress: 'temporal:7233',
      healthPort: 8081,
      metricsPort: 9464,
    });
  });

  it('shares the host folder for inputs by reference at the same absolute path', () => {
    const mount = services['worker']!.volumes!.find((v) => typeof v === 'object')!;
    expect(mount).toMatchObject({ type: 'bind', source: './data/inputs', read_only: true });
    // `steadfast run` writes and passes absolute host paths under data/inputs.
    expect(mount.target).toBe('${PWD:?run docker compose from the repository folder}/data/inputs');
    expect(readFileSync('src/client/cli/run.ts', 'utf8')).toMatch(/@default `data\/inputs`/);
  });

  it('has consistent dependencies and no port used twice', () => {
    for (const [name, svc] of Object.entries(services)) {
      for (const [dep, cond] of Object.entries(svc.depends_on ?? {})) {
        expect(services, `${name} depends on ${dep}`).toHaveProperty(dep);
        if (cond.condition === 'service_healthy') expect(services[dep]!.healthcheck, `${dep} has a healthcheck`).toBeDefined();
        if (cond.condition === 'service_completed_successfully') expect(oneShots).toContain(dep);
      }
    }
    const hostPorts = Object.values(services).flatMap((s) => (s.ports ?? []).map((p) => p.split(':')[1]));
    expect(new Set(hostPorts).size).toBe(hostPorts.length);
    // Longer than the worker's drain.
    expect(readFileSync('src/worker/worker.ts', 'utf8')).toMatch(/shutdownGraceTime: '30 s'/);
    expect(services['worker']).toMatchObject({ stop_grace_period: '40s' });
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
  const svc = (name: string) => services[name];
  /** Host paths of a service's bind mounts, relative to the repo. */
  const binds = (name: string) =>
    (svc(name)?.volumes ?? []).filter((v): v is string => typeof v === 'string' && v.startsWith('./')).map((v) => ({ host: v.split(':')[0]!, container: v.split(':')[1]! }));

  it('adds Prometheus on 9090 and Grafana on 3000, mounting files that exist', () => {
    expect(svc('prometheus')?.image).toMatch(/^prom\/prometheus:v\d/);
    expect(svc('grafana')?.image).toMatch(/^grafana\/grafana:\d/);
    expect(svc('prometheus')?.ports).toContain('127.0.0.1:9090:9090');
    expect(svc('grafana')?.ports).toContain('127.0.0.1:3000:3000');
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
