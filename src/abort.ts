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
