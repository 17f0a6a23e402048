import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCanaries } from '../helpers/canary.js';
import { driverRequest, fileMap, type PodOptions } from '../helpers/driver-client.js';
import { startTestProvider, type TestProvider } from '../helpers/provider.js';
import { providerConfigYaml } from '../helpers/yaml.js';
import { serviceAccountUser, startKubernetesTestServer, type KubernetesTestServer } from '../servers/kubernetes.js';

const canaries = createCanaries();
const values = Array.from({ length: 60 }, (_, i) => canaries.next(`k8s-find-${i}`));
const denied = canaries.next('k8s-find-denied');
const deniedName = 'app-hidden-4d1e';
const errors: string[] = [];

let api: KubernetesTestServer;
let p: TestProvider;

const objects = (...entries: object[]) => stringify(entries);
const secretName = (i: number) => `app-${String(i).padStart(2, '0')}`;

function asApp(): PodOptions {
  const { token, expiresAt } = api.issueToken({ namespace: 'shop', serviceAccount: 'app' });
  canaries.add(token);
  return { serviceAccount: 'app', tokens: { '': { token, expirationTimestamp: new Date(expiresAt).toISOString() } } };
}

const listCalls = () => api.requests.filter((r) => r.method === 'GET' && /\/namespaces\/shop\/secrets$/.test(r.path)).length;

beforeAll(async () => {
  api = await startKubernetesTestServer();
  values.forEach((value, i) => api.putSecret({ namespace: 'shop', name: secretName(i), data: { token: value }, labels: { team: i < 3 ? 'pay' : 'web' } }));
  api.putSecret({ namespace: 'shop', name: deniedName, data: { token: denied }, labels: { team: 'pay' } });
  api.putSecret({ namespace: 'shop', name: 'other', data: { token: 'x' }, labels: { team: 'pay' } });
  api.putConfigMap({ namespace: 'shop', name: 'app-settings', data: { 'a.conf': 'on' }, labels: { team: 'pay' } });
  api.allow({ subject: serviceAccountUser('shop', 'app'), namespace: 'shop', resource: 'secrets', verbs: ['list'] });
  api.allow({ subject: serviceAccountUser('shop', 'app'), namespace: 'shop', resource: 'configmaps', verbs: ['list'] });
  const kubeconfigPath = join(tmpdir(), `usp-find-kubeconfig-${process.pid}`);
  await api.writeKubeconfig(kubeconfigPath);
  const kubeconfig = await readFile(kubeconfigPath);
  await rm(kubeconfigPath);
  const store = { backend: 'kubernetes', kubeconfig: '../kubeconfig', retry: { attempts: 1 } };
  p = await startTestProvider({
    files: { kubeconfig },
    config: providerConfigYaml({
      defaultStore: 'cluster',
      limits: { maxObjects: 200 },
      stores: [
        { name: 'cluster', ...store, cache: { ttl: 0 }, access: [{ deny: { refs: [`${deniedName}*`] } }] },
        { name: 'cached', ...store, cache: { ttl: '1h' } },
      ],
    }),
  });
});

afterAll(async () => {
  const metrics = await p.metrics.registry.metrics();
  await p.stop();
  await api.close();
  canaries.expectNoneIn(p.logs, 'provider logs');
  canaries.expectNoneIn(errors, 'gRPC error messages');
  canaries.expectNoneIn([metrics], 'metrics');
  for (const text of [p.logs.join('\n'), errors.join('\n'), metrics]) expect(text).not.toContain(deniedName);
});

async function failMount(yaml: string, pod: PodOptions) {
  const err = await p.client.mountError(driverRequest(yaml, pod));
  errors.push(err.details);
  return err;
}

