/**
 * deploy/k8s checked as data (no cluster here): the kustomization renders the
 * listed files, the worker's probes hit the ports and paths the worker serves
 * (src/worker/health.ts, src/common/config.ts), the grace period covers the
 * drain, the PodDisruptionBudget and the KEDA ScaledObject select this
 * Deployment, and no secret value is written into a manifest.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { loadConfig } from '../../src/common/config.ts';

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; annotations?: Record<string, string> };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
}
interface Probe {
  httpGet: { path: string; port: string | number };
  periodSeconds?: number;
  failureThreshold?: number;
}
interface Container {
  name: string;
  command?: string[];
  ports: { name: string; containerPort: number }[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  env?: { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }[];
  livenessProbe: Probe;
  readinessProbe: Probe;
  startupProbe?: Probe;
}
interface PodTemplate {
  metadata: { labels: Record<string, string>; annotations: Record<string, string> };
  spec: { terminationGracePeriodSeconds: number; containers: Container[] };
}

const dir = 'deploy/k8s';
const read = (f: string): Manifest[] => parseAllDocuments(readFileSync(`${dir}/${f}`, 'utf8')).map((d) => d.toJS() as Manifest);
const kustomization = read('kustomization.yaml')[0] as unknown as { resources: string[] };
/** What `kubectl apply -k deploy/k8s` applies. */
const rendered = kustomization.resources.flatMap(read);
const one = (kind: string): Manifest => {
  const all = rendered.filter((m) => m.kind === kind);
  expect(all, kind).toHaveLength(1);
  return all[0]!;
};
const deployment = one('Deployment');
const template = deployment.spec!['template'] as PodTemplate;
const worker = template.spec.containers.find((c) => c.name === 'worker')!;
const config = one('ConfigMap');
/** Resolves a named container port to its number. */
const portOf = (p: string | number): number => (typeof p === 'number' ? p : worker.ports.find((x) => x.name === p)!.containerPort);

