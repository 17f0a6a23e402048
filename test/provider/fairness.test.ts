/**
 * Fair share of one store between namespaces (issue #17), through the Mount socket into the real
 * provider, over HTTPS to the Vault test server answering every read in 100 ms. The store keeps the
 * defaults (concurrency 16, fairness maxShare 0.75, breaker after 5 failures); only the value cache
 * is off, so every object of every Mount is a store call.
 */
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCanaries } from '../helpers/canary.js';
import { driverRequest, type MountReply } from '../helpers/driver-client.js';
import { startTestProvider, type TestProvider } from '../helpers/provider.js';
import { startVaultTestServer, type VaultTestServer } from '../servers/vault.js';

const canaries = createCanaries();
const noisyPods = 60;
const objectsPerPod = 10;
const readLatencyMs = 100;

let vault: VaultTestServer;
let p: TestProvider;

beforeAll(async () => {
  vault = await startVaultTestServer();
  vault.enableKv('secret', 2);
  for (let pod = 0; pod < noisyPods; pod++) {
    for (let j = 0; j < objectsPerPod; j++) vault.writeKv('secret', `noisy/pod-${pod}/s${j}`, { v: canaries.next('noisy') });
  }
  for (let j = 0; j < objectsPerPod; j++) vault.writeKv('secret', `quiet/s${j}`, { v: canaries.next('quiet') });
  for (const ns of ['noisy', 'quiet', 'walled']) {
    vault.definePolicy(ns, ns === 'walled' ? {} : { [`secret/data/${ns}/*`]: ['read'] });
    vault.defineRole({ name: ns, boundServiceAccountNames: ['*'], boundNamespaces: [ns], policies: [ns] });
  }
  p = await startTestProvider({
    config: `
defaultStore: vault
stores:
  - name: vault
    backend: vault
    address: ${vault.url}
    tls: {caFile: ../ca.pem}
    auth: {method: kubernetes}
    cache: {ttl: 0s}
`,
    files: { 'ca.pem': vault.ca.cert },
  });
}, 60_000);

afterAll(async () => {
  const metrics = p ? await p.metrics.registry.metrics() : '';
  await p?.stop();
  await vault?.close();
  canaries.add(...(vault?.issuedTokens ?? []));
  canaries.expectNoneIn(p?.logs ?? [], 'provider logs');
  canaries.expectNoneIn([metrics], 'metrics');
});

function request(namespace: string, serviceAccount: string, podName: string, refs: readonly string[]) {
  const { token, expiresAt } = vault.issuePodToken({ namespace, serviceAccount, audience: 'vault' });
  canaries.add(token);
  const objects = refs.map((ref, i) => `- {name: f${i}, ref: ${ref}, key: v}`).join('\n');
  return driverRequest(objects, {
    namespace,
    serviceAccount,
    podName,
    parameters: { role: namespace },
    tokens: { vault: { token, expirationTimestamp: new Date(expiresAt).toISOString() } },
  });
}

const quietRefs = Array.from({ length: objectsPerPod }, (_, j) => `secret/quiet/s${j}`);
const noisyRefs = (pod: number) => Array.from({ length: objectsPerPod }, (_, j) => `secret/noisy/pod-${pod}/s${j}`);

async function timed<T>(work: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const started = performance.now();
  const value = await work();
  return { ms: performance.now() - started, value };
}

const mountQuiet = () => timed(() => p.client.mount(request('quiet', 'web', 'quiet-0', quietRefs)));

