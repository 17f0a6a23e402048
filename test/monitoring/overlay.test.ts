/**
 * deploy/overlays/monitoring rendered by `kubectl kustomize` and validated offline against the
 * vendored schemas (the Prometheus Operator's ServiceMonitor and PrometheusRule CRDs among them):
 * the production install plus the alerts and the dashboard, unchanged from deploy/monitoring.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { kustomize, root, type Doc } from '../deploy/render.js';
import { validateObject } from '../deploy/schema-validator.js';
import { alertsPath, loadDashboard } from './promql.js';

let docs: Doc[];

const only = (kind: string): Doc => {
  const found = docs.filter((d) => d.kind === kind);
  expect(found, `exactly one ${kind}`).toHaveLength(1);
  return found[0]!;
};

beforeAll(async () => {
  docs = await kustomize(join(root, 'deploy/overlays/monitoring'));
});

describe('deploy/overlays/monitoring', () => {
  it('is the production install plus the PrometheusRule and the dashboard ConfigMap', async () => {
    const production = await kustomize(join(root, 'deploy/overlays/production'));
    const key = (d: Doc) => `${d.kind}/${d.metadata.name}`;
    const added = docs.map(key).filter((k) => !production.map(key).includes(k));
    expect(added.sort()).toEqual(['ConfigMap/universal-secrets-provider-dashboard', 'PrometheusRule/universal-secrets-provider']);
    expect(docs.map(key)).toEqual(expect.arrayContaining(production.map(key)));
  });

  it('validates against the vendored schemas, CRDs included', () => {
    for (const doc of docs) expect(validateObject(doc), `${doc.kind} ${doc.metadata.name}`).toEqual([]);
  });

  it('puts everything in usp-system with the common labels', () => {
    for (const doc of docs.filter((d) => d.kind !== 'Namespace')) {
      expect(doc.metadata.namespace, `${doc.kind} ${doc.metadata.name}`).toBe('usp-system');
      expect(doc.metadata.labels?.['app.kubernetes.io/part-of'], `${doc.kind} ${doc.metadata.name}`).toBe('universal-secrets-provider');
    }
  });

  it('carries deploy/monitoring/alerts.yaml unchanged', () => {
    const source = parseYaml(readFileSync(alertsPath, 'utf8')) as Doc;
    expect(only('PrometheusRule').spec).toEqual(source.spec);
  });

  it("gives Grafana's sidecar the dashboard: a ConfigMap labelled grafana_dashboard with dashboard.json", () => {
    const configMap = docs.find((d) => d.kind === 'ConfigMap' && d.metadata.name === 'universal-secrets-provider-dashboard')!;
    expect(configMap.metadata.labels.grafana_dashboard).toBe('1');
    const files = Object.keys(configMap.data);
    expect(files).toEqual(['universal-secrets-provider.json']);
    expect(JSON.parse(configMap.data[files[0]!])).toEqual(loadDashboard());
  });

  it('scrapes the providers with the ServiceMonitor whose job the UspProviderDown alert matches', () => {
    const monitor = only('ServiceMonitor');
    const service = only('Service');
    for (const [k, v] of Object.entries(monitor.spec.selector.matchLabels)) expect(service.metadata.labels[k]).toBe(v);
    // The Operator names the job after the Service (no jobLabel set).
    expect(monitor.spec.jobLabel).toBeUndefined();
    const down = (only('PrometheusRule').spec.groups as Doc[]).flatMap((g) => g.rules).find((r: Doc) => r.alert === 'UspProviderDown');
    const job = new RegExp(`^(?:${/job=~"([^"]+)"/.exec(down.expr)![1]})$`);
    expect(service.metadata.name).toMatch(job);
    expect(`usp-system/${monitor.metadata.name}`, 'a PodMonitor of the same name would match too').toMatch(job);
  });
});

describe('the PrometheusRule schema', () => {
  const rule = (patch: (r: Doc) => void): Doc => {
    const doc: Doc = {
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'PrometheusRule',
      metadata: { name: 'r', namespace: 'usp-system' },
      spec: { groups: [{ name: 'g', rules: [{ alert: 'A', expr: 'up == 0', for: '5m', labels: { severity: 'warning' } }] }] },
    };
    patch(doc.spec.groups[0].rules[0]);
    return doc;
  };

  it('accepts a valid rule and rejects typos, a bad duration and a rule that is neither alert nor record', () => {
    expect(validateObject(rule(() => {}))).toEqual([]);
    expect(validateObject(rule((r) => ((r.exp = r.expr), delete r.expr))).join()).toMatch(/expr|exp/);
    expect(validateObject(rule((r) => (r.for = '5 minutes'))).join()).toMatch(/for/);
    expect(validateObject(rule((r) => delete r.alert)).join()).toMatch(/spec\.groups\.0\.rules\.0/);
    expect(validateObject(rule((r) => (r.record = 'x:y'))).join()).toMatch(/spec\.groups\.0\.rules\.0/);
  });
});
