/**
 * `usp migrate --from gcp`, in process: the worked example of docs/migrate-from-gcp.md, a class
 * that validates against the store entry the report suggests, and what has no equivalent.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import type { Io } from '../../src/cli/flags.js';
import { runMigrate } from '../../src/cli/migrate.js';
import { runValidate } from '../../src/cli/validate.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const example = join(root, 'deploy/examples/gcp/gcp-provider-spc.yaml');
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'usp-migrate-gcp-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function run(command: (args: string[], io: Io) => Promise<number>, args: string[]) {
  let stdout = '';
  let stderr = '';
  const code = await command(args, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), env: {} });
  return { code, stdout, stderr };
}

/** The fenced block right after `<!-- MARKER -->` in the guide. */
async function guideBlock(marker: string): Promise<string> {
  const text = await readFile(join(root, 'docs/migrate-from-gcp.md'), 'utf8');
  const at = text.indexOf(`<!-- ${marker} -->`);
  expect(at, `docs/migrate-from-gcp.md has <!-- ${marker} -->`).toBeGreaterThanOrEqual(0);
  return /```[a-z]*\n([\s\S]*?)```/.exec(text.slice(at))![1]!;
}

async function writeVendorClass(name: string, parameters: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(
    path,
    `apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: old, namespace: shop}
spec:
  provider: gcp
  parameters:
${parameters}`,
  );
  return path;
}

describe('usp migrate --from gcp, the worked example', () => {
  let report: string;
  let converted: string;

  beforeAll(async () => {
    const out = join(dir, 'shop-gcp.yaml');
    const result = await run(runMigrate, ['--from', 'gcp', '--class', example, '--out', out]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    report = result.stdout.replace(out, 'shop-gcp.yaml');
    converted = await readFile(out, 'utf8');
  });

  it('converts secrets with path or fileName, versions, modes and extractJSONKey', () => {
    const objects = parseYaml(parseYaml(converted).spec.parameters.objects);
    expect(objects).toEqual([
      { name: 'db.json', store: 'gcp', ref: 'projects/shop-prod/secrets/db' },
      { name: 'db-password', store: 'gcp', ref: 'projects/shop-prod/secrets/db', key: 'password' },
      { name: 'stripe-key', store: 'gcp', ref: 'projects/shop-prod/secrets/stripe', version: '4', mode: '0400' },
      { name: 'flags.yaml', store: 'gcp', ref: 'projects/shop-prod/locations/europe-west1/secrets/flags', version: 'stable' },
    ]);
    expect(parseYaml(converted).spec.secretObjects).toEqual(parseYaml(readFileSync(example, 'utf8')).spec.secretObjects);
  });

  it('prints the store entry, the token audience and what needs attention', () => {
    expect(report).toContain('backend: gcp-secret-manager');
    expect(report).toContain('audience: identitynamespace:shop-prod.svc.id.goog:https://container.googleapis.com/v1/projects/shop-prod/locations/LOCATION/clusters/CLUSTER');
    expect(report).toContain('- audience: shop-prod.svc.id.goog');
    expect(report).toContain('secrets[3].extractYAMLKey: no equivalent');
    expect(report).toContain('iam.gke.io/gcp-service-account');
    expect(report).toContain('auth: pod-adc is how this store always reads');
  });

  it('writes the class and the report the guide shows', async () => {
    expect(converted).toBe(await guideBlock('usp migrate output: gcp'));
    expect(report).toBe(await guideBlock('usp migrate report: gcp'));
  });

  it('is accepted by usp validate against the suggested store entry', async () => {
    const stores = /^stores:\n(?:[ -].*\n)+/m.exec(report)![0];
    const config = join(dir, 'config.yaml');
    await writeFile(config, `versionKey: migrate-test-version-key-0123\n${stores}`);
    const result = await run(runValidate, ['--config', config, '--class', join(dir, 'shop-gcp.yaml'), '--namespace', 'shop', '--service-account', 'shop']);
    expect(result.stdout + result.stderr).toBe('ok: config and class shop-gcp are valid\n');
    expect(result.code).toBe(0);
  });
});

describe('usp migrate --from gcp reports what has no equivalent', () => {
  it('reports provider-adc, and a mode that is not one, and still converts', async () => {
    const path = await writeVendorClass(
      'provider-adc.yaml',
      `    auth: provider-adc
    secrets: |
      - {resourceName: projects/123/secrets/a/versions/latest, path: a, mode: 0999, extra: 1}
`,
    );
    const result = await run(runMigrate, ['--from', 'gcp', '--class', path]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('provider: universal');
    expect(result.stderr).toContain('parameters.auth: provider-adc (the provider\'s own credentials) has no equivalent');
    expect(result.stderr).toContain('secrets[0].mode: ');
    expect(result.stderr).toContain('secrets[0].extra: unknown field');
  });

  it('refuses a class it cannot convert with exit code 1, naming each problem', async () => {
    const path = await writeVendorClass(
      'bad.yaml',
      `    auth: node-adc
    secrets: |
      - {resourceName: projects/p/secrets/a}
      - {resourceName: projects/p/secrets/b/versions/1}
`,
    );
    const result = await run(runMigrate, ['--from', 'gcp', '--class', path]);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('secrets[0].resourceName: must be projects/P/secrets/S/versions/V');
    expect(result.stderr).toContain('secrets[1].path: missing (or fileName)');
    expect(result.stderr).toContain('parameters.auth: "node-adc" is not pod-adc or provider-adc');
  });

  it('refuses a class of another provider as a usage error', async () => {
    await expect(run(runMigrate, ['--from', 'gcp', '--class', join(root, 'deploy/examples/migrate/aws-spc.yaml')])).rejects.toThrow(/not gcp/);
  });
});
