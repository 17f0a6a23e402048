import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bytesContent } from '../../src/backends/kit/content.js';
import { createValueCache } from '../../src/stores/cache.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { createCanaries } from '../helpers/canary.js';
import { driverRequest, fileMap, type PodOptions } from '../helpers/driver-client.js';
import { startTestProvider, type TestProvider } from '../helpers/provider.js';
import { serviceAccountUser, startKubernetesTestServer, type KubernetesTestServer } from '../servers/kubernetes.js';

const canaries = createCanaries();
const value = canaries.next('cached');
let api: KubernetesTestServer;
let p: TestProvider;
let clock = Date.now();
const errors: string[] = [];

const config = `
versionKey: cache-version-key-0123456789
stores:
  - name: cluster
    backend: kubernetes
    kubeconfig: ../kubeconfig
    cache: {ttl: 10s, staleIfError: 5m}
    breaker: {failures: 1000}
  - name: nocache
    backend: kubernetes
    kubeconfig: ../kubeconfig
    cache: {ttl: 0}
  - name: files
    backend: file
    root: ../secrets
    cache: {ttl: 1s}
`;

function pod(serviceAccount: string, namespace = 'shop'): PodOptions {
  const { token, expiresAt } = api.issueToken({ namespace, serviceAccount, expiresInSeconds: 7200 });
  canaries.add(token);
  return { namespace, serviceAccount, tokens: { '': { token, expirationTimestamp: new Date(expiresAt).toISOString() } } };
}

