import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { fileBackend } from '../../src/backends/file.js';
import type { BackendDefinition } from '../../src/backends/types.js';
import { parseProviderConfig } from '../../src/config/load.js';
import type { ProviderError } from '../../src/errors.js';
import { createMountHandler, type MountHandler } from '../../src/mount/handler.js';
import type { MountInput } from '../../src/mount/input.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { holdStates } from '../../src/stores/holder.js';
import { createStores, type ProviderState } from '../../src/stores/stores.js';

/**
 * What a Mount served from the cache skips, and what it must still do: no deadline signal, timer
 * or AbortController, no second assembly of a volume whose values did not change, no second
 * parse or access check of a class; and a Mount that does call a store keeps its deadline,
 * cancellation, cache counts and fresh values. In process, on real file stores.
 */
const logger = pino({ level: 'silent' });
let metrics = createMetrics({ defaultMetrics: false });
let clock = 1_000_000;
let dir: string;
let state: ProviderState;
let handler: MountHandler;
/** Set to make every fetch of the `hanging` store wait until its signal aborts. */
const hanging: BackendDefinition = {
  ...fileBackend,
  async create(settings, deps) {
    const backend = await fileBackend.create(settings, deps);
    return {
      ...backend,
      fetch: (_request, ctx) =>
        new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason as Error))),
    };
  },
};

const config = `
limits: {mountTimeout: 300ms}
stores:
  - name: files
    backend: file
    root: secrets
    cache: {ttl: 10s}
    access: [{deny: {serviceAccounts: [intruder]}}]
  - {name: hanging, backend: file, root: secrets, cache: {ttl: 10s}}
`;

const objects = Array.from({ length: 3 }, (_, i) => `- {name: s${i}, store: files, ref: s${i}}`).join('\n');
const input = (over: Partial<MountInput> = {}, classObjects = objects): MountInput => ({
  identity: { namespace: 'shop', serviceAccount: 'app', podName: 'p', podUid: 'u' },
  className: 'c',
  parameters: new Map([['objects', classObjects]]),
  tokens: new Map(),
  secrets: new Map(),
  defaultMode: 0o644,
  ...over,
});

/** A caller signal made on demand, counting how often it was wanted. */
function caller() {
  const controller = new AbortController();
  const made = { count: 0 };
  return {
    made,
    controller,
    signal: () => {
      made.count += 1;
      return controller.signal;
    },
  };
}

const metric = async (name: string, labels: string) =>
  Number(new RegExp(`^${name}\\{${labels}\\} (\\d+)`, 'm').exec(await metrics.registry.metrics())?.[1] ?? 0);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'usp-cache-hit-'));
  await mkdir(join(dir, 'secrets'));
  for (let i = 0; i < 3; i++) await writeFile(join(dir, 'secrets', `s${i}`), `value ${i}`);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

beforeEach(async () => {
  metrics = createMetrics({ defaultMetrics: false });
  const parsed = await parseProviderConfig(config, dir);
  if (!parsed.ok) throw new Error(parsed.problems.join('; '));
  const stores = parsed.config.stores.map((s) => (s.name === 'hanging' ? { ...s, definition: hanging } : s));
  state = await createStores({ ...parsed.config, stores }, { logger, metrics, now: () => clock });
  handler = createMountHandler({ states: holdStates(state, logger), logger, metrics, now: () => clock, fallbackVersionKey: Buffer.alloc(32) });
});

describe('a Mount served from the cache', () => {
  it('makes no deadline signal; a Mount that calls a store makes one, and each counts once', async () => {
    const cold = caller();
    await handler.mount(input(), cold.signal);
    expect(cold.made.count).toBe(1);
    expect(await metric('usp_cache_misses_total', 'store="files"')).toBe(3);
    const warm = caller();
    await handler.mount(input(), warm.signal);
    expect(warm.made.count).toBe(0);
    expect(await metric('usp_cache_misses_total', 'store="files"')).toBe(3);
    expect(await metric('usp_cache_hits_total', 'store="files"')).toBe(3);
  });

  it('returns the volume of the Mount before while its values are the same, and a new one when they change', async () => {
    const first = await handler.mount(input(), caller().signal);
    const again = await handler.mount(input(), caller().signal);
    expect(again).toBe(first);
    const mode = await handler.mount(input({ defaultMode: 0o400 }), caller().signal);
    expect(mode.files.map((f) => f.mode)).toEqual([0o400, 0o400, 0o400]);
    // The mode is part of a file's version.
    expect(mode.objectVersions).not.toEqual(first.objectVersions);
    expect(await handler.mount(input(), caller().signal)).toBe(first);

    await writeFile(join(dir, 'secrets', 's1'), 'value 1, rotated');
    clock += 11_000;
    const rotated = await handler.mount(input(), caller().signal);
    expect(rotated.files[1]!.contents.toString()).toBe('value 1, rotated');
    expect(rotated.objectVersions[1]!.version).not.toBe(first.objectVersions[1]!.version);
    expect(rotated.objectVersions[0]).toEqual(first.objectVersions[0]);
    expect(await handler.mount(input(), caller().signal)).toBe(rotated);
    await writeFile(join(dir, 'secrets', 's1'), 'value 1');
  });

  it('parses and authorises a class once per identity, and still refuses another identity', async () => {
    const reused = input();
    await handler.mount(reused, caller().signal);
    await handler.mount(reused, caller().signal);
    await handler.mount(input(), caller().signal);
    expect(await metric('usp_class_parses_total', 'outcome="parsed"')).toBe(1);
    expect(await metric('usp_class_parses_total', 'outcome="reused"')).toBe(2);
    const intruder = input({ identity: { namespace: 'shop', serviceAccount: 'intruder', podName: 'p', podUid: 'u' } });
    for (let i = 0; i < 2; i++) {
      await expect(handler.mount(intruder, caller().signal)).rejects.toMatchObject({ code: 'PermissionDenied' });
    }
    await expect(handler.mount(reused, caller().signal)).resolves.toBeDefined();
  });
});

describe('a Mount that calls a store', () => {
  const slow = '- {name: h, store: hanging, ref: s0}';

  it('fails with DeadlineExceeded once mountTimeout has passed since it started', async () => {
    const started = performance.now();
    const error = (await handler.mount(input({}, slow), caller().signal).catch((err: unknown) => err)) as ProviderError;
    expect(error.code).toBe('DeadlineExceeded');
    expect(performance.now() - started).toBeGreaterThanOrEqual(290);
    expect(performance.now() - started).toBeLessThan(2_000);
  });

  it('stops at once when its caller cancels', async () => {
    const cancelled = caller();
    const mounting = handler.mount(input({}, slow), cancelled.signal).catch((err: unknown) => err);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const started = performance.now();
    cancelled.controller.abort();
    expect(((await mounting) as ProviderError).code).toBe('DeadlineExceeded');
    expect(performance.now() - started).toBeLessThan(100);
    expect(cancelled.made.count).toBe(1);
  });
});