describe('deploy/k8s', () => {
  it('renders a worker Deployment, its ConfigMap, a PodDisruptionBudget and a KEDA ScaledObject', () => {
    expect(rendered.map((m) => m.kind).sort()).toEqual(['ConfigMap', 'Deployment', 'PodDisruptionBudget', 'ScaledObject']);
    expect(worker.command).toEqual(['node', 'src/worker/worker.ts']);
    expect(readFileSync('Dockerfile', 'utf8')).toContain('CMD ["node", "src/worker/worker.ts"]');
  });

  it('probes /livez and /readyz on the port the worker serves them on', () => {
    const healthPort = Number(config.data!['STEADFAST_HEALTH_PORT']);
    expect(healthPort).toBe(loadConfig({}).healthPort);
    expect(worker.envFrom).toContainEqual({ configMapRef: { name: config.metadata.name } });
    expect(worker.livenessProbe.httpGet.path).toBe('/livez');
    expect(worker.readinessProbe.httpGet.path).toBe('/readyz');
    expect(worker.startupProbe?.httpGet.path).toBe('/readyz');
    for (const probe of [worker.livenessProbe, worker.readinessProbe, worker.startupProbe!]) expect(portOf(probe.httpGet.port)).toBe(healthPort);
    // The paths are the ones src/worker/health.ts answers.
    const health = readFileSync('src/worker/health.ts', 'utf8');
    for (const path of ['/livez', '/readyz']) expect(health).toContain(`'${path}'`);
  });

  it('gives the pod at least the worker drain time before SIGKILL', () => {
    const grace = /shutdownGraceTime: '(\d+) s'/.exec(readFileSync('src/worker/worker.ts', 'utf8'));
    expect(grace, 'shutdownGraceTime in src/worker/worker.ts').not.toBeNull();
    expect(template.spec.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(Number(grace![1]) + 5);
  });

  it('lets Prometheus scrape the metrics port', () => {
    const metricsPort = Number(config.data!['STEADFAST_METRICS_PORT']);
    expect(metricsPort).toBe(loadConfig({}).metricsPort);
    expect(template.metadata.annotations).toMatchObject({ 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(metricsPort), 'prometheus.io/path': '/metrics' });
    expect(worker.ports).toContainEqual({ name: 'metrics', containerPort: metricsPort });
  });

  it('takes secrets from a Secret by reference, never inline', () => {
    const env = worker.env ?? [];
    for (const name of ['DATABASE_URL', 'OPENAI_API_KEY', 'ANTHROPIC_API_KEY', 'TEMPORAL_API_KEY']) {
      const e = env.find((x) => x.name === name);
      expect(e?.valueFrom?.secretKeyRef, `${name} from a Secret`).toMatchObject({ name: 'steadfast-secrets', key: name });
      expect(e?.value).toBeUndefined();
    }
    expect(rendered.filter((m) => m.kind === 'Secret')).toEqual([]);
    for (const key of Object.keys(config.data!)) expect(key, 'no secret in the ConfigMap').not.toMatch(/KEY|PASSWORD|TOKEN|SECRET|DATABASE_URL/);
    const all = kustomization.resources.map((f) => readFileSync(`${dir}/${f}`, 'utf8')).join('\n');
    expect(all).not.toMatch(/sk-[A-Za-z0-9]{8,}|BEGIN [A-Z ]*PRIVATE KEY|postgres:\/\/[^\s]*:[^\s]*@/);
  });

  it('keeps one worker through voluntary disruptions', () => {
    const pdb = one('PodDisruptionBudget');
    expect(pdb.spec).toMatchObject({ minAvailable: 1, selector: { matchLabels: template.metadata.labels } });
    expect((deployment.spec!['selector'] as { matchLabels: Record<string, string> }).matchLabels).toEqual(template.metadata.labels);
  });

  it('autoscales the Deployment with KEDA on the backlog of task queue steadfast', () => {
    const so = one('ScaledObject');
    expect(so.apiVersion).toBe('keda.sh/v1alpha1');
    const spec = so.spec as {
      scaleTargetRef: { kind: string; name: string };
      minReplicaCount: number;
      maxReplicaCount: number;
      triggers: { type: string; metadata: Record<string, string> }[];
    };
    expect(spec.scaleTargetRef).toMatchObject({ kind: 'Deployment', name: deployment.metadata.name });
    expect(spec.minReplicaCount).toBeGreaterThanOrEqual(1);
    expect(spec.maxReplicaCount).toBeGreaterThan(spec.minReplicaCount);
    const trigger = spec.triggers.find((t) => t.type === 'temporal')!;
    expect(trigger.metadata).toMatchObject({
      taskQueue: config.data!['STEADFAST_TASK_QUEUE'],
      namespace: config.data!['TEMPORAL_NAMESPACE'],
      endpoint: config.data!['TEMPORAL_ADDRESS'],
    });
    expect(config.data!['STEADFAST_TASK_QUEUE']).toBe('steadfast');
    expect(Number(trigger.metadata['targetQueueSize'])).toBeGreaterThan(0);
    // KEDA reads every metadata value as a string.
    for (const v of Object.values(trigger.metadata)) expect(typeof v).toBe('string');
  });

  it('authenticates KEDA to a secured Temporal from the same Secrets, when applied', () => {
    const auth = read('keda-auth.yaml')[0]!;
    expect(auth.kind).toBe('TriggerAuthentication');
    const refs = (auth.spec as { secretTargetRef: { parameter: string; name: string; key: string }[] }).secretTargetRef;
    expect(refs.map((r) => r.parameter).sort()).toEqual(['apiKey', 'cert', 'key']);
    expect(refs.find((r) => r.parameter === 'apiKey')).toMatchObject({ name: 'steadfast-secrets', key: 'TEMPORAL_API_KEY' });
  });
});
