/** The find bench row (bench/find.ts) at test size: one listing per identity per TTL, no reads. */
import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { measureFind } from '../../bench/find.js';
import { startTestProvider, type TestProvider } from '../helpers/provider.js';
import { providerConfigYaml } from '../helpers/yaml.js';
import { startKubernetesTestServer, type KubernetesTestServer } from '../servers/kubernetes.js';

let api: KubernetesTestServer;
let p: TestProvider;

beforeAll(async () => {
  api = await startKubernetesTestServer();
  const path = join(tmpdir(), `usp-find-bench-kubeconfig-${process.pid}`);
  await api.writeKubeconfig(path);
  const kubeconfig = await readFile(path);
  await rm(path);
  p = await startTestProvider({
    files: { kubeconfig },
    config: providerConfigYaml({ stores: [{ name: 'amp', backend: 'kubernetes', kubeconfig: '../kubeconfig', cache: { ttl: '1h' } }] }),
  });
});

afterAll(async () => {
  await p.stop();
  await api.close();
});

it('costs one listing for many Mounts by one identity, and no reads', async () => {
  const row = await measureFind(p.client, api, { store: 'amp', mounts: 30 });
  expect(row).toEqual({ mounts: 30, secrets: 50, listCalls: 1, readCalls: 0, filesPerMount: 50 });
});