async function metricValue(pattern: RegExp): Promise<number> {
  return Number(pattern.exec(await p.metrics.registry.metrics())?.[1] ?? 0);
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

describe('fair share of a store between namespaces', () => {
  it("keeps a quiet namespace's Mount within 3x its time alone while another namespace bursts 60 pods x 10 objects", async () => {
    // Logs in and learns the KV mount, so the measured Mounts are reads only.
    await mountQuiet();
    vault.inject({ kind: 'latency', ms: readLatencyMs }, { times: Infinity, match: '/v1/secret/data/' });
    const alone = median([(await mountQuiet()).ms, (await mountQuiet()).ms, (await mountQuiet()).ms]);

    const loadsBefore = await metricValue(/usp_cache_misses_total\{store="vault"\} (\d+)/);
    const burstStarted = performance.now();
    const burst = Array.from({ length: noisyPods }, (_, pod) =>
      p.client.mount(request('noisy', `deployer-${pod % 6}`, `noisy-${pod}`, noisyRefs(pod))).then((reply) => ({ reply, ms: performance.now() - burstStarted })),
    );
    // The quiet pod starts once every call of the burst has reached the store's queue, as in the issue.
    const burstCalls = noisyPods * objectsPerPod;
    while ((await metricValue(/usp_cache_misses_total\{store="vault"\} (\d+)/)) < loadsBefore + burstCalls) await new Promise((r) => setTimeout(r, 5));
    const during = await mountQuiet();
    const replies = await Promise.all(burst);
    const burstMs = Math.max(...replies.map((r) => r.ms));
    vault.faults.clear();

    console.info(`fairness: quiet alone ${alone.toFixed(0)} ms, during the burst ${during.ms.toFixed(0)} ms (${(during.ms / alone).toFixed(2)}x); burst of ${burstCalls} calls ${burstMs.toFixed(0)} ms`);
    expect(during.value.files).toHaveLength(objectsPerPod);
    expect(during.ms).toBeLessThanOrEqual(3 * alone);
    for (const { reply } of replies) expect((reply as MountReply).files).toHaveLength(objectsPerPod);
    expect(await metricValue(/usp_store_queued_calls\{store="vault"\} (\d+)/)).toBe(0);
    // Queue metrics are per store: namespaces never become a label set.
    expect(await p.metrics.registry.metrics()).not.toMatch(/namespace="/);
    // The quiet pod's log line says how long its calls waited for a slot, in total.
    const line = p.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l['msg'] === 'mount' && l['pod'] === 'quiet-0').at(-1);
    expect(line?.['queueWaitMs']).toEqual(expect.any(Number));
    expect(line!['queueWaitMs'] as number).toBeGreaterThan(0);
  }, 60_000);

  it('drops queued calls of a Mount whose deadline passed at once, counted as deadline drops', async () => {
    vault.inject({ kind: 'latency', ms: 1_500 }, { times: 16, match: '/v1/secret/data/' });
    const holders = [0, 1].map((pod) => p.client.mount(request('noisy', 'deployer-0', `noisy-${pod}`, noisyRefs(pod))));
    while ((await metricValue(/usp_store_queued_calls\{store="vault"\} (\d+)/)) < 4) await new Promise((r) => setTimeout(r, 5));
    const before = await metricValue(/usp_store_queue_dropped_total\{store="vault",reason="deadline"\} (\d+)/);
    const started = performance.now();
    const err = await p.client.mountError(request('quiet', 'web', 'quiet-late', quietRefs), 400);
    expect(err.code).toBe(status.DEADLINE_EXCEEDED);
    // The queue let go of all 10 calls when the deadline passed, long before a slot freed.
    while ((await metricValue(/usp_store_queued_calls\{store="vault"\} (\d+)/)) > 4) await new Promise((r) => setTimeout(r, 5));
    expect(performance.now() - started).toBeLessThan(1_200);
    expect((await metricValue(/usp_store_queue_dropped_total\{store="vault",reason="deadline"\} (\d+)/)) - before).toBe(10);
    for (const reply of await Promise.all(holders)) expect(reply.files).toHaveLength(objectsPerPod);
  }, 30_000);

  it("leaves the store's circuit closed for other namespaces after a burst of denied and missing objects in one", async () => {
    // Distinct refs per pod: identical calls of one identity would share one store call.
    const denied = Array.from({ length: 10 }, (_, pod) =>
      p.client.mountError(request('walled', 'app', `walled-${pod}`, Array.from({ length: 10 }, (_, j) => `secret/walled/pod-${pod}/s${j}`))),
    );
    const missing = Array.from({ length: 10 }, (_, pod) =>
      p.client.mountError(request('noisy', 'app', `lost-${pod}`, Array.from({ length: 5 }, (_, j) => `secret/noisy/gone-${pod}/s${j}`))),
    );
    for (const err of await Promise.all(denied)) expect(err.code).toBe(status.PERMISSION_DENIED);
    for (const err of await Promise.all(missing)) expect(err.code).toBe(status.NOT_FOUND);
    // 150 failed calls, against a breaker that opens after 5 outages.
    expect(await metricValue(/usp_backend_requests_total\{store="vault",backend="vault",outcome="PermissionDenied"\} (\d+)/)).toBeGreaterThanOrEqual(100);
    expect(await metricValue(/usp_store_circuit_state\{store="vault"\} (\d+)/)).toBe(0);
    expect(await metricValue(/usp_store_circuit_rejections_total\{store="vault"\} (\d+)/)).toBe(0);
    const reply = await mountQuiet();
    expect(reply.value.files).toHaveLength(objectsPerPod);
  }, 30_000);
});
