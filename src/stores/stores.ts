import type { Logger } from 'pino';
import type { StoreBackend } from '../backends/types.js';
import { toProviderError } from '../errors.js';
import { createValueCache, type ValueCache } from './cache.js';
import { createLimiter, type Limiter } from './limit.js';
import { createStoreGuard, type StoreGuard } from './guard.js';
import { createLazyBackend, type ClientStatus, type LazyBackend } from './lazy-backend.js';
import type { Metrics } from '../observability/metrics.js';
import type { ProviderConfig, StoreConfig } from '../config/load.js';

/** A configured store; its backend creates the network client on the first Mount that uses it. */
export interface Store {
  readonly config: StoreConfig;
  readonly backend: LazyBackend;
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
 * Builds the stores of a config. Each new store's options pass its backend's `preflight` here (a
 * file its options name that cannot be read refuses the config), but its client and SDK load on
 * its first Mount. Stores whose entry did not change are carried over from `previous`, keeping
 * their clients, logins and caches across reloads.
 */
export async function createStores(
  config: ProviderConfig,
  deps: StoreDeps,
  previous?: ProviderState,
): Promise<ProviderState> {
  const stores = new Map<string, Store>();
  for (const storeConfig of config.stores) {
    const kept = previous?.stores.get(storeConfig.name);
    if (kept && kept.config.fingerprint === storeConfig.fingerprint && previous?.config.baseDir === config.baseDir) {
      stores.set(storeConfig.name, kept);
      continue;
    }
    const settings = { name: storeConfig.name, options: storeConfig.options, restrictsNamespaces: storeConfig.restrictsNamespaces };
    const logger = deps.logger.child({ store: storeConfig.name });
    const backendDeps = { logger, baseDir: config.baseDir, now: deps.now };
    try {
      await storeConfig.definition.preflight?.(settings, backendDeps);
    } catch (err) {
      throw toProviderError(err).within(`store ${storeConfig.name} cannot start`);
    }
    const backend = createLazyBackend({
      name: storeConfig.name,
      kind: storeConfig.definition.kind,
      create: async (): Promise<StoreBackend> => storeConfig.definition.create(settings, backendDeps),
      metrics: deps.metrics,
      logger,
      now: deps.now,
    });
    const cache = createValueCache({ store: storeConfig.name, settings: storeConfig.cache, ...deps });
    const guard = createStoreGuard({ store: storeConfig.name, retry: storeConfig.retry, breaker: storeConfig.breaker, ...deps });
    const limiter = createLimiter({ store: storeConfig.name, limit: storeConfig.concurrency, maxShare: storeConfig.fairness.maxShare, ...deps });
    stores.set(storeConfig.name, { config: storeConfig, backend, limiter, cache, guard });
  }
  return { config, stores };
}

/** Closes each store's client; a store no Mount used has none, and closes at once. */
export async function closeStores(stores: Iterable<Store>): Promise<void> {
  await Promise.allSettled([...stores].map((s) => s.backend.close()));
}

/** One store's client as `/readyz` and the metrics show it. */
export interface StoreClientReport {
  readonly store: string;
  readonly backend: string;
  readonly client: ClientStatus['state'];
  readonly cause?: string;
  /** Seconds until a Mount may try to create a failed client again. */
  readonly retryInSeconds?: number;
}

export function reportStoreClients(state: ProviderState, now: () => number): StoreClientReport[] {
  return [...state.stores.values()].map(({ config, backend }) => {
    const status = backend.status;
    const base = { store: config.name, backend: config.definition.kind, client: status.state };
    if (status.state !== 'failed') return base;
    return { ...base, cause: status.cause, retryInSeconds: Math.max(0, Math.ceil((status.retryAt - now()) / 1000)) };
  });
}
