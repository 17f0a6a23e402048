/**
 * Offline schema validation of every Kubernetes object we ship or document: the rendered
 * kustomizations (base, overlays, examples), deploy/install.yaml, the plain manifests under
 * deploy/ and test/e2e/, and the YAML examples in README.md and docs/. Each object is checked
 * against the vendored JSON Schema of its apiVersion and kind in test/fixtures/schemas/ (no
 * network), converted to a zod schema with z.fromJSONSchema. A kind without a vendored schema
 * fails the test, so a new kind cannot slip through unchecked.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { kustomize, parseDocs, root, type Doc } from './render.js';
import { schemaKinds, validateObject, validateOpenApi } from './schema-validator.js';

const schemas = schemaKinds();
const validate = validateObject;

function label(doc: Doc): string {
  return `${doc.kind} ${doc.metadata?.namespace ? `${doc.metadata.namespace}/` : ''}${doc.metadata?.name}`;
}

function yamlFilesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && /\.ya?ml$/.test(e.name))
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

function kustomizationDirs(dir: string): string[] {
  return yamlFilesUnder(dir)
    .filter((f) => /(^|\/)kustomization\.ya?ml$/.test(f))
    .map((f) => f.replace(/\/kustomization\.ya?ml$/, ''));
}

/** Files a kustomization uses as patches: partial objects, checked through the rendered output. */
function patchFiles(): Set<string> {
  const patches = new Set<string>();
  for (const dir of kustomizationDirs(join(root, 'deploy'))) {
    const k = parseYaml(readFileSync(join(dir, 'kustomization.yaml'), 'utf8')) as Doc;
    for (const p of [...(k.patches ?? []), ...(k.patchesStrategicMerge ?? [])]) {
      const path = typeof p === 'string' ? p : p.path;
      if (path) patches.add(join(dir, path));
    }
  }
  return patches;
}

/** Plain manifests: every YAML file that holds Kubernetes objects (not kustomize, Helm or provider config). */
function manifestFiles(): string[] {
  const patches = patchFiles();
  return [...yamlFilesUnder(join(root, 'deploy')), ...yamlFilesUnder(join(root, 'test/e2e'))].filter(
    (f) =>
      !patches.has(f) &&
      !/(^|\/)kustomization\.ya?ml$/.test(f) &&
      !/values\.ya?ml$/.test(f) &&
      !/(^|\/)(provider-)?config\.ya?ml$/.test(f),
  );
}

/** ```yaml blocks of the docs that are whole Kubernetes objects (apiVersion and kind). */
function documentedObjects(): Array<{ where: string; doc: Doc }> {
  const files = [join(root, 'README.md'), ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => join(root, 'docs', f))];
  const found: Array<{ where: string; doc: Doc }> = [];
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    for (const match of text.matchAll(/^```ya?ml\n([\s\S]*?)^```/gm)) {
      const line = text.slice(0, match.index).split('\n').length;
      const where = `${relative(root, file)}:${line}`;
      let docs: Doc[];
      try {
        docs = parseDocs(match[1]!, where);
      } catch {
        continue; // a fragment, not a manifest
      }
      for (const doc of docs) {
        if (typeof doc === 'object' && typeof doc.apiVersion === 'string' && typeof doc.kind === 'string') found.push({ where, doc });
      }
    }
  }
  return found;
}