describe('find over a kubernetes store', () => {
  it('mounts the Secrets with the labels, values from the listing, with modes and resourceVersions', async () => {
    const before = listCalls();
    const reply = await p.client.mount(driverRequest(objects({ name: 'pay', find: { prefix: 'app-', labels: { team: 'pay' } }, key: 'token', mode: '0440' }), asApp()));
    const files = fileMap(reply);
    expect([...files.keys()].sort()).toEqual(['pay/00', 'pay/01', 'pay/02']);
    expect(files.get('pay/01')!.contents.toString()).toBe(values[1]);
    expect(files.get('pay/01')!.mode).toBe(0o440);
    const version = reply.objectVersion.find((v) => v.id === 'pay/01')!.version;
    expect(version).toBe((api.getObject('secrets', 'shop', 'app-01')!.metadata as { resourceVersion: string }).resourceVersion);
    // One listing call, no reads: the values came with it.
    expect(listCalls() - before).toBe(1);
    expect(api.requests.filter((r) => /\/secrets\/app-/.test(r.path))).toEqual([]);
  });

  it('pages through a namespace: one call per page', async () => {
    const before = listCalls();
    const reply = await p.client.mount(driverRequest(objects({ name: 'all', find: { prefix: 'app-', limit: 150 }, key: 'token' }), asApp()));
    expect(fileMap(reply).size).toBe(60);
    expect(fileMap(reply).get('all/59')!.contents.toString()).toBe(values[59]);
    expect(listCalls() - before).toBe(2);
  });

  it('lists ConfigMaps with kind: configmap', async () => {
    const reply = await p.client.mount(driverRequest(objects({ name: 'cm', find: { prefix: 'shop/app-' }, kind: 'configmap', expand: 'keys' }), asApp()));
    expect(fileMap(reply).get('cm/settings/a.conf')!.contents.toString()).toBe('on');
  });

  it('shows a Secret added or removed on the next Mount', async () => {
    const request = () => driverRequest(objects({ name: 'pay', find: { prefix: 'app-', labels: { team: 'pay' } }, key: 'token' }), asApp());
    api.putSecret({ namespace: 'shop', name: 'app-new', data: { token: 'fresh' }, labels: { team: 'pay' } });
    expect(fileMap(await p.client.mount(request())).get('pay/new')!.contents.toString()).toBe('fresh');
    api.deleteObject('secrets', 'shop', 'app-new');
    expect(fileMap(await p.client.mount(request())).has('pay/new')).toBe(false);
  });

  it('caches a listing per identity for the TTL and coalesces concurrent ones', async () => {
    const request = () => driverRequest(objects({ name: 'pay', store: 'cached', find: { prefix: 'app-', labels: { team: 'pay' } }, key: 'token' }), asApp());
    const before = listCalls();
    await Promise.all(Array.from({ length: 5 }, () => p.client.mount(request())));
    await p.client.mount(request());
    expect(listCalls() - before).toBe(1);
  });

  it('needs the RBAC verb list: get alone is PermissionDenied', async () => {
    const { token, expiresAt } = api.issueToken({ namespace: 'shop', serviceAccount: 'reader' });
    canaries.add(token);
    api.allow({ subject: serviceAccountUser('shop', 'reader'), namespace: 'shop', resource: 'secrets' });
    const err = await failMount(objects({ name: 'x', find: { prefix: 'app-' } }), {
      serviceAccount: 'reader',
      tokens: { '': { token, expirationTimestamp: new Date(expiresAt).toISOString() } },
    });
    expect(err.code).toBe(status.PERMISSION_DENIED);
    expect(err.details).toContain('may not list the Secrets of namespace shop');
  });

  it('fails the whole Mount when page two fails, mounting nothing', async () => {
    api.inject({ kind: 'status', status: 500 }, { match: /continue/, times: 5 });
    const err = await failMount(objects({ name: 'all', find: { prefix: 'app-', limit: 150 } }), asApp());
    api.faults.clear();
    expect(err.code).toBe(status.UNAVAILABLE);
    expect(err.details).toContain('find prefix "app-"');
  });

  it('refuses more matches than the limit, naming the count', async () => {
    const err = await failMount(objects({ name: 'all', find: { prefix: 'app-', limit: 40 } }), asApp());
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toContain('found 60 secrets, more than the limit of 40');
  });
});
