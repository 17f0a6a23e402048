import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { fileBackend } from '../../src/backends/file.js';
import type { BackendDefinition, StoreBackend } from '../../src/backends/types.js';
import { ProviderError } from '../../src/errors.js';
import { parseProviderConfig, type ProviderConfig } from '../../src/config/load.js';
import { createMountHandler } from '../../src/mount/handler.js';
import type { MountInput } from '../../src/mount/input.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { createHttpServer } from '../../src/server/http.js';
import { holdStates } from '../../src/stores/holder.js';
import { creationBackoff } from '../../src/stores/lazy-backend.js';
import { closeStores, createStores, reportStoreClients, type ProviderState } from '../../src/stores/stores.js';

/**
 * Store clients load on the first Mount that uses the store. The stores are real file stores
 * behind a definition that counts creations and closes, can hold a creation until the test lets
 * it go, and can fail it.
 */
const logger = pino({ level: 'silent' });
let metrics = createMetrics({ defaultMetrics: false });
let clock = 1_000_000;
const now = () => clock;
let dir: string;

let creates: string[] = [];
let closes: string[] = [];
/** While set, every creation waits for it. */
let held: Promise<void> | undefined;
/** Creations of these stores fail with their error. */
let failWith = new Map<string, unknown>();
/** While set, the preflight of every store fails with it. */
let preflightFails: ProviderError | undefined;

const countingFile: BackendDefinition = {
  ...fileBackend,
  async preflight() {
    if (preflightFails) throw preflightFails;
  },
  async create(settings, backendDeps) {
    creates.push(settings.name);
    await held;
    if (failWith.has(settings.name)) throw failWith.get(settings.name);
    const backend: StoreBackend = await fileBackend.create(settings, backendDeps);
    return {
      name: backend.name,
      fetch: (request, ctx) => backend.fetch(request, ctx),
      async close() {
        closes.push(settings.name);
      },
    };
  },
};

async function configOf(names: readonly string[]): Promise<ProviderConfig> {
  const text = `stores:\n${names.map((n) => `  - {name: ${n}, backend: file, root: secrets, cache: {ttl: 0}}\n`).join('')}`;
  const parsed = await parseProviderConfig(text, dir);
  if (!parsed.ok) throw new Error(parsed.problems.join('; '));
  return { ...parsed.config, stores: parsed.config.stores.map((s) => ({ ...s, definition: countingFile })) };
}

const input = (store: string, pod = 'p'): MountInput => ({
  identity: { namespace: 'shop', serviceAccount: pod, podName: pod, podUid: pod },
  className: 'c',
  parameters: new Map([['objects', `- {name: x, store: ${store}, ref: x}`]]),
  tokens: new Map(),
  secrets: new Map(),
  defaultMode: 0o644,
});

function serve(state: ProviderState) {
  const states = holdStates(state, logger);
  const handler = createMountHandler({ states, logger, metrics, now, fallbackVersionKey: Buffer.alloc(32) });
  const mount = (store: string, pod?: string) => handler.mount(input(store, pod), new AbortController().signal);
  return { states, mount };
}

async function metricText(name: string): Promise<string> {
  return metrics.registry.getSingleMetricAsString(name);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'usp-lazy-'));
  await mkdir(join(dir, 'secrets'));
  await writeFile(join(dir, 'secrets', 'x'), 'value');
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

beforeEach(() => {
  metrics = createMetrics({ defaultMetrics: false });
  creates = [];
  closes = [];
  held = undefined;
  failWith = new Map();
  preflightFails = undefined;
});

describe('a store client loads on its first use', () => {
  it('creates no client at start, only the used store\'s on its first Mount, and reuses it after', async () => {
    const state = await createStores(await configOf(['a', 'b']), { logger, metrics, now });
    expect(creates).toEqual([]);
    expect(reportStoreClients(state, now).map((r) => r.client)).toEqual(['idle', 'idle']);
    const { states, mount } = serve(state);
    expect((await mount('a')).files[0]!.contents.toString()).toBe('value');
    await mount('a', 'q');
    expect(creates).toEqual(['a']);
    expect(reportStoreClients(state, now)).toEqual([
      { store: 'a', backend: 'file', client: 'loaded' },
      { store: 'b', backend: 'file', client: 'idle' },
    ]);
    expect(await metricText('usp_store_client_loads_total')).toContain('usp_store_client_loads_total{store="a",backend="file",outcome="ok"} 1');
    await states.close();
    expect(closes).toEqual(['a']);
  });

  it('creates the client once for a burst of Mounts that arrive while it loads', async () => {
    const state = await createStores(await configOf(['a']), { logger, metrics, now });
    const { states, mount } = serve(state);
    let release!: () => void;
    held = new Promise((resolve) => (release = resolve));
    const burst = Array.from({ length: 32 }, (_, i) => mount('a', `pod-${i}`));
    await new Promise((resolve) => setImmediate(resolve));
    expect(reportStoreClients(state, now)[0]!.client).toBe('loading');
    release();
    const results = await Promise.all(burst);
    expect(results.every((r) => r.files[0]!.contents.toString() === 'value')).toBe(true);
    expect(creates).toEqual(['a']);
    await states.close();
  });

  it('keeps an unchanged store across a reload without creating its client', async () => {
    const first = await createStores(await configOf(['a']), { logger, metrics, now });
    const next = await createStores(await configOf(['a', 'b']), { logger, metrics, now }, first);
    expect(next.stores.get('a')).toBe(first.stores.get('a'));
    expect(creates).toEqual([]);
    await closeStores(next.stores.values());
  });
});

