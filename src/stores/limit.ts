import { ProviderError } from '../errors.js';
import type { Metrics } from '../observability/metrics.js';
import { createFairQueue, type Ticket } from './fair-queue.js';

/** Who a store call is for: slots are shared fairly between namespaces, then service accounts. */
export interface Requester {
  readonly namespace: string;
  readonly serviceAccount: string;
}

export interface CallBounds {
  /** Aborts when the Mount is cancelled or its deadline passes; a waiting call then leaves the queue. */
  readonly signal: AbortSignal;
  /** When the Mount must be answered, on the limiter's clock; a call still waiting then is dropped. */
  readonly deadlineAt: number;
}

export interface Limiter {
  /** Runs `task` in one of the store's slots, waiting its fair turn when all are taken. */
  run<T>(task: () => Promise<T>, who: Requester, bounds: CallBounds): Promise<T>;
  readonly active: number;
  readonly waiting: number;
}

export interface LimiterOptions {
  readonly store: string;
  /** Most calls in flight at once. */
  readonly limit: number;
  /** Most of the slots one namespace holds while another namespace waits (0..1]; 1 leaves plain turns. */
  readonly maxShare: number;
  readonly metrics: Metrics;
  /** The clock of `deadlineAt`. */
  readonly now: () => number;
}

type DropReason = 'deadline' | 'cancelled';

interface Waiter {
  readonly deadlineAt: number;
  grant(): void;
  drop(reason: DropReason): void;
}

/**
 * A Mount's own timer and the driver's deadline fire within a few ms of `deadlineAt` on either
 * side (the two are set a moment apart): an abort that close to it is the deadline, not a cancel.
 */
const deadlineSlackMs = 50;

/**
 * The store's concurrency slots, queued fairly: free slots go round-robin to the namespaces with
 * calls waiting (then to their service accounts), and a namespace holding its share of slots
 * (`maxShare`) lets the others go first. A namespace alone still gets every slot.
 */
export function createLimiter(options: LimiterOptions): Limiter {
  const { limit, now } = options;
  const share = Math.max(1, Math.floor(options.maxShare * limit));
  const queue = createFairQueue<Waiter>();
  /** Slots held per namespace; only namespaces holding one are kept, at most `limit` of them. */
  const holding = new Map<string, number>();
  const queued = options.metrics.queuedCalls.labels({ store: options.store });
  const dropped = options.metrics.queueDropped;
  let active = 0;

  const isCapped = (namespace: string) => (holding.get(namespace) ?? 0) >= share;

  const take = (namespace: string) => {
    active += 1;
    holding.set(namespace, (holding.get(namespace) ?? 0) + 1);
  };

  const dispatch = () => {
    while (active < limit) {
      const next = queue.next(isCapped);
      if (!next) return;
      queued.dec();
      if (now() >= next.item.deadlineAt) {
        next.item.drop('deadline');
        continue;
      }
      take(next.namespace);
      next.item.grant();
    }
  };

  const release = (namespace: string) => {
    active -= 1;
    const left = holding.get(namespace)! - 1;
    if (left === 0) holding.delete(namespace);
    else holding.set(namespace, left);
    dispatch();
  };

  const reasonOf = (deadlineAt: number): DropReason => (now() >= deadlineAt - deadlineSlackMs ? 'deadline' : 'cancelled');

  const refusal = (reason: DropReason) => {
    dropped.inc({ store: options.store, reason });
    return new ProviderError(
      'DeadlineExceeded',
      reason === 'deadline'
        ? 'the deadline passed while waiting for a free connection to the store'
        : 'the Mount was cancelled while waiting for a free connection to the store',
    );
  };

  const acquire = ({ namespace, serviceAccount }: Requester, { signal, deadlineAt }: CallBounds) =>
    new Promise<void>((resolve, reject) => {
      if (signal.aborted) return reject(refusal(reasonOf(deadlineAt)));
      if (active < limit) {
        take(namespace);
        return resolve();
      }
      let ticket: Ticket<Waiter> | undefined;
      const onAbort = () => {
        queue.remove(ticket!);
        queued.dec();
        reject(refusal(reasonOf(deadlineAt)));
      };
      const waiter: Waiter = {
        deadlineAt,
        grant() {
          signal.removeEventListener('abort', onAbort);
          resolve();
        },
        drop(reason) {
          signal.removeEventListener('abort', onAbort);
          reject(refusal(reason));
        },
      };
      signal.addEventListener('abort', onAbort, { once: true });
      ticket = queue.enqueue(namespace, serviceAccount, waiter);
      queued.inc();
    });

  return {
    async run(task, who, bounds) {
      await acquire(who, bounds);
      try {
        return await task();
      } finally {
        release(who.namespace);
      }
    },
    get active() {
      return active;
    },
    get waiting() {
      return queue.size;
    },
  };
}
