import type { Logger } from 'pino';
import { raceSignal } from '../abort.js';
import { ProviderError, toProviderError } from '../errors.js';
import type { FetchContext, FetchResult } from '../backends/types.js';
import type { Store } from '../stores/stores.js';
import type { Metrics } from '../observability/metrics.js';
import { describeObject, type MountObject } from './objects.js';

export type Resolution =
  | { readonly object: MountObject; readonly result: FetchResult }
  | { readonly object: MountObject; readonly skipped: ProviderError };

export interface ResolveDeps {
  readonly stores: ReadonlyMap<string, Store>;
  /** When the Mount must be answered (epoch ms); retries never wait past it. */
  readonly deadlineAt: number;
  /** Keyed digest for identity parts that are themselves secret. */
  readonly keyHmac: (data: string) => string;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Adds up, for the Mount's log line, the time its store calls waited for a slot. */
  readonly waited: { ms: number };
}

/**
 * Fetches every object in parallel, all or nothing: the first failing required object (by index)
 * fails the Mount; a missing optional object is skipped. Values come through the store's cache,
 * which also makes identical concurrent fetches share one call (several objects reading fields of
 * one dynamic response, or many pods of one identity starting at once).
 */
export async function resolveObjects(
  objects: readonly MountObject[],
  ctx: FetchContext,
  deps: ResolveDeps,
): Promise<Resolution[]> {
  const identity = identityKey(ctx, deps.keyHmac);
  const settled = await Promise.allSettled(objects.map((object) => fetchObject(object, identity, ctx, deps)));
  const resolutions: Resolution[] = [];
  const failures: ProviderError[] = [];
  settled.forEach((outcome, i) => {
    const object = objects[i]!;
    if (outcome.status === 'fulfilled') {
      resolutions.push({ object, result: outcome.value });
      return;
    }
    const error = toProviderError(outcome.reason);
    if (object.optional && error.code === 'NotFound') {
      deps.metrics.optionalSkipped.inc({ store: object.store });
      deps.logger.info({ object: object.name, store: object.store }, 'optional object not found; skipped');
      resolutions.push({ object, skipped: error });
    } else {
      failures.push(error.within(`${describeObject(object)} (store ${object.store}, ref ${object.ref})`));
    }
  });
  if (failures.length > 0) {
    const first = failures[0]!;
    throw failures.length === 1
      ? first
      : new ProviderError(first.code, `${first.message} (and ${failures.length - 1} more objects failed)`);
  }
  return resolutions;
}

function fetchObject(object: MountObject, identity: string, ctx: FetchContext, deps: ResolveDeps): Promise<FetchResult> {
  try {
    const store = deps.stores.get(object.store);
    if (!store) throw new ProviderError('Internal', 'the store went away during the Mount');
    // A cached value needs what a store call would: the pod's valid token for the store's audience.
    for (const audience of store.config.audiences) ctx.tokenFor(audience);
    const key = cacheKey(identity, object);
    // The signal is asked for only on a miss: a Mount served from the cache makes no deadline signal.
    return store.cache.get(key, (signal) => callStore(store, object, { ...ctx, signal }, deps), () => ctx.signal);
  } catch (err) {
    return Promise.reject(err);
  }
}

function callStore(store: Store, object: MountObject, ctx: FetchContext, deps: ResolveDeps): Promise<FetchResult> {
  const request = { ref: object.ref, version: object.version, spec: object.spec };
  return runOnStore(store, (attemptCtx) => store.backend.fetch(request, attemptCtx), ctx, deps);
}

/** One store call (a fetch or a listing page) behind the store's guard and limiter, counted. */
export async function runOnStore<T>(store: Store, call: (ctx: FetchContext) => Promise<T>, ctx: FetchContext, deps: ResolveDeps): Promise<T> {
  const labels = { store: store.config.name, backend: store.config.definition.kind };
  // Each attempt takes its own slot in the fair queue, so a backoff never holds a slot other Mounts
  // could use, and one namespace's retries wait their turn like its first calls.
  const attempt = () => {
    const queued = performance.now();
    return store.limiter.run(async () => {
      const started = performance.now();
      deps.metrics.queueWait.observe({ store: labels.store }, (started - queued) / 1000);
      deps.waited.ms += started - queued;
      try {
        const result = await raceSignal(call(ctx), ctx.signal, deadlineError);
        deps.metrics.backendRequests.inc({ ...labels, outcome: 'ok' });
        return result;
      } catch (err) {
        const error = toProviderError(err);
        deps.metrics.backendRequests.inc({ ...labels, outcome: error.code });
        throw error;
      } finally {
        deps.metrics.backendDuration.observe(labels, (performance.now() - started) / 1000);
      }
    }, ctx.identity, { signal: ctx.signal, deadlineAt: deps.deadlineAt });
  };
  return store.guard.call(attempt, { signal: ctx.signal, deadlineAt: deps.deadlineAt });
}

const cacheKeys = new WeakMap<MountObject, { readonly identity: string; readonly key: string }>();

/**
 * The value cache's key: who asks and what. The last one is kept per object, so a class mounted
 * again by the same identity reuses the very string (and V8 the hash it computed for it).
 */
function cacheKey(identity: string, object: MountObject): string {
  const last = cacheKeys.get(object);
  if (last?.identity === identity) return last.key;
  const key = `${identity}\0${fetchKey(object)}`;
  cacheKeys.set(object, { identity, key });
  return key;
}

const fetchKeys = new WeakMap<MountObject, string>();

/** What is fetched, independent of who asks; objects are reused across Mounts of one class. */
function fetchKey(object: MountObject): string {
  let key = fetchKeys.get(object);
  if (key === undefined) {
    key = JSON.stringify([object.ref, object.version ?? null, object.spec ?? null]);
    fetchKeys.set(object, key);
  }
  return key;
}

/**
 * Who the values are for: namespace, service account, login role, and (keyed, never stored
 * in clear) any static credentials from nodePublishSecretRef.
 */
export function identityKey(ctx: FetchContext, keyHmac: (data: string) => string): string {
  const role = ctx.parameters.role ?? '';
  const last = identityKeys.get(ctx.secrets);
  if (last && last.identity === ctx.identity && last.role === role && last.keyHmac === keyHmac) return last.key;
  const secrets = [...ctx.secrets].map(([k, v]) => `${k}=${v.reveal()}`).join('\0');
  const key = [ctx.identity.namespace, ctx.identity.serviceAccount, role, secrets ? keyHmac(secrets) : ''].join('\0');
  identityKeys.set(ctx.secrets, { identity: ctx.identity, role, keyHmac, key });
  return key;
}

/**
 * The last identity key per secrets map: a reused MountInput (server/request-cache.ts) brings the
 * same identity and secrets objects, which then cost no HMAC and no string building.
 */
const identityKeys = new WeakMap<
  ReadonlyMap<string, unknown>,
  { readonly identity: FetchContext['identity']; readonly role: string; readonly keyHmac: (data: string) => string; readonly key: string }
>();

/** A backend that ignores the signal still cannot hold the Mount past its deadline. */
function deadlineError(): ProviderError {
  return new ProviderError('DeadlineExceeded', 'the Mount deadline passed before the store answered');
}