describe('a store whose client fails to load', () => {
  it('fails its Mounts with Unavailable naming the store and cause, backs off, then tries again', async () => {
    const state = await createStores(await configOf(['a', 'b']), { logger, metrics, now });
    const { states, mount } = serve(state);
    failWith.set('a', new ProviderError('InvalidArgument', 'the API server address is not a URL'));
    const first = await mount('a').catch((err: unknown) => err);
    expect(first).toMatchObject({ code: 'Unavailable' });
    expect((first as Error).message).toContain('store a could not load its client: the API server address is not a URL');
    // Within the backoff a Mount fails at once, without creating again.
    await expect(mount('a', 'q')).rejects.toMatchObject({ code: 'Unavailable' });
    expect(creates).toEqual(['a']);
    const report = reportStoreClients(state, now)[0]!;
    expect(report).toMatchObject({ store: 'a', client: 'failed', cause: 'the API server address is not a URL' });
    expect(report.retryInSeconds).toBe(creationBackoff.firstMs / 1000);
    expect(await metricText('usp_store_client_loads_total')).toContain('usp_store_client_loads_total{store="a",backend="file",outcome="error"} 1');
    // The other store is not affected.
    expect((await mount('b')).files[0]!.contents.toString()).toBe('value');

    clock += creationBackoff.firstMs;
    await expect(mount('a')).rejects.toMatchObject({ code: 'Unavailable' });
    expect(creates).toEqual(['a', 'b', 'a']);
    // The second failure waits twice as long.
    clock += creationBackoff.firstMs;
    await expect(mount('a')).rejects.toMatchObject({ code: 'Unavailable' });
    expect(creates.filter((c) => c === 'a')).toHaveLength(2);

    failWith.clear();
    clock += 2 * creationBackoff.firstMs;
    expect((await mount('a')).files[0]!.contents.toString()).toBe('value');
    expect(reportStoreClients(state, now)[0]!.client).toBe('loaded');
    await states.close();
  });

  it('names a foreign failure (a missing SDK) by its code only', async () => {
    const state = await createStores(await configOf(['a']), { logger, metrics, now });
    const { states, mount } = serve(state);
    failWith.set('a', Object.assign(new Error('Cannot find package /secret/path'), { code: 'ERR_MODULE_NOT_FOUND' }));
    const err = (await mount('a').catch((e: unknown) => e)) as Error;
    expect(err.message).toContain('store a could not load its client: ERR_MODULE_NOT_FOUND');
    expect(err.message).not.toContain('/secret/path');
    await states.close();
  });

  it('shows in /readyz detail and in usp_store_client_state, while /readyz stays 200', async () => {
    const state = await createStores(await configOf(['a', 'b']), { logger, metrics, now });
    const { states, mount } = serve(state);
    metrics.watchStoreClients(() => reportStoreClients(states.current, now));
    const http = createHttpServer({
      checkHealth: async () => true,
      isReady: () => true,
      reportStores: () => reportStoreClients(states.current, now),
      registry: metrics.registry,
    });
    const address = await http.listen('127.0.0.1:0');
    try {
      failWith.set('a', new ProviderError('InvalidArgument', 'kubeconfig: no cluster'));
      await expect(mount('a')).rejects.toMatchObject({ code: 'Unavailable' });
      const res = await fetch(`http://${address}/readyz`);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({
        ready: true,
        stores: [
          { store: 'a', backend: 'file', client: 'failed', cause: 'kubeconfig: no cluster', retryInSeconds: 1 },
          { store: 'b', backend: 'file', client: 'idle' },
        ],
      });
      const text = await (await fetch(`http://${address}/metrics`)).text();
      expect(text).toContain('usp_store_client_state{store="a",backend="file"} 3');
      expect(text).toContain('usp_store_client_state{store="b",backend="file"} 0');
    } finally {
      await http.close();
      await states.close();
    }
  });
});

describe('start and close', () => {
  it('refuses a config whose preflight fails, naming the store, without creating any client', async () => {
    preflightFails = new ProviderError('InvalidArgument', 'tls.caFile: cannot read /nowhere/ca.pem (ENOENT)');
    await expect(createStores(await configOf(['a']), { logger, metrics, now })).rejects.toThrow(
      'store a cannot start: tls.caFile: cannot read /nowhere/ca.pem (ENOENT)',
    );
    expect(creates).toEqual([]);
  });

  it('closes never-created stores without creating them', async () => {
    const state = await createStores(await configOf(['a', 'b']), { logger, metrics, now });
    await closeStores(state.stores.values());
    expect(creates).toEqual([]);
    expect(closes).toEqual([]);
  });

  it('closes a client that finishes loading after its store was closed, and fails the Mount waiting for it', async () => {
    const state = await createStores(await configOf(['a']), { logger, metrics, now });
    const { mount } = serve(state);
    let release!: () => void;
    held = new Promise((resolve) => (release = resolve));
    const waiting = mount('a').catch((err: unknown) => err);
    await new Promise((resolve) => setImmediate(resolve));
    const closing = closeStores(state.stores.values());
    release();
    await closing;
    expect(closes).toEqual(['a']);
    expect(await waiting).toMatchObject({ code: 'Unavailable' });
  });
});
