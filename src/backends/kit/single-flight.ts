/**
 * One operation per key at a time: callers that arrive while it runs join it instead of starting
 * their own (one login per identity for a burst of Mounts, one issue of a dynamic credential).
 */
export interface SingleFlight<T> {
  run(key: string, start: () => Promise<T>): Promise<T>;
  /** Operations in flight. */
  readonly size: number;
}

export function createSingleFlight<T>(): SingleFlight<T> {
  const inflight = new Map<string, Promise<T>>();
  return {
    run(key, start) {
      const running = inflight.get(key);
      if (running) return running;
      const promise = start().finally(() => inflight.delete(key));
      inflight.set(key, promise);
      return promise;
    },
    get size() {
      return inflight.size;
    },
  };
}
