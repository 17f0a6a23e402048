import type { AwsCaller } from './credentials.js';

export interface PendingRead<Item, Result> {
  readonly item: Item;
  resolve(result: Result): void;
  reject(err: unknown): void;
}

/**
 * Collects the reads of one identity that arrive in the same turn of the event loop (one Mount's
 * objects are fetched in parallel) and hands them over together, so a store can batch them. The
 * SDK batches nothing; identities never share a batch, as they never share credentials.
 */
export class MicroBatcher<Item, Result> {
  readonly #groups = new Map<string, { caller: AwsCaller; pending: Array<PendingRead<Item, Result>> }>();

  constructor(private readonly flush: (caller: AwsCaller, pending: ReadonlyArray<PendingRead<Item, Result>>) => Promise<void>) {}

  add(caller: AwsCaller, item: Item): Promise<Result> {
    return new Promise<Result>((resolve, reject) => {
      let group = this.#groups.get(caller.key);
      if (!group) {
        group = { caller, pending: [] };
        this.#groups.set(caller.key, group);
        const flushing = group;
        setImmediate(() => {
          this.#groups.delete(caller.key);
          this.flush(flushing.caller, flushing.pending).catch((err: unknown) => {
            for (const p of flushing.pending) p.reject(err);
          });
        });
      }
      group.pending.push({ item, resolve, reject });
    });
  }
}
