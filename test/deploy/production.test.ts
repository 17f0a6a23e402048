import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { kustomizeText, parseDocs, root, type Doc } from './render.js';

const overlay = join(root, 'deploy/overlays/production');
const installYaml = join(root, 'deploy/install.yaml');
const header = '# Generated from deploy/overlays/production by npm run manifests: do not edit.\n';

function only(docs: Doc[], kind: string): Doc {
  const found = docs.filter((d) => d.kind === kind);
  expect(found, `exactly one ${kind}`).toHaveLength(1);
  return found[0]!;
}

const mebibytes = (quantity: string) => {
  const match = /^(\d+)(Mi|Gi)$/.exec(quantity);
  if (!match) throw new Error(`unexpected memory quantity ${quantity}`);
  return Number(match[1]) * (match[2] === 'Gi' ? 1024 : 1);
};

describe('deploy/install.yaml', () => {
  it('is what `npm run manifests` renders from the production overlay (run it and commit the result)', async () => {
    const rendered = await kustomizeText(overlay);
    const committed = readFileSync(installYaml, 'utf8');
    expect(committed.startsWith(header), 'deploy/install.yaml starts with the generated-file header').toBe(true);
    expect(committed.slice(header.length), 'deploy/install.yaml is stale: run `npm run manifests`').toBe(rendered);
  });

  it('is rendered by the manifests script with kubectl kustomize', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as Doc;
    expect(pkg.scripts.manifests).toMatch(/kubectl kustomize deploy\/overlays\/production/);
    expect(pkg.scripts.manifests).toMatch(/> deploy\/install\.yaml/);
  });
});

describe('deploy/overlays/production', () => {
  let docs: Doc[];
  let daemonSet: Doc;
  let pod: Doc;
  let container: Doc;

  beforeAll(async () => {
    docs = parseDocs(await kustomizeText(overlay), 'deploy/overlays/production');
    daemonSet = only(docs, 'DaemonSet');
    pod = daemonSet.spec.template.spec;
    container = pod.containers[0];
  });

  it('puts everything namespaced in usp-system, with the common labels', () => {
    for (const doc of docs.filter((d) => d.kind !== 'Namespace')) {
      expect(doc.metadata.namespace, `${doc.kind} ${doc.metadata.name}`).toBe('usp-system');
      expect(doc.metadata.labels?.['app.kubernetes.io/name'], `${doc.kind} ${doc.metadata.name}`).toBe('universal-secrets-provider');
    }
  });

  it('requests what the benchmark measured and limits memory only', () => {
    expect(container.resources).toEqual({ requests: { cpu: '50m', memory: '80Mi' }, limits: { memory: '160Mi' } });
  });

  it('caps the V8 heap at two thirds of the memory limit (room for buffers, code and the runtime)', () => {
    const env = container.env.filter((e: Doc) => e.name === 'NODE_OPTIONS');
    expect(env, 'one NODE_OPTIONS').toHaveLength(1);
    const heap = Number(/--max-old-space-size=(\d+)/.exec(env[0].value)?.[1]);
    const limit = mebibytes(container.resources.limits.memory);
    expect(heap).toBe(Math.floor((limit * 2) / 3));
    expect(mebibytes(container.resources.requests.memory)).toBeLessThanOrEqual(limit);
  });

  it('runs on every node, node-critical, with seccomp RuntimeDefault and no surge', () => {
    expect(pod.priorityClassName).toBe('system-node-critical');
    expect(pod.tolerations).toEqual([{ operator: 'Exists' }]);
    expect(pod.securityContext.seccompProfile).toEqual({ type: 'RuntimeDefault' });
    expect(container.securityContext.seccompProfile?.type ?? 'RuntimeDefault').toBe('RuntimeDefault');
    expect(daemonSet.spec.updateStrategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1, maxSurge: 0 } });
  });

  it('keeps the probes on /healthz and /readyz', () => {
    expect(container.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http' });
    expect(container.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http' });
  });

  it('is scraped by annotation and by a ServiceMonitor through a headless Service', () => {
    expect(daemonSet.spec.template.metadata.annotations).toMatchObject({
      'prometheus.io/scrape': 'true',
      'prometheus.io/port': '8095',
      'prometheus.io/path': '/metrics',
    });
    const service = only(docs, 'Service');
    expect(service.spec.clusterIP).toBe('None');
    // The Service selects exactly the provider pods, on the container's named metrics port.
    expect(service.spec.selector).toEqual(daemonSet.spec.selector.matchLabels);
    const podLabels = daemonSet.spec.template.metadata.labels;
    for (const [k, v] of Object.entries(service.spec.selector)) expect(podLabels[k]).toBe(v);
    const port = service.spec.ports[0];
    const containerPort = container.ports.find((p: Doc) => p.name === port.targetPort);
    expect(containerPort?.containerPort).toBe(8095);
    // The ServiceMonitor selects the Service and scrapes its named port.
    const monitor = only(docs, 'ServiceMonitor');
    expect(monitor.apiVersion).toBe('monitoring.coreos.com/v1');
    for (const [k, v] of Object.entries(monitor.spec.selector.matchLabels)) expect(service.metadata.labels[k]).toBe(v);
    expect(monitor.spec.endpoints).toEqual([expect.objectContaining({ port: port.name, path: '/metrics' })]);
  });
});