describe('the vendored schemas', () => {
  const daemonSet = (patch: (pod: Doc) => void): Doc => {
    const container = { name: 'provider', image: 'x', securityContext: { readOnlyRootFilesystem: true } };
    const pod: Doc = { containers: [container], volumes: [{ name: 'config', configMap: { name: 'usp-config' } }] };
    patch(pod);
    return {
      apiVersion: 'apps/v1',
      kind: 'DaemonSet',
      metadata: { name: 'p', namespace: 'usp-system' },
      spec: { selector: { matchLabels: { app: 'p' } }, template: { metadata: { labels: { app: 'p' } }, spec: pod } },
    };
  };
  const spc = (spec: Doc): Doc => ({
    apiVersion: 'secrets-store.csi.x-k8s.io/v1',
    kind: 'SecretProviderClass',
    metadata: { name: 'shop', namespace: 'shop' },
    spec,
  });

  it('cover the kinds we use', () => {
    expect(schemas).toEqual(
      [
        'apps/v1/DaemonSet',
        'monitoring.coreos.com/v1/PrometheusRule',
        'monitoring.coreos.com/v1/ServiceMonitor',
        'rbac.authorization.k8s.io/v1/Role',
        'rbac.authorization.k8s.io/v1/RoleBinding',
        'secret-sync.x-k8s.io/v1alpha1/SecretSync',
        'secrets-store.csi.x-k8s.io/v1/SecretProviderClass',
        'v1/ConfigMap',
        'v1/Namespace',
        'v1/Pod',
        'v1/Secret',
        'v1/Service',
        'v1/ServiceAccount',
      ].sort(),
    );
  });

  it('accept a minimal valid object and reject typos, wrong types, bad enums and missing fields', () => {
    expect(validate(daemonSet(() => {}))).toEqual([]);
    expect(validate(daemonSet((pod) => (pod.containers[0].securityContext = { readonlyRootFilesystem: true })))).toEqual([
      expect.stringMatching(/readonlyRootFilesystem/),
    ]);
    expect(validate(daemonSet((pod) => (pod.containers[0].imagePullPolicy = 'Sometimes'))).join()).toMatch(/imagePullPolicy/);
    expect(validate(daemonSet((pod) => (pod.terminationGracePeriodSeconds = '30'))).join()).toMatch(/terminationGracePeriodSeconds/);
    expect(validate(daemonSet((pod) => (pod.containers[0].resources = { limits: { memory: '128 MiB' } }))).join()).toMatch(/memory/);
    expect(validate(daemonSet((pod) => delete pod.containers[0].name)).join()).toMatch(/containers\.0/);
    expect(validate({ apiVersion: 'apps/v1beta2', kind: 'DaemonSet', metadata: { name: 'x' } })).toEqual([
      expect.stringMatching(/no vendored schema for apps\/v1beta2 DaemonSet/),
    ]);
  });

  it("apply Kubernetes' own OpenAPI schema to built-in kinds (types and formats the strict schemas may not encode)", () => {
    expect(validateOpenApi(daemonSet(() => {}))).toEqual([]);
    expect(validateOpenApi(daemonSet((pod) => (pod.containers[0].ports = [{ containerPort: 'http' }])))).toEqual([
      expect.stringMatching(/^OpenAPI: .*containerPort must be integer/),
    ]);
    expect(validateOpenApi(spc({ provider: 'universal' }))).toEqual([]);
  });

  it('reject a volume with no source or two sources', () => {
    expect(validate(daemonSet((pod) => (pod.volumes = [{ name: 'v' }]))).join()).toMatch(/volumes\.0/);
    const two = { name: 'v', configMap: { name: 'a' }, secret: { secretName: 'b' } };
    expect(validate(daemonSet((pod) => (pod.volumes = [two]))).join()).toMatch(/volumes\.0/);
  });

  it('check SecretProviderClass objects against the CRD: parameters are strings, secretObjects need secretName, type and data keys', () => {
    const objects = [{ secretName: 'shop-db', type: 'Opaque', data: [{ objectName: 'db/password', key: 'password' }] }];
    expect(validate(spc({ provider: 'universal', parameters: { objects: '- name: a\n  ref: b\n' }, secretObjects: objects }))).toEqual([]);
    expect(validate(spc({ provider: 'universal', parameters: { objects: [{ name: 'a' }] } })).join()).toMatch(/spec\.parameters\.objects/);
    expect(validate(spc({ provider: 'universal', secretObjects: [{ secretName: 'shop-db', data: [] }] })).join()).toMatch(/spec\.secretObjects\.0/);
    expect(validate(spc({ provider: 'universal', secretObjects: [{ secretName: 's', type: 'Opaque', data: [{ objectName: 'a' }] }] })).join()).toMatch(
      /spec\.secretObjects\.0\.data\.0/,
    );
    expect(validate(spc({ provider: 'universal', secretObject: [] })).join()).toMatch(/secretObject/);
    expect(validate(spc({ parameters: {} })).join()).toMatch(/provider/);
  });
});

describe('rendered kustomizations validate', () => {
  const dirs = [...kustomizationDirs(join(root, 'deploy')), ...kustomizationDirs(join(root, 'test/e2e'))].map((d) => relative(root, d));

  it('include the base, the production overlay and the examples', () => {
    expect(dirs).toEqual(expect.arrayContaining(['deploy/base', 'deploy/overlays/production', 'deploy/examples/file', 'deploy/examples/kubernetes']));
  });

  it.each(dirs)('%s', async (dir) => {
    const docs = await kustomize(join(root, dir));
    expect(docs.length).toBeGreaterThan(0);
    for (const doc of docs) expect(validate(doc), `${dir}: ${label(doc)}`).toEqual([]);
  });
});

describe('manifest files validate', () => {
  const files = manifestFiles().map((f) => relative(root, f));

  it('include deploy/install.yaml, the examples\' classes and pods and the e2e manifests', () => {
    expect(files).toEqual(
      expect.arrayContaining([
        'deploy/install.yaml',
        'deploy/examples/file/secretproviderclass.yaml',
        'deploy/examples/kubernetes/pod.yaml',
        'deploy/examples/kubernetes/rbac.yaml',
      ]),
    );
    expect(files.some((f) => f.startsWith('test/e2e/'))).toBe(true);
  });

  it.each(files)('%s', (file) => {
    const docs = parseDocs(readFileSync(join(root, file), 'utf8'), file);
    expect(docs.length).toBeGreaterThan(0);
    for (const doc of docs) expect(validate(doc), `${file}: ${label(doc)}`).toEqual([]);
  });
});

describe('YAML examples in README.md and docs/ validate', () => {
  const found = documentedObjects();

  it('include SecretProviderClass examples', () => {
    expect(found.filter(({ doc }) => doc.kind === 'SecretProviderClass').length).toBeGreaterThan(0);
  });

  it.each(found.map(({ where, doc }) => [`${where} ${label(doc)}`, doc] as const))('%s', (_name, doc) => {
    expect(validate(doc)).toEqual([]);
  });
});
