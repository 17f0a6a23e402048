/**
 * `usp migrate --from azure`, in process: an Azure provider class in (the `array:` form its docs
 * use), our class and the admin's report out; the suggested store must load as provider config and
 * the converted objects must parse against it.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runMigrate } from '../../src/cli/migrate.js';
import { parseProviderConfig } from '../../src/config/load.js';
import { parseClass } from '../../src/mount/class.js';

const azureClass = `apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: shop-azure
  namespace: shop
spec:
  provider: azure
  parameters:
    usePodIdentity: "false"
    clientID: "0b9c5a1e-2f6d-4e8a-b3c7-d1e2f3a4b5c6"
    keyvaultName: kv-shop
    cloudName: AzureUSGovernmentCloud
    tenantID: "72f988bf-86f1-41af-91ab-2d7cd011db47"
    objects: |
      array:
        - |
          objectName: db-password
          objectType: secret
          objectVersion: ""
          filePermission: 0600
        - |
          objectName: web-tls
          objectType: secret
          objectAlias: web.pfx
          objectFormat: pfx
          objectEncoding: base64
        - |
          objectName: signing
          objectType: key
          objectVersion: 0123456789abcdef0123456789abcdef
        - |
          objectName: web-tls
          objectType: cert
          objectAlias: web.crt
        - |
          objectName: api-token
          objectType: secret
          objectEncoding: base64
          objectVersionHistory: 3
`;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'usp-migrate-azure-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

async function migrate(classText: string, extra: string[] = []) {
  const path = join(dir, `spc-${Math.random().toString(36).slice(2)}.yaml`);
  await writeFile(path, classText);
  const out: string[] = [];
  const err: string[] = [];
  const code = await runMigrate(['--from', 'azure', '--class', path, ...extra], { stdout: (t) => out.push(t), stderr: (t) => err.push(t), env: {} });
  return { code, stdout: out.join(''), stderr: err.join('') };
}

describe('usp migrate --from azure', () => {
  it('converts the objects and prints the store entry, which loads and accepts the converted objects', async () => {
    const outPath = join(dir, 'converted.yaml');
    const { code, stdout: report } = await migrate(azureClass, ['--out', outPath]);
    expect(code).toBe(0);
    const converted = parseYaml(await readFile(outPath, 'utf8')) as { spec: { provider: string; parameters: { objects: string } } };
    expect(converted.spec.provider).toBe('universal');
    expect(parseYaml(converted.spec.parameters.objects)).toEqual([
      { name: 'db-password', store: 'azure', ref: 'db-password', mode: '0600' },
      { name: 'web.pfx', store: 'azure', ref: 'web-tls', format: 'pfx' },
      { name: 'signing', store: 'azure', ref: 'signing', kind: 'key', version: '0123456789abcdef0123456789abcdef' },
      { name: 'web.crt', store: 'azure', ref: 'web-tls', kind: 'cert' },
      { name: 'api-token', store: 'azure', ref: 'api-token', decode: 'base64' },
    ]);
    expect(report).toContain('backend: azure-key-vault');
    expect(report).toContain('vaultName: kv-shop');
    expect(report).toContain('cloud: usgov');
    expect(report).toContain('audience: api://AzureADTokenExchange');
    expect(report).toMatch(/objects\[4\]\.objectVersionHistory: no equivalent/);

    const stores = /^stores:\n(?:[ -].*\n)+/m.exec(report)![0];
    const loaded = await parseProviderConfig(`versionKey: migrate-test-version-key-0123\n${stores}`, dir);
    if (!loaded.ok) throw new Error(loaded.problems.join('; '));
    const parsed = parseClass(new Map([['objects', converted.spec.parameters.objects]]), loaded.config);
    expect(parsed.ok ? [] : parsed.problems).toEqual([]);
  });

  it('prints what the worked example of docs/migrate-from-azure.md promises', async () => {
    const guide = await readFile(new URL('../../docs/migrate-from-azure.md', import.meta.url), 'utf8');
    const example = guide.slice(guide.indexOf('## 4. Worked example'));
    const [input, output, store] = [...example.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);
    const { code, stdout, stderr } = await migrate(input!);
    expect(code).toBe(0);
    expect(stdout).toBe(output);
    expect(stderr).toContain(store!.trimEnd());
    expect(stderr).toContain('objects[2].objectVersionHistory: no equivalent');
  });

  it('reports pod identity and the node\'s managed identity, which have no equivalent', async () => {
    const { code, stderr } = await migrate(
      azureClass.replace('usePodIdentity: "false"', 'usePodIdentity: "true"').replace('cloudName: AzureUSGovernmentCloud', 'useVMManagedIdentity: "true"'),
    );
    expect(code).toBe(0);
    expect(stderr).toMatch(/parameters\.usePodIdentity: AAD pod identity has no equivalent/);
    expect(stderr).toMatch(/parameters\.useVMManagedIdentity: the node's managed identity has no equivalent/);
  });

  it('refuses a class without a vault or with an unknown object type, naming the field', async () => {
    const { code, stderr } = await migrate(azureClass.replace('    keyvaultName: kv-shop\n', '').replace('objectType: key', 'objectType: blob'));
    expect(code).toBe(1);
    expect(stderr).toContain('parameters.keyvaultName: missing');
    expect(stderr).toContain('objects[2].objectType: must be secret, key or cert');
  });
});
