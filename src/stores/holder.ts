import type { Logger } from 'pino';
import { closeStores, type ProviderState, type Store } from './stores.js';

/** A Mount's hold on the state it started with: its stores stay open until it releases it. */
export interface StateLease {
  readonly state: ProviderState;
  /** Idempotent. */
  release(): void;
}

export interface StateHolder {
  readonly current: ProviderState;
  /** The current state, held for one Mount. */
  acquire(): StateLease;
  /**
   * Makes `next` current. A store the old state used and `next` does not is closed once no Mount
   * holds a state that uses it: a Mount in flight keeps its stores however long it runs.
   */
  replace(next: ProviderState): void;
  /** Closes every store, held or not (shutdown, once Mounts were drained or cancelled). */
  close(): Promise<void>;
}

/**
 * Owns the lifecycle of the stores across config reloads. A state is live while it is current or
 * held; a store is closed when no live state uses it any more. Counting holders, rather than
 * waiting a fixed time, covers Mounts that run up to mountTimeout and states replaced twice in a
 * row while an old Mount still runs.
 */
export function holdStates(initial: ProviderState, logger?: Logger): StateHolder {
  let current = initial;
  /** Holders per live state; the current state is live with zero holders too. */
  const holders = new Map<ProviderState, number>([[initial, 0]]);
  const closing = new Set<Promise<void>>();

  const retireIfDrained = (state: ProviderState) => {
    if (state === current || holders.get(state) !== 0) return;
    holders.delete(state);
    const used = new Set<Store>([...holders.keys()].flatMap((live) => [...live.stores.values()]));
    const unused = [...state.stores.values()].filter((store) => !used.has(store));
    if (unused.length === 0) return;
    logger?.info({ stores: unused.map((s) => s.config.name) }, 'closing replaced stores');
    const done = closeStores(unused).finally(() => closing.delete(done));
    closing.add(done);
  };

  return {
    get current() {
      return current;
    },
    acquire() {
      const state = current;
      holders.set(state, (holders.get(state) ?? 0) + 1);
      let released = false;
      return {
        state,
        release() {
          if (released) return;
          released = true;
          const count = holders.get(state);
          // Gone after close(): its stores are closed already.
          if (count === undefined) return;
          holders.set(state, count - 1);
          retireIfDrained(state);
        },
      };
    },
    replace(next) {
      const previous = current;
      current = next;
      if (!holders.has(next)) holders.set(next, 0);
      retireIfDrained(previous);
    },
    async close() {
      const all = new Set([...holders.keys()].flatMap((state) => [...state.stores.values()]));
      holders.clear();
      await Promise.allSettled([...closing]);
      await closeStores(all);
    },
  };
}
