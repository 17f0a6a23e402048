/**
 * The CSI driver Helm values we document and ship must request a token for every audience the
 * matching provider config's stores present (a missing one fails every Mount of that store).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { root, type Doc } from './render.js';

/** The audience a store presents, or undefined when it needs no pod token. */
function storeAudience(store: Doc): string | undefined {
  switch (store.backend) {
    case 'kubernetes':
      return store.identity === 'provider' ? undefined : (store.audience ?? '');
    case 'vault':
      return ['kubernetes', 'jwt'].includes(store.auth?.method) ? (store.auth.audience ?? 'vault') : undefined;
    case 'aws-secrets-manager':
    case 'aws-parameter-store':
      if (store.auth?.method === 'irsa') return store.auth.audience ?? 'sts.amazonaws.com';
      if (store.auth?.method === 'pod-identity') return store.auth.audience ?? 'pods.eks.amazonaws.com';
      return undefined;
    default:
      return undefined;
  }
}

function audiencesOf(configs: string[]): Set<string> {
  const audiences = new Set<string>();
  for (const path of configs) {
    for (const store of (parseYaml(readFileSync(path, 'utf8')) as Doc).stores ?? []) {
      const audience = storeAudience(store);
      if (audience !== undefined) audiences.add(audience);
    }
  }
  return audiences;
}

function requested(values: Doc): Set<string> {
  return new Set((values.tokenRequests ?? []).map((t: Doc) => t.audience as string));
}

const examplesDir = join(root, 'deploy/examples');
const examples = readdirSync(examplesDir).filter((d) => existsSync(join(examplesDir, d, 'csidriver-values.yaml')));

describe('driver Helm values', () => {
  it.each(examples)('deploy/examples/%s/csidriver-values.yaml requests every audience its provider config needs', (name) => {
    const values = parseYaml(readFileSync(join(examplesDir, name, 'csidriver-values.yaml'), 'utf8')) as Doc;
    const needed = audiencesOf([join(examplesDir, name, 'provider-config.yaml')]);
    expect([...needed].filter((a) => !requested(values).has(a))).toEqual([]);
    expect(values.enableSecretRotation).toBe(true);
  });

  it('test/e2e/driver-values.yaml covers the examples the kind run applies, with rotation and sync on', () => {
    const values = parseYaml(readFileSync(join(root, 'test/e2e/driver-values.yaml'), 'utf8')) as Doc;
    const needed = audiencesOf(['file', 'kubernetes'].map((d) => join(examplesDir, d, 'provider-config.yaml')));
    expect([...needed].filter((a) => !requested(values).has(a))).toEqual([]);
    expect(values.enableSecretRotation).toBe(true);
    expect(values.rotationPollInterval).toMatch(/^\d+[sm]$/);
    expect(values.syncSecret).toEqual({ enabled: true });
  });

  it('docs/install.md gives complete values for each store kind', () => {
    const text = readFileSync(join(root, 'docs/install.md'), 'utf8');
    const blocks = [...text.matchAll(/^```yaml\n([\s\S]*?)^```/gm)].map((m) => ({ comment: m[1]!.split('\n')[0]!, values: parseYaml(m[1]!) as Doc }));
    const valuesFor = (pattern: RegExp) => {
      const found = blocks.filter((b) => pattern.test(b.comment));
      expect(found, `a values block whose first line matches ${pattern}`).toHaveLength(1);
      const values = found[0]!.values;
      expect(values.enableSecretRotation).toBe(true);
      expect(values.rotationPollInterval).toBe('2m');
      expect(typeof values.syncSecret?.enabled).toBe('boolean');
      return values;
    };
    expect(requested(valuesFor(/^# file stores only/))).toEqual(new Set());
    expect(requested(valuesFor(/^# kubernetes store, identity: pod/))).toEqual(new Set(['']));
    expect(requested(valuesFor(/^# vault store/))).toEqual(new Set(['vault']));
    expect(requested(valuesFor(/^# aws-secrets-manager/))).toEqual(new Set(['sts.amazonaws.com', 'pods.eks.amazonaws.com']));
    const all = valuesFor(/^# all of the above/);
    expect(requested(all)).toEqual(new Set(['', 'vault', 'sts.amazonaws.com', 'pods.eks.amazonaws.com']));
    expect(all.syncSecret.enabled).toBe(true);
    // The base's default store is covered by the values documented for it.
    const base = readFileSync(join(root, 'deploy/base/configmap.yaml'), 'utf8');
    const baseConfig = parseYaml((parseYaml(base) as Doc).data['config.yaml']) as Doc;
    for (const store of baseConfig.stores) {
      const audience = storeAudience(store);
      if (audience !== undefined) expect(requested(all).has(audience), `audience ${JSON.stringify(audience)} of store ${store.name}`).toBe(true);
    }
  });
});
