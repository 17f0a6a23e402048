import { setMaxListeners } from 'node:events';
import type { Logger } from 'pino';
import type { CallerSignal } from '../abort.js';
import { ProviderError, toProviderError } from '../errors.js';
import type { Content, FetchResult } from '../backends/types.js';
import type { CacheSettings } from '../config/schema.js';
import type { Metrics } from '../observability/metrics.js';

export interface ValueCache {
  /**
   * The value for `key`: cached while fresh, else loaded. Concurrent callers with one key share
   * one load; the load is cancelled only when every caller has given up. `signal` may be a
   * function that makes it: a fresh value is answered without asking for it, so a Mount served
   * from the cache makes no deadline signal at all (mount/handler.ts).
   */
  get(key: string, load: (signal: AbortSignal) => Promise<FetchResult>, signal: CallerSignal): Promise<FetchResult>;
  readonly size: number;
  readonly bytes: number;
}

interface Entry {
  readonly result: FetchResult;
  readonly storedAt: number;
  readonly bytes: number;
}

interface Flight {
  readonly promise: Promise<FetchResult>;
  readonly controller: AbortController;
  waiters: number;
}

export interface ValueCacheDeps {
  readonly store: string;
  readonly settings: CacheSettings;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly now: () => number;
}

/** Only failures of the store itself may fall back to a stale value; a refusal must not. */
const staleable = new Set(['Unavailable', 'DeadlineExceeded']);

/** An in-memory LRU of resolved values for one store. Keys include the identity, so values are never shared between identities. */
export function createValueCache(deps: ValueCacheDeps): ValueCache {
  const { settings, metrics, store } = deps;
  const labels = { store };
  // Bound once: a cache hit is the hot path of every rotation Mount.
  const hits = metrics.cacheHits.labels(labels);
  const misses = metrics.cacheMisses.labels(labels);
  const coalesced = metrics.coalesced.labels(labels);
  const entries = new Map<string, Entry>();
  const flights = new Map<string, Flight>();
  let bytes = 0;
  const keepFor = Math.max(settings.ttl, settings.staleIfError ?? 0);

  const remove = (key: string) => {
    const entry = entries.get(key);
    if (!entry) return;
    entries.delete(key);
    bytes -= entry.bytes;
  };

  const store_ = (key: string, result: FetchResult) => {
    if (keepFor === 0) return;
    const size = estimateBytes(key, result.content.reveal());
    if (size > settings.maxBytes) return;
    remove(key);
    entries.set(key, { result, storedAt: deps.now(), bytes: size });
    bytes += size;
    for (const [oldest] of entries) {
      if (entries.size <= settings.maxEntries && bytes <= settings.maxBytes) break;
      remove(oldest);
      metrics.evictions.inc(labels);
    }
  };

  const startFlight = (key: string, load: (signal: AbortSignal) => Promise<FetchResult>, stale: Entry | undefined): Flight => {
    const controller = new AbortController();
    // Each attempt of the shared load (retries included) listens on it for as long as it runs.
    setMaxListeners(0, controller.signal);
    const promise = load(controller.signal)
      .then(
        (result) => {
          store_(key, result);
          return result;
        },
        (err: unknown) => {
          const error = toProviderError(err);
          if (stale && settings.staleIfError !== undefined && staleable.has(error.code)) {
            const age = deps.now() - stale.storedAt;
            if (age <= settings.staleIfError) {
              metrics.staleServes.inc(labels);
              deps.logger.warn({ store, ageMs: age, code: error.code }, 'store failed; serving a cached value (staleIfError)');
              return stale.result;
            }
          }
          throw error;
        },
      )
      .finally(() => flights.delete(key));
    const flight = { promise, controller, waiters: 0 };
    flights.set(key, flight);
    return flight;
  };

  return {
    get(key, load, callerSignal) {
      const entry = entries.get(key);
      const age = entry ? deps.now() - entry.storedAt : Infinity;
      if (entry && age < settings.ttl) {
        entries.delete(key);
        entries.set(key, entry);
        hits.inc();
        return Promise.resolve(entry.result);
      }
      if (entry && age > keepFor) remove(key);
      const signal = typeof callerSignal === 'function' ? callerSignal() : callerSignal;
      // A Mount that is already over starts no store call: nobody would wait for its outcome.
      if (signal.aborted) return Promise.reject(deadline());
      let flight = flights.get(key);
      if (flight) coalesced.inc();
      else {
        misses.inc();
        flight = startFlight(key, load, entries.get(key));
      }
      return join(flight, signal);
    },
    get size() {
      return entries.size;
    },
    get bytes() {
      return bytes;
    },
  };
}

/** Waits for a shared load on behalf of one caller, who may give up alone. */
function join(flight: Flight, signal: AbortSignal): Promise<FetchResult> {
  if (signal.aborted) return Promise.reject(deadline());
  flight.waiters += 1;
  return new Promise<FetchResult>((resolve, reject) => {
    const leave = () => {
      signal.removeEventListener('abort', onAbort);
      flight.waiters -= 1;
    };
    const onAbort = () => {
      leave();
      if (flight.waiters === 0) flight.controller.abort();
      reject(deadline());
    };
    signal.addEventListener('abort', onAbort, { once: true });
    flight.promise.then(
      (result) => {
        leave();
        resolve(result);
      },
      (err: unknown) => {
        leave();
        reject(err);
      },
    );
  });
}

function deadline(): ProviderError {
  return new ProviderError('DeadlineExceeded', 'the Mount deadline passed before the store answered');
}

/** Roughly what an entry holds in memory; enough to bound the cache by bytes. */
function estimateBytes(key: string, content: Content): number {
  const overhead = 256 + key.length * 2;
  if (content.kind === 'bytes') return overhead + content.data.length;
  let total = overhead;
  for (const [field, value] of Object.entries(content.fields)) {
    total += field.length * 2 + (Buffer.isBuffer(value) ? value.length : JSON.stringify(value ?? null).length * 2);
  }
  return total;
}
