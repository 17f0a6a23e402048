import { setTimeout as wait } from 'node:timers/promises';
import type { Logger } from 'pino';
import { isTransient } from '../backends/kit/transient.js';
import { ProviderError, toProviderError } from '../errors.js';
import type { BreakerSettings, RetrySettings } from '../config/schema.js';
import type { Metrics } from '../observability/metrics.js';

export type BreakerState = 'closed' | 'half-open' | 'open';

export interface StoreGuard {
  /**
   * Calls a store with retries for transient failures (backoff with jitter, the store's
   * Retry-After honoured), all within the Mount's deadline, behind the store's circuit breaker.
   */
  call<T>(attempt: () => Promise<T>, bounds: { signal: AbortSignal; deadlineAt: number }): Promise<T>;
  readonly state: BreakerState;
}

export interface StoreGuardDeps {
  readonly store: string;
  readonly retry: RetrySettings;
  readonly breaker: BreakerSettings;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** The clock of the breaker and of the Mount's `deadlineAt`. */
  readonly now: () => number;
  /** Waits between attempts; rejects when the signal aborts. Real timers unless a test moves a clock. */
  readonly sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  readonly random?: () => number;
}

const sleepFor = (ms: number, signal: AbortSignal): Promise<void> => wait(ms, undefined, { signal });

const stateValue: Record<BreakerState, number> = { closed: 0, 'half-open': 1, open: 2 };

/** One per store: the shared retry and circuit-breaking mechanism of every backend. */
export function createStoreGuard(deps: StoreGuardDeps): StoreGuard {
  const { store, retry, breaker, metrics } = deps;
  const random = deps.random ?? Math.random;
  const sleep = deps.sleep ?? sleepFor;
  let state: BreakerState = 'closed';
  let failures = 0;
  let openedAt = 0;
  let probing = false;

  const setState = (next: BreakerState) => {
    if (next === state) return;
    state = next;
    metrics.breakerState.set({ store }, stateValue[next]);
    deps.logger.warn({ store, state: next, failures }, `circuit ${next === 'open' ? 'opened' : next === 'closed' ? 'closed' : 'half-open'}`);
  };

  const admit = (): boolean => {
    if (state === 'open' && deps.now() - openedAt >= breaker.openFor) setState('half-open');
    if (state === 'closed') return false;
    if (state === 'half-open' && !probing) {
      probing = true;
      return true;
    }
    metrics.breakerRejections.inc({ store });
    const waitSeconds = Math.max(1, Math.ceil((openedAt + breaker.openFor - deps.now()) / 1000));
    throw new ProviderError(
      'Unavailable',
      `store ${store} is failing (${failures} calls in a row failed); not calling it for another ${waitSeconds}s`,
      { transient: false, retryAfterSeconds: waitSeconds },
    );
  };

  const record = (ok: boolean, isProbe: boolean) => {
    if (isProbe) probing = false;
    if (ok) {
      failures = 0;
      setState('closed');
      return;
    }
    failures += 1;
    if (isProbe || failures >= breaker.failures) {
      openedAt = deps.now();
      setState('open');
    }
  };

  return {
    async call(attempt, { signal, deadlineAt }) {
      for (let n = 1; ; n += 1) {
        const isProbe = admit();
        let error: ProviderError;
        try {
          const result = await attempt();
          record(true, isProbe);
          return result;
        } catch (err) {
          error = toProviderError(err);
          // The Mount giving up says nothing about the store's health.
          if (signal.aborted) {
            if (isProbe) probing = false;
            throw error;
          }
          record(!isStoreFailure(error), isProbe);
        }
        const waitMs = backoff(error, n);
        if (!isTransient(error) || n >= retry.attempts || state === 'open' || deps.now() + waitMs >= deadlineAt) throw error;
        metrics.retries.inc({ store });
        try {
          await sleep(waitMs, signal);
        } catch {
          throw new ProviderError('DeadlineExceeded', `the Mount deadline passed while waiting to retry store ${store} (${error.message})`);
        }
      }
    },
    get state() {
      return state;
    },
  };

  function backoff(error: ProviderError, attempt: number): number {
    if (error.retryAfterSeconds !== undefined) return error.retryAfterSeconds * 1000;
    const ceiling = Math.min(retry.maxDelay, retry.baseDelay * 2 ** (attempt - 1));
    return Math.round(ceiling / 2 + random() * (ceiling / 2));
  }
}

/**
 * Outages and timeouts count against the store. A clear answer (not found, denied) does not, nor
 * does a permanent failure (a certificate that does not verify, an answer over the cap): it fails
 * the same way on every call, and its own message says more than "the store is failing".
 */
function isStoreFailure(error: ProviderError): boolean {
  return isTransient(error) && (error.code === 'Unavailable' || error.code === 'DeadlineExceeded');
}
