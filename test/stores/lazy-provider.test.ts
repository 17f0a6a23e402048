import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseProviderConfig } from '../../src/config/load.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { createStores } from '../../src/stores/stores.js';
import { driverRequest, fileMap } from '../helpers/driver-client.js';
import { startTestProvider, type TestProvider } from '../helpers/provider.js';

/**
 * The provider with a store of several kinds and no Mount yet: no client is loaded, `/readyz`
 * says so, and a Mount loads only the client of the store it uses. The vault and AWS stores point
 * at closed ports: they are never called.
 */
const config = `
stores:
  - {name: files, backend: file, root: ./secrets}
  - {name: vault, backend: vault, address: "https://127.0.0.1:9", auth: {method: kubernetes, role: app}}
  - {name: ssm, backend: aws-parameter-store, region: eu-west-1, auth: {method: irsa, stsEndpoint: "http://127.0.0.1:9"}}
`;

let p: TestProvider;

beforeAll(async () => {
  p = await startTestProvider({ config, files: { 'config/secrets/a': 'value-a' } });
});

afterAll(async () => {
  await p.stop();
});

async function readyz(): Promise<{ status: number; body: { ready: boolean; stores: Array<{ store: string; client: string }> } }> {
  const res = await fetch(`http://${p.httpAddress}/readyz`);
  return { status: res.status, body: (await res.json()) as never };
}

describe('stores of several kinds, before and after a Mount', () => {
  it('starts ready with no client loaded, and a Mount loads only its own store\'s', async () => {
    const before = await readyz();
    expect(before.status).toBe(200);
    expect(before.body.ready).toBe(true);
    expect(before.body.stores.map((s) => [s.store, s.client])).toEqual([
      ['files', 'idle'],
      ['vault', 'idle'],
      ['ssm', 'idle'],
    ]);

    const reply = await p.client.mount(driverRequest('- {name: a, store: files, ref: a}'));
    expect(fileMap(reply).get('a')?.contents.toString()).toBe('value-a');
    const after = await readyz();
    expect(after.body.stores.map((s) => [s.store, s.client])).toEqual([
      ['files', 'loaded'],
      ['vault', 'idle'],
      ['ssm', 'idle'],
    ]);
    const metrics = await p.metrics.registry.metrics();
    expect(metrics).toContain('usp_store_client_state{store="files",backend="file"} 2');
    expect(metrics).toContain('usp_store_client_state{store="ssm",backend="aws-parameter-store"} 0');
  });
});

/**
 * What `create` read from disk before clients loaded lazily still refuses a config at start: each
 * kind that names files in its options checks them in its `preflight`.
 */
describe('a store whose files cannot be read refuses the config at start', () => {
  const deps = { logger: pino({ level: 'silent' }), metrics: createMetrics({ defaultMetrics: false }), now: Date.now };
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'usp-preflight-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const cases = [
    ['vault', '{name: s, backend: vault, address: "https://vault.example:8200", tls: {caFile: ./missing-ca.pem}, auth: {method: kubernetes, role: app}}', 'tls.caFile'],
    ['azure-key-vault', '{name: s, backend: azure-key-vault, vaultUrl: "https://v.vault.azure.net", tenantId: 0b6f1c2d-3e4a-4b5c-8d6e-7f8091a2b3c4, clientId: 0b6f1c2d-3e4a-4b5c-8d6e-7f8091a2b3c4, tls: {caFile: ./missing-ca.pem}}', 'tls.caFile'],
    [
      'gcp-secret-manager',
      '{name: s, backend: gcp-secret-manager, project: my-project, audience: "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/k", endpoints: {secretManager: "https://127.0.0.1:9"}, tls: {caFile: ./missing-ca.pem}}',
      'tls.caFile',
    ],
    ['kubernetes', '{name: s, backend: kubernetes, kubeconfig: ./missing-kubeconfig}', 'kubeconfig'],
  ] as const;

  it.each(cases)('%s', async (_kind, entry, field) => {
    const parsed = await parseProviderConfig(`stores:\n  - ${entry}\n`, dir);
    if (!parsed.ok) throw new Error(parsed.problems.join('; '));
    await expect(createStores(parsed.config, deps)).rejects.toThrow(new RegExp(`^store s cannot start: ${field}`));
  });
});
