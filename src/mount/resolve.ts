import type { Logger } from 'pino';
import { ProviderError, toProviderError } from '../errors.js';
import type { FetchContext, FetchResult } from '../backends/types.js';
import type { Store } from '../config/stores.js';
import type { Metrics } from '../observability/metrics.js';
import { describeObject, type MountObject } from './objects.js';

export type Resolution =
  | { readonly object: MountObject; readonly result: FetchResult }
  | { readonly object: MountObject; readonly skipped: ProviderError };

export interface ResolveDeps {
  readonly stores: ReadonlyMap<string, Store>;
  readonly metrics: Metrics;
  readonly logger: Logger;
}

/**
 * Fetches every object in parallel, all or nothing: the first failing required object (by index)
 * fails the Mount; a missing optional object is skipped. Identical fetches share one call, which
 * is how several objects read fields of one dynamic response.
 */
export async function resolveObjects(
  objects: readonly MountObject[],
  ctx: FetchContext,
  deps: ResolveDeps,
): Promise<Resolution[]> {
  const shared = new Map<string, Promise<FetchResult>>();
  const settled = await Promise.allSettled(
    objects.map((object) => {
      const key = JSON.stringify([object.store, object.ref, object.version ?? null, object.spec ?? null]);
      let call = shared.get(key);
      if (!call) {
        call = fetchObject(object, ctx, deps);
        shared.set(key, call);
      }
      return call;
    }),
  );
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

async function fetchObject(object: MountObject, ctx: FetchContext, deps: ResolveDeps): Promise<FetchResult> {
  const store = deps.stores.get(object.store);
  if (!store) throw new ProviderError('Internal', 'the store went away during the Mount');
  const labels = { store: store.config.name, backend: store.config.definition.kind };
  const started = performance.now();
  try {
    const result = await store.limiter.run(
      () => untilAborted(store.backend.fetch({ ref: object.ref, version: object.version, spec: object.spec }, ctx), ctx.signal),
      ctx.signal,
    );
    deps.metrics.backendRequests.inc({ ...labels, outcome: 'ok' });
    return result;
  } catch (err) {
    const error = toProviderError(err);
    deps.metrics.backendRequests.inc({ ...labels, outcome: error.code });
    throw error;
  } finally {
    deps.metrics.backendDuration.observe(labels, (performance.now() - started) / 1000);
  }
}

/** A backend that ignores the signal still cannot hold the Mount past its deadline. */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(deadlineError());
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(deadlineError());
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

function deadlineError(): ProviderError {
  return new ProviderError('DeadlineExceeded', 'the Mount deadline passed before the store answered');
}
