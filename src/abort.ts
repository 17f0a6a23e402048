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
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort(new DOMException(`no answer within ${ms}ms`, 'TimeoutError'));
  }, ms);
  timer.unref();
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
