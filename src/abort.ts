import { setMaxListeners } from 'node:events';

/**
 * Settles like `work`, or rejects with `onAbort()` as soon as `signal` aborts. The work itself goes
 * on: it may be shared with callers whose deadlines have not passed.
 */
export function raceSignal<T>(work: Promise<T>, signal: AbortSignal, onAbort: () => Error): Promise<T> {
  if (signal.aborted) {
    // Nobody waits for the work now; its failure must not surface as an unhandled rejection.
    work.catch(() => {});
    return Promise.reject(onAbort());
  }
  return new Promise<T>((resolve, reject) => {
    const abort = () => reject(onAbort());
    signal.addEventListener('abort', abort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', abort));
  });
}

/** A call's own time limit combined with its caller's signal. */
export interface CallDeadline {
  readonly signal: AbortSignal;
  /** True once the time limit, not the caller, ended the call. */
  readonly timedOut: boolean;
  /** Stops the timer and lets go of the caller's signal; call it when the call is over. */
  clear(): void;
}

/**
 * Aborts when `caller` aborts or after `ms`, whichever comes first. Not `AbortSignal.any` over
 * `AbortSignal.timeout`: Node may garbage-collect such a timeout signal before it fires
 * (nodejs/node#57736), and a call to a store that never answers then waits for ever. Found by the
 * fault matrix, which saw a hung Vault read outlive its 1 s store timeout under GC pressure.
 */
export function withDeadline(caller: AbortSignal | undefined, ms: number): CallDeadline {
  return startDeadline(caller, ms, ms);
}

/** withDeadline whose timer fires after `left` of its `ms`; at once (synchronously) if `ms` was spent already. */
function startDeadline(caller: AbortSignal | undefined, ms: number, left: number): CallDeadline {
  const controller = new AbortController();
  let timedOut = false;
  const expire = () => {
    timedOut = true;
    controller.abort(new DOMException(`no answer within ${ms}ms`, 'TimeoutError'));
  };
  const timer = left > 0 || ms <= 0 ? setTimeout(expire, left) : undefined;
  if (timer) timer.unref();
  else expire();
  const onAbort = () => controller.abort(caller?.reason);
  if (caller?.aborted) onAbort();
  else caller?.addEventListener('abort', onAbort, { once: true });
  return {
    signal: controller.signal,
    get timedOut() {
      return timedOut;
    },
    clear() {
      clearTimeout(timer);
      caller?.removeEventListener('abort', onAbort);
    },
  };
}

/** A caller's signal, or a function that makes it: only the calls that need it pay for one. */
export type CallerSignal = AbortSignal | (() => AbortSignal);

/**
 * An AbortController made on first use of its signal. A gRPC call hands its cancellation to the
 * Mount this way: a Mount served from the cache never looks at it, and an AbortController is one
 * of the larger costs of a cache-hit Mount (about 2 us with its EventTarget).
 */
export function lazyAbort(): { readonly signal: AbortSignal; abort(): void } {
  let controller: AbortController | undefined;
  let aborted = false;
  return {
    get signal() {
      if (!controller) {
        controller = new AbortController();
        if (aborted) controller.abort();
      }
      return controller.signal;
    },
    abort() {
      aborted = true;
      controller?.abort();
    },
  };
}

/**
 * withDeadline(caller, ms) as if called now, but its signal and timer are made only when something
 * first asks for the signal, with the time spent until then taken off (already past: aborted at
 * once). A Mount served from the cache never starts a store call and so needs no deadline. The
 * signal takes any number of listeners: every waiter of one Mount shares it.
 */
export function lazyDeadline(caller: CallerSignal | undefined, ms: number): CallDeadline {
  const started = performance.now();
  let bound: CallDeadline | undefined;
  let cleared = false;
  return {
    get signal() {
      if (!bound) {
        bound = startDeadline(typeof caller === 'function' ? caller() : caller, ms, ms - (performance.now() - started));
        setMaxListeners(0, bound.signal);
        if (cleared) bound.clear();
      }
      return bound.signal;
    },
    get timedOut() {
      return bound?.timedOut ?? false;
    },
    clear() {
      cleared = true;
      bound?.clear();
    },
  };
}
