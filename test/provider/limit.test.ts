import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLimiter } from '../../src/stores/limit.js';
import { driverRequest } from '../helpers/driver-client.js';
import { startTestProvider, type TestProvider } from '../helpers/provider.js';
import { serviceAccountUser, startKubernetesTestServer, type KubernetesTestServer } from '../servers/kubernetes.js';

describe('per-store concurrency limit', () => {
  it('never runs more than the limit at once and runs every task', async () => {
    const limiter = createLimiter(3);
    let active = 0;
    let peak = 0;
    const task = async () => {
      active += 1;
      peak = Math.max(peak, active);
      await new Promise((r) => setTimeout(r, 5));
      active -= 1;
      return 1;
    };
    const signal = new AbortController().signal;
    const results = await Promise.all(Array.from({ length: 30 }, () => limiter.run(task, signal)));
    expect(results).toHaveLength(30);
    expect(peak).toBe(3);
    expect(limiter.active).toBe(0);
  });

  it('drops a queued task when its deadline passes, without running it', async () => {
    const limiter = createLimiter(1);
    let release!: () => void;
    const blocker = limiter.run(() => new Promise<void>((r) => (release = r)), new AbortController().signal);
    const aborter = new AbortController();
    let ran = false;
    const queued = limiter.run(async () => {
      ran = true;
    }, aborter.signal);
    expect(limiter.waiting).toBe(1);
    aborter.abort();
    await expect(queued).rejects.toMatchObject({ code: 'DeadlineExceeded' });
    expect(limiter.waiting).toBe(0);
    release();
    await blocker;
    expect(ran).toBe(false);
  });
});

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
    api.stall({ ms: 150, times: 8 });
    const started = Date.now();
    const reply = await p.client.mount(driverRequest(objects, pod()));
    expect(reply.files).toHaveLength(8);
    expect(Date.now() - started).toBeGreaterThanOrEqual(4 * 150 - 20);
    const text = await p.metrics.registry.metrics();
    expect(text).toMatch(/usp_store_queue_wait_seconds_count\{store="narrow"\} 8/);
  });

  it('fails with DEADLINE_EXCEEDED when the queue outlasts the call deadline', async () => {
    api.stall({ ms: 400, times: 8 });
    const err = await p.client.mountError(driverRequest(objects, pod()), 500);
    expect(err.code).toBe(status.DEADLINE_EXCEEDED);
    api.clearFaults();
  });
});
