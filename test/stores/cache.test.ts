import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { bytesContent } from '../../src/backends/kit/content.js';
import type { FetchResult } from '../../src/backends/types.js';
import type { CacheSettings } from '../../src/config/schema.js';
import { ProviderError } from '../../src/errors.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { createValueCache } from '../../src/stores/cache.js';

/** The value cache of one store, with a clock the test moves. */
function setup(over: Partial<CacheSettings> = {}) {
  const clock = { now: 5_000_000 };
  const metrics = createMetrics({ defaultMetrics: false });
  const settings: CacheSettings = { ttl: 10_000, maxEntries: 1_000, maxBytes: 1_000_000, ...over };
  const cache = createValueCache({ store: 's', settings, metrics, logger: pino({ level: 'silent' }), now: () => clock.now });
  const counter = async (name: string) => Number(new RegExp(`${name}\\{store="s"\\} (\\d+)`).exec(await metrics.registry.metrics())?.[1] ?? 0);
  return { clock, cache, counter };
}

/** A load that answers `value-N` on its Nth call, or fails with `failWith` while it is set. */
function loader(size = 0) {
  const load = async (): Promise<FetchResult> => {
    load.calls += 1;
    if (load.failWith) throw load.failWith;
    return { content: bytesContent(size > 0 ? Buffer.alloc(size) : `value-${load.calls}`) };
  };
  load.calls = 0;
  load.failWith = undefined as ProviderError | undefined;
  return load;
}

const text = (result: FetchResult) => {
  const content = result.content.reveal();
  return content.kind === 'bytes' ? content.data.toString() : '';
};
const signal = new AbortController().signal;

describe('value cache freshness', () => {
  it('serves a value for ttl, then loads it again', async () => {
    const { cache, clock, counter } = setup({ ttl: 10_000 });
    const load = loader();
    expect(text(await cache.get('k', load, signal))).toBe('value-1');
    clock.now += 9_999;
    expect(text(await cache.get('k', load, signal))).toBe('value-1');
    clock.now += 1;
    expect(text(await cache.get('k', load, signal))).toBe('value-2');
    expect(load.calls).toBe(2);
    expect(await counter('usp_cache_hits_total')).toBe(1);
    expect(await counter('usp_cache_misses_total')).toBe(2);
  });

  it('keeps keys apart', async () => {
    const { cache } = setup();
    const load = loader();
    await cache.get('a', load, signal);
    await cache.get('b', load, signal);
    expect(load.calls).toBe(2);
  });

  it('serves a stale value when the store fails within staleIfError, and only then', async () => {
    const { cache, clock, counter } = setup({ ttl: 1_000, staleIfError: 60_000 });
    const load = loader();
    await cache.get('k', load, signal);
    clock.now += 30_000;
    load.failWith = new ProviderError('Unavailable', 'store down');
    expect(text(await cache.get('k', load, signal))).toBe('value-1');
    load.failWith = new ProviderError('DeadlineExceeded', 'store slow');
    expect(text(await cache.get('k', load, signal))).toBe('value-1');
    expect(await counter('usp_cache_stale_served_total')).toBe(2);

    clock.now += 30_001;
    load.failWith = new ProviderError('Unavailable', 'store down');
    await expect(cache.get('k', load, signal)).rejects.toThrow('store down');
  });

  it('never answers a refusal or a deletion with a stale value', async () => {
    const { cache, clock } = setup({ ttl: 1_000, staleIfError: 60_000 });
    const load = loader();
    await cache.get('k', load, signal);
    clock.now += 2_000;
    for (const error of [new ProviderError('PermissionDenied', 'revoked'), new ProviderError('NotFound', 'deleted')]) {
      load.failWith = error;
      await expect(cache.get('k', load, signal)).rejects.toBe(error);
    }
  });

  it('stores nothing when the cache is off (ttl 0, no staleIfError)', async () => {
    const { cache } = setup({ ttl: 0 });
    const load = loader();
    await cache.get('k', load, signal);
    await cache.get('k', load, signal);
    expect(load.calls).toBe(2);
    expect(cache.size).toBe(0);
    expect(cache.bytes).toBe(0);
  });
});

describe('value cache bounds', () => {
  it('evicts the least recently used entry beyond maxEntries', async () => {
    const { cache, counter } = setup({ maxEntries: 2 });
    const loads = { a: loader(), b: loader(), c: loader() };
    await cache.get('a', loads.a, signal);
    await cache.get('b', loads.b, signal);
    await cache.get('a', loads.a, signal);
    await cache.get('c', loads.c, signal);
    expect(cache.size).toBe(2);
    await cache.get('a', loads.a, signal);
    expect(loads.a.calls).toBe(1);
    await cache.get('b', loads.b, signal);
    expect(loads.b.calls).toBe(2);
    expect(await counter('usp_cache_evictions_total')).toBe(2);
  });

  it('evicts to stay within maxBytes and keeps no value larger than maxBytes', async () => {
    const { cache } = setup({ maxBytes: 10_000 });
    for (let i = 0; i < 10; i++) await cache.get(`k${i}`, loader(2_000), signal);
    expect(cache.bytes).toBeLessThanOrEqual(10_000);
    expect(cache.size).toBeGreaterThanOrEqual(3);
    expect(cache.size).toBeLessThan(5);
    const big = loader(20_000);
    await cache.get('big', big, signal);
    await cache.get('big', big, signal);
    expect(big.calls).toBe(2);
    expect(cache.bytes).toBeLessThanOrEqual(10_000);
  });
});

describe('value cache coalescing', () => {
  it('concurrent callers of one key share one load and its answer', async () => {
    const { cache, counter } = setup();
    let answer!: (result: FetchResult) => void;
    let calls = 0;
    const slow = () => {
      calls += 1;
      return new Promise<FetchResult>((resolve) => (answer = resolve));
    };
    const waiting = [cache.get('k', slow, signal), cache.get('k', slow, signal), cache.get('k', slow, signal)];
    answer({ content: bytesContent('shared') });
    expect((await Promise.all(waiting)).map(text)).toEqual(['shared', 'shared', 'shared']);
    expect(calls).toBe(1);
    expect(await counter('usp_cache_coalesced_total')).toBe(2);
  });

  it('a shared failure reaches every caller, and the next call loads again', async () => {
    const { cache } = setup();
    let fail!: (err: Error) => void;
    const slow = () => new Promise<FetchResult>((_, reject) => (fail = reject));
    const waiting = [cache.get('k', slow, signal), cache.get('k', slow, signal)];
    fail(new ProviderError('Unavailable', 'store down'));
    for (const w of waiting) await expect(w).rejects.toThrow('store down');
    const load = loader();
    expect(text(await cache.get('k', load, signal))).toBe('value-1');
  });

  it('a caller may give up alone; the load is cancelled only when every caller has', async () => {
    const { cache } = setup();
    let cancelled = false;
    const slow = (loadSignal: AbortSignal) =>
      new Promise<FetchResult>((_, reject) =>
        loadSignal.addEventListener('abort', () => {
          cancelled = true;
          reject(new Error('aborted'));
        }),
      );
    const a = new AbortController();
    const b = new AbortController();
    const pa = cache.get('k', slow, a.signal);
    const pb = cache.get('k', slow, b.signal);
    a.abort();
    await expect(pa).rejects.toMatchObject({ code: 'DeadlineExceeded' });
    expect(cancelled).toBe(false);
    b.abort();
    await expect(pb).rejects.toMatchObject({ code: 'DeadlineExceeded' });
    expect(cancelled).toBe(true);
  });
});
