import type { Logger } from 'pino';
import { raceSignal } from '../abort.js';
import type { FetchContext, ListPage, ListRequest, StoreBackend } from '../backends/types.js';
import { ProviderError } from '../errors.js';
import type { Metrics } from '../observability/metrics.js';

/** Where a store's client stands: none yet (no Mount used the store), loading, loaded, or failed. */
export type ClientStatus =
  | { readonly state: 'idle' | 'loading' | 'loaded' }
  | { readonly state: 'failed'; readonly cause: string; readonly retryAt: number };

/** A store's backend that creates its client, and loads its SDK, on the first call that needs it. */
export interface LazyBackend extends StoreBackend {
  readonly status: ClientStatus;
}

export interface LazyBackendDeps {
  readonly name: string;
  readonly kind: string;
  readonly create: () => Promise<StoreBackend>;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly now: () => number;
}

/**
 * After a failed creation the next Mounts fail at once with the same cause; only once the wait is
 * over does a Mount try again, the wait doubling per failure. A broken store (an unreachable
 * in-cluster config, a missing SDK) then costs one creation per interval, not one per Mount.
 */
export const creationBackoff = { firstMs: 1_000, maxMs: 60_000 } as const;

export function createLazyBackend(deps: LazyBackendDeps): LazyBackend {
  const { name, kind, metrics, logger, now } = deps;
  const labels = { store: name, backend: kind };
  let backend: StoreBackend | undefined;
  let loading: Promise<StoreBackend> | undefined;
  let failure: { error: ProviderError; cause: string; retryAt: number } | undefined;
  let failures = 0;
  let closed = false;

  const create = async (): Promise<StoreBackend> => {
    const started = performance.now();
    try {
      const created = await deps.create();
      if (closed) {
        // Closed while it loaded (a reload dropped the store): nobody will use it.
        await created.close();
        throw closedError(name);
      }
      backend = created;
      failure = undefined;
      failures = 0;
      metrics.storeClientLoads.inc({ ...labels, outcome: 'ok' });
      logger.info({ ms: Math.round(performance.now() - started) }, 'store client loaded');
      return created;
    } catch (err) {
      if (closed) throw closedError(name);
      failures += 1;
      const waitMs = Math.min(creationBackoff.maxMs, creationBackoff.firstMs * 2 ** (failures - 1));
      const cause = describeCause(err);
      const error = new ProviderError('Unavailable', `store ${name} could not load its client: ${cause}`, {
        transient: false,
        retryAfterSeconds: Math.ceil(waitMs / 1000),
      });
      failure = { error, cause, retryAt: now() + waitMs };
      metrics.storeClientLoads.inc({ ...labels, outcome: 'error' });
      logger.error({ cause, failures, retryInMs: waitMs }, 'store client failed to load');
      throw error;
    } finally {
      loading = undefined;
    }
  };

  const load = (): Promise<StoreBackend> => {
    if (backend) return Promise.resolve(backend);
    if (closed) return Promise.reject(closedError(name));
    if (loading) return loading;
    if (failure && now() < failure.retryAt) return Promise.reject(failure.error);
    loading = create();
    return loading;
  };

  /** Waits for the client within the Mount's signal; the creation goes on for later Mounts. */
  const loadFor = (ctx: FetchContext) => raceSignal(load(), ctx.signal, cancelled);

  return {
    name,
    get status(): ClientStatus {
      if (backend) return { state: 'loaded' };
      if (loading) return { state: 'loading' };
      if (failure) return { state: 'failed', cause: failure.cause, retryAt: failure.retryAt };
      return { state: 'idle' };
    },
    async fetch(request, ctx) {
      return (await loadFor(ctx)).fetch(request, ctx);
    },
    async list(request: ListRequest<unknown>, ctx: FetchContext): Promise<ListPage> {
      const loaded = await loadFor(ctx);
      if (!loaded.list) throw new ProviderError('InvalidArgument', `stores of kind ${kind} cannot list secrets; use ref objects`);
      return loaded.list(request, ctx);
    },
    async close() {
      closed = true;
      // A client still loading is closed by `create` once it is there.
      await loading?.catch(() => undefined);
      const created = backend;
      backend = undefined;
      await created?.close();
    },
  };
}

/** A backend's own ProviderError message names the field or file; anything else only by code or class. */
function describeCause(err: unknown): string {
  if (err instanceof ProviderError) return err.message;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return code;
  return err instanceof Error ? err.constructor.name : typeof err;
}

function closedError(name: string): ProviderError {
  return new ProviderError('Unavailable', `store ${name} was closed (the config changed); try again`);
}

function cancelled(): ProviderError {
  return new ProviderError('DeadlineExceeded', 'the Mount was cancelled or its deadline passed while the store client loaded');
}
