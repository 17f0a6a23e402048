import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { driverRequest } from '../helpers/driver-client.js';
import { startTestProvider, type TestProvider } from '../helpers/provider.js';
import { serviceAccountUser, startKubernetesTestServer, type KubernetesTestServer } from '../servers/kubernetes.js';

/** The limiter itself is tested in test/stores/limit.test.ts; this is the limit as a Mount meets it. */
describe('per-store concurrency through Mount', () => {
  let api: KubernetesTestServer;
  let p: TestProvider;

  beforeAll(async () => {
    api = await startKubernetesTestServer();
    for (let i = 0; i < 8; i++) api.putSecret({ namespace: 'shop', name: `s${i}`, data: { v: `v${i}` } });
    api.allow({ subject: serviceAccountUser('shop', 'app'), namespace: 'shop', resource: 'secrets' });
    const path = join(tmpdir(), `usp-kubeconfig-limit-${process.pid}`);
    await api.writeKubeconfig(path);
    const kubeconfig = await readFile(path);
    await rm(path);
    p = await startTestProvider({
      files: { kubeconfig },
      config: `stores:
  - {name: narrow, backend: kubernetes, kubeconfig: ../kubeconfig, cache: {ttl: 0}, concurrency: 2, retry: {attempts: 1}}
`,
    });
  });

  afterAll(async () => {
    await p.stop();
    await api.close();
  });

  const pod = () => {
    const { token, expiresAt } = api.issueToken({ namespace: 'shop', serviceAccount: 'app' });
    return { serviceAccount: 'app', tokens: { '': { token, expirationTimestamp: new Date(expiresAt).toISOString() } } };
  };
  const objects = Array.from({ length: 8 }, (_, i) => `- {name: f${i}, store: narrow, ref: s${i}, key: v}`).join('\n');

  it('queues calls beyond the limit: 8 calls of 150 ms with 2 at a time take 4 rounds', async () => {
    api.inject({ kind: 'latency', ms: 150 }, { times: 8 });
    const started = Date.now();
    const reply = await p.client.mount(driverRequest(objects, pod()));
    expect(reply.files).toHaveLength(8);
    expect(Date.now() - started).toBeGreaterThanOrEqual(4 * 150 - 20);
    const text = await p.metrics.registry.metrics();
    expect(text).toMatch(/usp_store_queue_wait_seconds_count\{store="narrow"\} 8/);
  });

  it('fails with DEADLINE_EXCEEDED when the queue outlasts the call deadline', async () => {
    api.inject({ kind: 'latency', ms: 400 }, { times: 8 });
    const err = await p.client.mountError(driverRequest(objects, pod()), 500);
    expect(err.code).toBe(status.DEADLINE_EXCEEDED);
    api.faults.clear();
  });
});
