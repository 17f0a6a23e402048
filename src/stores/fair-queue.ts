/** A node of a Chain; `chain` is cleared when it leaves, so a second unlink is a no-op. */
interface Link<T> {
  readonly value: T;
  prev?: Link<T>;
  next?: Link<T>;
  chain?: Chain<T>;
}

/** A doubly linked list: push at the back, take from the front and unlink any node, all O(1). */
class Chain<T> {
  private head?: Link<T>;
  private tail?: Link<T>;
  size = 0;

  push(value: T): Link<T> {
    const link: Link<T> = { value, prev: this.tail, chain: this };
    if (this.tail) this.tail.next = link;
    else this.head = link;
    this.tail = link;
    this.size += 1;
    return link;
  }

  shift(): T | undefined {
    const first = this.head;
    if (!first) return undefined;
    this.unlink(first);
    return first.value;
  }

  unlink(link: Link<T>): void {
    if (link.chain !== this) return;
    if (link.prev) link.prev.next = link.next;
    else this.head = link.next;
    if (link.next) link.next.prev = link.prev;
    else this.tail = link.prev;
    link.prev = link.next = link.chain = undefined;
    this.size -= 1;
  }
}

interface AccountLane<T> {
  readonly name: string;
  readonly waiting: Chain<T>;
  readonly owner: NamespaceLane<T>;
  link?: Link<AccountLane<T>>;
}

interface NamespaceLane<T> {
  readonly name: string;
  /** Service accounts of this namespace with calls waiting, in turn order. */
  readonly turns: Chain<AccountLane<T>>;
  readonly accounts: Map<string, AccountLane<T>>;
  link?: Link<NamespaceLane<T>>;
}

/** A queued item's place, for taking it out before its turn. */
export interface Ticket<T> {
  readonly link: Link<T>;
  readonly lane: AccountLane<T>;
}

export interface FairQueue<T> {
  /** Queues `item` behind the earlier items of the same namespace and service account. */
  enqueue(namespace: string, serviceAccount: string, item: T): Ticket<T>;
  /** Takes an item out of the queue before its turn; nothing happens when it already left. */
  remove(ticket: Ticket<T>): void;
  /**
   * The next item: namespaces take turns, and within a namespace its service accounts take turns.
   * A namespace for which `isCapped` holds gives up its turn while another namespace waits that is
   * not capped; when every waiting namespace is capped, the first in turn goes anyway, so a slot
   * is never left idle while anything waits.
   */
  next(isCapped: (namespace: string) => boolean): { readonly namespace: string; readonly item: T } | undefined;
  readonly size: number;
}

/**
 * Round-robin over namespaces, then over service accounts, each with its own FIFO. Lanes exist only
 * while they hold items, so memory follows the number of queued items and every operation but
 * `next` is O(1). `next` passes over capped namespaces only, and a capped namespace holds at least
 * one slot of the store: it looks at no more lanes than the store has slots, however many
 * namespaces wait.
 */
export function createFairQueue<T>(): FairQueue<T> {
  const ring = new Chain<NamespaceLane<T>>();
  const namespaces = new Map<string, NamespaceLane<T>>();
  let size = 0;

  const laneFor = (namespace: string, serviceAccount: string): AccountLane<T> => {
    let owner = namespaces.get(namespace);
    if (!owner) {
      owner = { name: namespace, turns: new Chain(), accounts: new Map() };
      owner.link = ring.push(owner);
      namespaces.set(namespace, owner);
    }
    let lane = owner.accounts.get(serviceAccount);
    if (!lane) {
      lane = { name: serviceAccount, waiting: new Chain(), owner };
      lane.link = owner.turns.push(lane);
      owner.accounts.set(serviceAccount, lane);
    }
    return lane;
  };

  /** Drops lanes left empty, so an idle namespace costs nothing and a returning one queues at the back. */
  const tidy = (lane: AccountLane<T>) => {
    if (lane.waiting.size > 0) return;
    const { owner } = lane;
    owner.turns.unlink(lane.link!);
    owner.accounts.delete(lane.name);
    if (owner.turns.size > 0) return;
    ring.unlink(owner.link!);
    namespaces.delete(owner.name);
  };

  const pickNamespace = (isCapped: (namespace: string) => boolean): NamespaceLane<T> | undefined => {
    for (let looked = 0; looked < ring.size; looked += 1) {
      const candidate = ring.shift()!;
      candidate.link = ring.push(candidate);
      if (!isCapped(candidate.name)) return candidate;
    }
    // All capped: after a full turn the ring is back in order; its front goes.
    const first = ring.shift();
    if (first) first.link = ring.push(first);
    return first;
  };

  return {
    enqueue(namespace, serviceAccount, item) {
      const lane = laneFor(namespace, serviceAccount);
      size += 1;
      return { link: lane.waiting.push(item), lane };
    },
    remove({ link, lane }) {
      if (link.chain !== lane.waiting) return;
      lane.waiting.unlink(link);
      size -= 1;
      tidy(lane);
    },
    next(isCapped) {
      const owner = pickNamespace(isCapped);
      if (!owner) return undefined;
      const lane = owner.turns.shift()!;
      lane.link = owner.turns.push(lane);
      const item = lane.waiting.shift()!;
      size -= 1;
      tidy(lane);
      return { namespace: owner.name, item };
    },
    get size() {
      return size;
    },
  };
}
