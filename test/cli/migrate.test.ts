import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runUsp } from '../helpers/bin.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const examples = join(root, 'deploy/examples/migrate');
const vaultCa = join(root, 'deploy/examples/vault/vault-ca.pem');
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'usp-migrate-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The fenced block right after `<!-- MARKER -->` in a guide: what the guide promises the command prints. */
async function guideBlock(guide: string, marker: string): Promise<string> {
  const text = await readFile(join(root, 'docs', guide), 'utf8');
  const at = text.indexOf(`<!-- ${marker} -->`);
  expect(at, `${guide} has <!-- ${marker} -->`).toBeGreaterThanOrEqual(0);
  const match = /```[a-z]*\n([\s\S]*?)```/.exec(text.slice(at));
  expect(match, `a code block after <!-- ${marker} --> in ${guide}`).not.toBeNull();
  return match![1]!;
}

/** The `stores:` list the report suggests, as a provider config (with a version key, as production needs). */
function configFromReport(report: string, rewrite: (text: string) => string = (t) => t): string {
  const block = /^stores:\n(?:[ -].*\n)+/m.exec(report);
  expect(block, 'the report suggests a stores: entry').not.toBeNull();
  return `versionKey: migrate-test-version-key-0123\n${rewrite(block![0])}`;
}

describe.each([
  {
    from: 'vault',
    guide: 'migrate-from-vault.md',
    extra: [] as string[],
    // The CA path is the node's; the admin copies the CA into the provider config instead.
    rewrite: (t: string) => t.replace('/vault/tls/ca.crt', vaultCa),
  },
  {
    from: 'aws',
    guide: 'migrate-from-aws.md',
    extra: ['--role', 'arn:aws:iam::123456789012:role/shop-secrets'],
    rewrite: (t: string) => t,
  },
])('usp migrate --from $from', ({ from, guide, extra, rewrite }) => {
  let report: string;
  let converted: string;

  beforeAll(async () => {
    const result = await runUsp(
      ['migrate', '--from', from, '--class', join(examples, `${from}-spc.yaml`), ...extra, '--out', `shop-${from}.yaml`],
      { cwd: dir },
    );
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    report = result.stdout;
    converted = await readFile(join(dir, `shop-${from}.yaml`), 'utf8');
  });

  it('writes the class the guide shows', async () => {
    expect(converted).toBe(await guideBlock(guide, `usp migrate output: ${from}`));
  });

  it('prints the report the guide shows', async () => {
    expect(report).toBe(await guideBlock(guide, `usp migrate report: ${from}`));
  });

  it('keeps metadata and secretObjects and switches the provider', async () => {
    const vendor = parseYaml(await readFile(join(examples, `${from}-spc.yaml`), 'utf8'));
    const ours = parseYaml(converted);
    expect(ours.metadata).toEqual(vendor.metadata);
    expect(ours.spec.secretObjects).toEqual(vendor.spec.secretObjects);
    expect(ours.spec.provider).toBe('universal');
    const names = parseYaml(ours.spec.parameters.objects).map((o: { name: string }) => o.name);
    for (const { data } of vendor.spec.secretObjects) {
      for (const { objectName } of data) expect(names, `secretObjects refers to ${objectName}`).toContain(objectName);
    }
  });

  it('is accepted by usp validate against the suggested store entry', async () => {
    const config = join(dir, `config-${from}.yaml`);
    await writeFile(config, configFromReport(report, rewrite));
    const result = await runUsp(
      ['validate', '--config', config, '--class', join(dir, `shop-${from}.yaml`), '--namespace', 'shop', '--service-account', 'shop'],
      { cwd: dir },
    );
    expect(result.stdout).toBe('ok: config and class ' + `shop-${from}` + ' are valid\n');
    expect(result.code).toBe(0);
  });
});

describe('usp migrate reports what has no equivalent', () => {
  it('lists vault settings and AWS failover objects that need attention, and still converts', async () => {
    const vault = join(dir, 'skip-verify.yaml');
    await writeFile(
      vault,
      `apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: old, namespace: shop}
spec:
  provider: vault
  parameters:
    vaultSkipTLSVerify: "true"
    objects: |
      - {objectName: a, secretPath: secret/data/a, secretArgs: {x: 1}}
`,
    );
    const v = await runUsp(['migrate', '--from', 'vault', '--class', vault]);
    expect(v.code).toBe(0);
    expect(v.stdout).toContain('provider: universal');
    expect(v.stderr).toContain('parameters.vaultSkipTLSVerify: no equivalent');
    expect(v.stderr).toContain('parameters.vaultAddress: not set');
    expect(v.stderr).toContain('parameters.roleName: not set');
    expect(v.stderr).toContain('objects[0].secretArgs: args need method POST or PUT');

    const aws = join(dir, 'failover.yaml');
    await writeFile(
      aws,
      `apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: old, namespace: shop}
spec:
  provider: aws
  parameters:
    objects: |
      - {objectName: shop/db, objectType: secretsmanager, failoverObject: {objectName: shop/db-replica}}
`,
    );
    const a = await runUsp(['migrate', '--from', 'aws', '--class', aws]);
    expect(a.code).toBe(0);
    expect(a.stderr).toContain('objects[0].failoverObject: a failover object with another name (shop/db-replica) has no equivalent');
    expect(a.stderr).toContain('parameters.region: not set');
    expect(a.stderr).toContain('parameter role: IRSA here assumes the role the class names');
  });

  it('refuses a class it cannot convert with exit code 1', async () => {
    const bad = join(dir, 'bad.yaml');
    await writeFile(
      bad,
      `apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: old, namespace: shop}
spec:
  provider: aws
  parameters:
    objects: |
      - {objectName: shop/x, objectType: s3}
`,
    );
    const a = await runUsp(['migrate', '--from', 'aws', '--class', bad]);
    expect(a.code).toBe(1);
    expect(a.stdout).toBe('');
    expect(a.stderr).toContain('objects[0].objectType: must be secretsmanager or ssmparameter');
  });

  it('answers usage errors with exit code 2', async () => {
    expect((await runUsp(['migrate', '--from', 'gcp', '--class', 'x.yaml'])).code).toBe(2);
    expect((await runUsp(['migrate', '--from', 'vault', '--class', join(examples, 'aws-spc.yaml')])).code).toBe(2);
  });
});