const reads = (name: string) => api.requests.filter((r) => r.path.endsWith(`/secrets/${name}`)).length;
const metric = async (name: string, store: string) => {
  const text = await p.metrics.registry.metrics();
  return Number(new RegExp(`^${name}\\{store="${store}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? 0);
};

beforeAll(async () => {
  api = await startKubernetesTestServer();
  for (let i = 0; i < 10; i++) {
    api.putSecret({ namespace: 'shop', name: `s${i}`, data: { v: `${value}-${i}` } });
  }
  api.putSecret({ namespace: 'shop', name: 'db', data: { v: value } });
  for (const sa of ['app', ...Array.from({ length: 10 }, (_, i) => `sa${i}`)]) {
    api.allow({ subject: serviceAccountUser('shop', sa), namespace: 'shop', resource: 'secrets' });
  }
  const kubeconfigPath = join(tmpdir(), `usp-kubeconfig-cache-${process.pid}`);
  await api.writeKubeconfig(kubeconfigPath);
  const kubeconfig = await readFile(kubeconfigPath);
  await rm(kubeconfigPath);
  p = await startTestProvider({ config, files: { kubeconfig, 'secrets/x': 'one' }, now: () => clock });
});

afterAll(async () => {
  await p.stop();
  await api.close();
  canaries.expectNoneIn(p.logs, 'provider logs');
  canaries.expectNoneIn(errors, 'error messages');
});

describe('identity-aware cache', () => {
  it('never serves one identity a value cached for another', async () => {
    api.putSecret({ namespace: 'shop', name: 'only-app', data: { v: canaries.next('only-app') } });
    api.allow({ subject: serviceAccountUser('shop', 'app'), namespace: 'shop', resource: 'secrets', names: ['only-app'] });
    const objects = '- {name: v, store: cluster, ref: only-app, key: v}';
    const first = await p.client.mount(driverRequest(objects, pod('app')));
    expect(first.files).toHaveLength(1);
    const again = await p.client.mount(driverRequest(objects, pod('app')));
    expect(Buffer.compare(again.files[0]!.contents, first.files[0]!.contents)).toBe(0);
    expect(reads('only-app')).toBe(1);
    // Same ref, same namespace, another service account: it goes to the store, which refuses.
    api.putSecret({ namespace: 'shop', name: 'secret-of-other', data: { v: 'x' } });
    const denied = await p.client.mountError(driverRequest(objects, pod('intruder')));
    errors.push(denied.details);
    expect(denied.code).toBe(status.PERMISSION_DENIED);
    expect(reads('only-app')).toBe(2);
  });

  it('still requires a valid pod token on a cache hit', async () => {
    const objects = '- {name: v, store: cluster, ref: db, key: v}';
    await p.client.mount(driverRequest(objects, pod('app')));
    const noToken = await p.client.mountError(driverRequest(objects, { serviceAccount: 'app' }));
    errors.push(noToken.details);
    expect(noToken.code).toBe(status.PERMISSION_DENIED);
  });

  it('coalesces 100 concurrent Mounts of one identity into one call per object, and 10 identities into 10', async () => {
    const objects = Array.from({ length: 10 }, (_, i) => `- {name: f${i}, store: nocache, ref: s${i}, key: v}`).join('\n');
    const before = Array.from({ length: 10 }, (_, i) => reads(`s${i}`));
    api.inject({ kind: 'latency', ms: 300 }, { times: 10 });
    const one = pod('app');
    const replies = await Promise.all(Array.from({ length: 100 }, () => p.client.mount(driverRequest(objects, one))));
    for (const reply of replies) expect(fileMap(reply).get('f3')?.contents.toString()).toBe(`${value}-3`);
    const calls = Array.from({ length: 10 }, (_, i) => reads(`s${i}`) - before[i]!);
    expect(calls).toEqual(Array(10).fill(1));
    expect(await metric('usp_cache_coalesced_total', 'nocache')).toBeGreaterThanOrEqual(990);

    const pods = Array.from({ length: 10 }, (_, i) => pod(`sa${i}`));
    api.inject({ kind: 'latency', ms: 300 }, { times: 100 });
    const start = Array.from({ length: 10 }, (_, i) => reads(`s${i}`));
    await Promise.all(Array.from({ length: 100 }, (_, i) => p.client.mount(driverRequest(objects, pods[i % 10]))));
    const total = Array.from({ length: 10 }, (_, i) => reads(`s${i}`) - start[i]!).reduce((a, b) => a + b, 0);
    expect(total).toBe(100);
  });

  it('keeps nothing when the cache is off', async () => {
    const objects = '- {name: v, store: nocache, ref: db, key: v}';
    const before = reads('db');
    await p.client.mount(driverRequest(objects, pod('app')));
    await p.client.mount(driverRequest(objects, pod('app')));
    expect(reads('db') - before).toBe(2);
  });

  it('expires values after the TTL', async () => {
    const req = driverRequest('- {name: x, store: files, ref: x}');
    expect(fileMap(await p.client.mount(req)).get('x')?.contents.toString()).toBe('one');
    await p.write('secrets/x', 'two');
    expect(fileMap(await p.client.mount(req)).get('x')?.contents.toString()).toBe('one');
    clock += 1_100;
    expect(fileMap(await p.client.mount(req)).get('x')?.contents.toString()).toBe('two');
  });

  it('serves a stale value within staleIfError when the store fails, and not beyond', async () => {
    const objects = '- {name: v, store: cluster, ref: s0, key: v}';
    const app = pod('app');
    await p.client.mount(driverRequest(objects, app));
    clock += 11_000;
    api.inject({ kind: 'status', status: 500 }, { times: 3 });
    const stale = await p.client.mount(driverRequest(objects, app));
    expect(stale.files[0]!.contents.toString()).toBe(`${value}-0`);
    expect(await metric('usp_cache_stale_served_total', 'cluster')).toBe(1);
    expect(p.logs.some((l) => l.includes('serving a cached value (staleIfError)'))).toBe(true);
    clock += 6 * 60_000;
    api.inject({ kind: 'status', status: 500 }, { times: 3 });
    const err = await p.client.mountError(driverRequest(objects, app));
    errors.push(err.details);
    expect(err.code).toBe(status.UNAVAILABLE);
  });

  it('never serves a stale value when the store refuses (403 is not an outage)', async () => {
    const objects = '- {name: v, store: cluster, ref: s1, key: v}';
    const app = pod('app');
    await p.client.mount(driverRequest(objects, app));
    clock += 11_000;
    api.inject({ kind: 'status', status: 403 }, { times: 1 });
    const err = await p.client.mountError(driverRequest(objects, app));
    errors.push(err.details);
    expect(err.code).toBe(status.PERMISSION_DENIED);
  });
});

describe('class parsing', () => {
  it('parses a class once and reuses it for Mounts with the same parameters', async () => {
    const parses = async (outcome: string) =>
      Number(new RegExp(`usp_class_parses_total\\{outcome="${outcome}"\\} (\\d+)`).exec(await p.metrics.registry.metrics())?.[1] ?? 0);
    const objects = '- {name: x, store: files, ref: x}\n- {name: y, store: files, ref: x, mode: "0400"}';
    const parsedBefore = await parses('parsed');
    const reusedBefore = await parses('reused');
    for (let i = 0; i < 5; i++) await p.client.mount(driverRequest(objects, { podName: `pod-${i}` }));
    expect((await parses('parsed')) - parsedBefore).toBe(1);
    expect((await parses('reused')) - reusedBefore).toBe(4);
    await p.client.mount(driverRequest(`${objects}\n- {name: z, store: files, ref: x}`));
    expect((await parses('parsed')) - parsedBefore).toBe(2);
  });
});

describe('value cache limits', () => {
  const settings = (over: object) => ({ ttl: 60_000, maxEntries: 1000, maxBytes: 1_000_000, ...over });
  const cacheWith = (over: object) => {
    const metrics = createMetrics({ defaultMetrics: false });
    const cache = createValueCache({ store: 's', settings: settings(over), metrics, logger: pino({ level: 'silent' }), now: () => 0 });
    return { cache, metrics };
  };
  const load = (size: number) => async () => ({ content: bytesContent(Buffer.alloc(size)) });
  const signal = new AbortController().signal;

  it('evicts least recently used entries to stay within maxBytes', async () => {
    const { cache, metrics } = cacheWith({ maxBytes: 10_000 });
    for (let i = 0; i < 10; i++) await cache.get(`k${i}`, load(2_000), signal);
    expect(cache.bytes).toBeLessThanOrEqual(10_000);
    expect(cache.size).toBeLessThan(10);
    expect(cache.size).toBeGreaterThan(2);
    const evicted = Number(/usp_cache_evictions_total\{store="s"\} (\d+)/.exec(await metrics.registry.metrics())?.[1]);
    expect(evicted).toBe(10 - cache.size);
  });

  it('evicts to stay within maxEntries, keeping recently used ones', async () => {
    const { cache } = cacheWith({ maxEntries: 3 });
    let calls = 0;
    const counted = async () => {
      calls += 1;
      return { content: bytesContent('x') };
    };
    await cache.get('a', counted, signal);
    await cache.get('b', counted, signal);
    await cache.get('c', counted, signal);
    await cache.get('a', counted, signal);
    await cache.get('d', counted, signal);
    expect(cache.size).toBe(3);
    await cache.get('a', counted, signal);
    expect(calls).toBe(4);
    await cache.get('b', counted, signal);
    expect(calls).toBe(5);
  });

  it('keeps no value at all when the cache is off (ttl 0, no staleIfError)', async () => {
    const { cache } = cacheWith({ ttl: 0 });
    await cache.get('a', load(10), signal);
    await cache.get('b', load(10), signal);
    expect(cache.size).toBe(0);
    expect(cache.bytes).toBe(0);
  });

  it('does not store a value larger than maxBytes', async () => {
    const { cache } = cacheWith({ maxBytes: 1_000 });
    await cache.get('big', load(5_000), signal);
    expect(cache.size).toBe(0);
  });

  it('cancels a shared load only when every waiter gave up', async () => {
    const { cache } = cacheWith({});
    let aborted = false;
    const slow = (s: AbortSignal) =>
      new Promise<never>((_, reject) => s.addEventListener('abort', () => ((aborted = true), reject(new Error('aborted')))));
    const a = new AbortController();
    const b = new AbortController();
    const pa = cache.get('k', slow, a.signal);
    const pb = cache.get('k', slow, b.signal);
    a.abort();
    await expect(pa).rejects.toThrow(/deadline/);
    expect(aborted).toBe(false);
    b.abort();
    await expect(pb).rejects.toThrow(/deadline/);
    expect(aborted).toBe(true);
  });
});
