import type { Logger } from 'pino';
import type { StoreBackend } from '../backends/types.js';
import { toProviderError } from '../errors.js';
import { createValueCache, type ValueCache } from './cache.js';
import { createLimiter, type Limiter } from './limit.js';
import { createStoreGuard, type StoreGuard } from './guard.js';
import type { Metrics } from '../observability/metrics.js';
import type { ProviderConfig, StoreConfig } from '../config/load.js';

/** A configured store with its live backend. */
export interface Store {
  readonly config: StoreConfig;
  readonly backend: StoreBackend;
  /** Bounds calls in flight to this store across all Mounts, shared fairly between namespaces. */
  readonly limiter: Limiter;
  /** Resolved values per identity; a new store (changed config) starts empty. */
  readonly cache: ValueCache;
  /** Retries and circuit breaker around every call to this store. */
  readonly guard: StoreGuard;
}

export interface StoreDeps {
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly now: () => number;
}

export interface ProviderState {
  readonly config: ProviderConfig;
  readonly stores: ReadonlyMap<string, Store>;
}

/**
 * Builds the stores of a config. Stores whose entry did not change are carried over from
 * `previous`, keeping their clients, logins and caches across reloads.
 */
export async function createStores(
  config: ProviderConfig,
  deps: StoreDeps,
  previous?: ProviderState,
): Promise<ProviderState> {
  const stores = new Map<string, Store>();
  try {
    for (const storeConfig of config.stores) {
      const kept = previous?.stores.get(storeConfig.name);
      if (kept && kept.config.fingerprint === storeConfig.fingerprint && previous?.config.baseDir === config.baseDir) {
        stores.set(storeConfig.name, kept);
        continue;
      }
      let backend: StoreBackend;
      try {
        backend = await storeConfig.definition.create(
          { name: storeConfig.name, options: storeConfig.options, restrictsNamespaces: storeConfig.restrictsNamespaces },
          { logger: deps.logger.child({ store: storeConfig.name }), baseDir: config.baseDir, now: deps.now },
        );
      } catch (err) {
        throw toProviderError(err).within(`store ${storeConfig.name} cannot start`);
      }
      const cache = createValueCache({ store: storeConfig.name, settings: storeConfig.cache, ...deps });
      const guard = createStoreGuard({ store: storeConfig.name, retry: storeConfig.retry, breaker: storeConfig.breaker, ...deps });
      const limiter = createLimiter({ store: storeConfig.name, limit: storeConfig.concurrency, maxShare: storeConfig.fairness.maxShare, ...deps });
      stores.set(storeConfig.name, { config: storeConfig, backend, limiter, cache, guard });
    }
  } catch (err) {
    await closeStores([...stores.values()].filter((s) => previous?.stores.get(s.config.name) !== s));
    throw err;
  }
  return { config, stores };
}

export async function closeStores(stores: Iterable<Store>): Promise<void> {
  await Promise.allSettled([...stores].map((s) => s.backend.close()));
}
