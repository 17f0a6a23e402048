/**
 * A Map that never grows past `max` entries: adding to a full map first drops the entries
 * `isExpired` rejects, then the oldest. Keeps per-identity caches (tokens, leases, clients)
 * bounded however many identities a node serves.
 */
export class BoundedMap<K, V> extends Map<K, V> {
  constructor(
    private readonly max: number,
    private readonly isExpired: (value: V) => boolean = () => false,
  ) {
    super();
  }

  override set(key: K, value: V): this {
    if (!this.has(key) && this.size >= this.max) this.#prune();
    return super.set(key, value);
  }

  #prune(): void {
    for (const [k, v] of this) if (this.isExpired(v)) this.delete(k);
    for (const k of this.keys()) {
      if (this.size < this.max) break;
      this.delete(k);
    }
  }
}
