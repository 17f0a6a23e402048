import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createCanaries } from '../helpers/canary.js';
import { driverRequest, type PodOptions } from '../helpers/driver-client.js';
import { startTestProvider, type TestProvider } from '../helpers/provider.js';
import { serviceAccountUser, startKubernetesTestServer, type KubernetesTestServer } from '../servers/kubernetes.js';

const canaries = createCanaries();
const value = canaries.next('resilient');
let api: KubernetesTestServer;
let p: TestProvider;
let clock = Date.now();
const errors: string[] = [];

// cache off: every Mount reaches the store, so each test sees the guard's own behaviour.
const config = `
versionKey: resilience-version-key-0123456789
stores:
  - name: retrying
    backend: kubernetes
    kubeconfig: ../kubeconfig
    cache: {ttl: 0}
    retry: {attempts: 3, baseDelay: 50ms, maxDelay: 200ms}
    breaker: {failures: 1000}
  - name: fragile
    backend: kubernetes
    kubeconfig: ../kubeconfig
    cache: {ttl: 0}
    retry: {attempts: 1}
    breaker: {failures: 3, openFor: 30s}
`;

function pod(): PodOptions {
  const { token, expiresAt } = api.issueToken({ namespace: 'shop', serviceAccount: 'app', expiresInSeconds: 7200 });
  canaries.add(token);
  return { serviceAccount: 'app', tokens: { '': { token, expirationTimestamp: new Date(expiresAt).toISOString() } } };
}

const requestsFor = (name: string) => api.requests.filter((r) => r.path.endsWith(`/secrets/${name}`));
const metricValue = async (pattern: RegExp) => Number(pattern.exec(await p.metrics.registry.metrics())?.[1] ?? 0);

beforeAll(async () => {
  api = await startKubernetesTestServer();
  api.putSecret({ namespace: 'shop', name: 'db', data: { v: value } });
  api.putSecret({ namespace: 'shop', name: 'flaky', data: { v: value } });
  api.allow({ subject: serviceAccountUser('shop', 'app'), namespace: 'shop', resource: 'secrets', names: ['db', 'flaky', 'gone'] });
  const path = join(tmpdir(), `usp-kubeconfig-resilience-${process.pid}`);
  await api.writeKubeconfig(path);
  const kubeconfig = await readFile(path);
  await rm(path);
  p = await startTestProvider({ config, files: { kubeconfig }, now: () => clock });
});

afterAll(async () => {
  await p.stop();
  await api.close();
  canaries.expectNoneIn(p.logs, 'provider logs');
  canaries.expectNoneIn(errors, 'error messages');
});

beforeEach(() => api.faults.clear());

const mount = (store: string, ref = 'db', deadlineMs?: number) =>
  p.client.mount(driverRequest(`- {name: v, store: ${store}, ref: ${ref}, key: v}`, pod()), deadlineMs);
const mountError = async (store: string, ref = 'db', deadlineMs?: number) => {
  const err = await p.client.mountError(driverRequest(`- {name: v, store: ${store}, ref: ${ref}, key: v}`, pod()), deadlineMs);
  errors.push(err.details);
  return err;
};

describe('retries', () => {
  it('retries a 429 after its Retry-After, then succeeds', async () => {
    api.inject({ kind: 'status', status: 429, retryAfterSeconds: 1 });
    const before = requestsFor('flaky').length;
    const started = Date.now();
    const reply = await mount('retrying', 'flaky');
    expect(reply.files[0]!.contents.toString()).toBe(value);
    expect(requestsFor('flaky').slice(before).map((r) => r.status)).toEqual([429, 200]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(await metricValue(/usp_store_retries_total\{store="retrying"\} (\d+)/)).toBeGreaterThanOrEqual(1);
  });

  it('gives up with UNAVAILABLE after the configured attempts when 5xx persists', async () => {
    api.inject({ kind: 'status', status: 503, retryAfterSeconds: 0 }, { times: 10 });
    const before = requestsFor('db').length;
    const err = await mountError('retrying');
    expect(err.code).toBe(status.UNAVAILABLE);
    expect(err.details).toContain('the API server answered 503');
    expect(requestsFor('db').length - before).toBe(3);
  });

  it('never retries a refusal or a missing object', async () => {
    api.inject({ kind: 'status', status: 403 }, { times: 5 });
    let before = requestsFor('db').length;
    expect((await mountError('retrying')).code).toBe(status.PERMISSION_DENIED);
    expect(requestsFor('db').length - before).toBe(1);
    api.faults.clear();
    before = requestsFor('gone').length;
    expect((await mountError('retrying', 'gone')).code).toBe(status.NOT_FOUND);
    expect(requestsFor('gone').length - before).toBe(1);
  });

  it('does not wait for a Retry-After that would pass the Mount deadline', async () => {
    api.inject({ kind: 'status', status: 429, retryAfterSeconds: 30 }, { times: 5 });
    const before = requestsFor('db').length;
    const started = Date.now();
    const err = await mountError('retrying', 'db', 5_000);
    expect(err.code).toBe(status.UNAVAILABLE);
    // Waiting out the Retry-After would take 30 s; the Mount's own deadline is 5 s.
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(requestsFor('db').length - before).toBe(1);
  });
});

describe('circuit breaker', () => {
  it('opens after consecutive failures, fails fast without calling the store, then probes and closes', async () => {
    api.inject({ kind: 'status', status: 500 }, { times: 3 });
    for (let i = 0; i < 3; i++) expect((await mountError('fragile')).code).toBe(status.UNAVAILABLE);
    expect(await metricValue(/usp_store_circuit_state\{store="fragile"\} (\d+)/)).toBe(2);

    const before = requestsFor('db').length;
    const fast = await mountError('fragile');
    expect(fast.code).toBe(status.UNAVAILABLE);
    expect(fast.details).toContain('store fragile is failing (3 calls in a row failed); not calling it for another 30s');
    expect(requestsFor('db').length).toBe(before);
    expect(await metricValue(/usp_store_circuit_rejections_total\{store="fragile"\} (\d+)/)).toBe(1);
    // Other stores are not affected.
    expect((await mount('retrying')).files).toHaveLength(1);

    clock += 31_000;
    api.inject({ kind: 'status', status: 500 }, { times: 1 });
    const beforeProbe = requestsFor('db').length;
    expect((await mountError('fragile')).code).toBe(status.UNAVAILABLE);
    expect(requestsFor('db').length).toBe(beforeProbe + 1);
    expect((await mountError('fragile')).details).toContain('store fragile is failing');

    clock += 31_000;
    const probe = await mount('fragile');
    expect(probe.files[0]!.contents.toString()).toBe(value);
    expect(await metricValue(/usp_store_circuit_state\{store="fragile"\} (\d+)/)).toBe(0);
    expect((await mount('fragile')).files).toHaveLength(1);
    expect(p.logs.some((l) => l.includes('"msg":"circuit opened"'))).toBe(true);
  });
});
