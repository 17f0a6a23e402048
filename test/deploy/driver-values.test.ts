/**
 * The CSI driver Helm values we document and ship must request a token for every audience the
 * matching provider config's stores present (a missing one fails every Mount of that store).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { parseProviderConfig, type ProviderConfig } from '../../src/config/load.js';
import { root, type Doc } from './render.js';

/** A provider config as the provider parses it: each store's audiences come from its backend's definition. */
async function parseConfig(text: string, baseDir: string, where: string): Promise<ProviderConfig> {
  const parsed = await parseProviderConfig(text, baseDir);
  if (!parsed.ok) expect.fail(`${where} is not a valid provider config:\n${parsed.problems.join('\n')}`);
  return parsed.config;
}

/** Every pod-token audience the stores of these provider config files present. */
async function audiencesOf(paths: string[]): Promise<Set<string>> {
  const audiences = new Set<string>();
  for (const path of paths) {
    const config = await parseConfig(readFileSync(path, 'utf8'), dirname(path), path);
    for (const store of config.stores) for (const audience of store.audiences) audiences.add(audience);
  }
  return audiences;
}

function requested(values: Doc): Set<string> {
  return new Set((values.tokenRequests ?? []).map((t: Doc) => t.audience as string));
}

const examplesDir = join(root, 'deploy/examples');
const examples = readdirSync(examplesDir).filter((d) => existsSync(join(examplesDir, d, 'csidriver-values.yaml')));

describe('driver Helm values', () => {
  it.each(examples)('deploy/examples/%s/csidriver-values.yaml requests every audience its provider config needs', async (name) => {
    const values = parseYaml(readFileSync(join(examplesDir, name, 'csidriver-values.yaml'), 'utf8')) as Doc;
    const needed = await audiencesOf([join(examplesDir, name, 'provider-config.yaml')]);
    expect([...needed].filter((a) => !requested(values).has(a))).toEqual([]);
    expect(values.enableSecretRotation).toBe(true);
  });

  it('test/e2e/driver-values.yaml covers the examples the kind run applies, with rotation and sync on', async () => {
    const values = parseYaml(readFileSync(join(root, 'test/e2e/driver-values.yaml'), 'utf8')) as Doc;
    const needed = await audiencesOf(['file', 'kubernetes'].map((d) => join(examplesDir, d, 'provider-config.yaml')));
    expect([...needed].filter((a) => !requested(values).has(a))).toEqual([]);
    expect(values.enableSecretRotation).toBe(true);
    expect(values.rotationPollInterval).toMatch(/^\d+[sm]$/);
    expect(values.syncSecret).toEqual({ enabled: true });
  });

  it('docs/install.md gives complete values for each store kind', async () => {
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
    const baseText = (parseYaml(base) as Doc).data['config.yaml'] as string;
    const baseConfig = await parseConfig(baseText, join(root, 'deploy/base'), 'deploy/base/configmap.yaml config.yaml');
    for (const store of baseConfig.stores) {
      for (const audience of store.audiences) {
        expect(requested(all).has(audience), `audience ${JSON.stringify(audience)} of store ${store.name}`).toBe(true);
      }
    }
  });
});
