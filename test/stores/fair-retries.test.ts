import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { ProviderError } from '../../src/errors.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { createStoreGuard } from '../../src/stores/guard.js';
import { createLimiter } from '../../src/stores/limit.js';

/**
 * The guard and the limiter composed as a Mount uses them (src/mount/resolve.ts): each attempt,
 * retries included, takes its own turn in the fair queue.
 */
describe("retries of one namespace's failing calls", () => {
  it('wait their turn like first calls: they never take two slots in a row while another namespace waits', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const now = () => 1_000_000;
    const limiter = createLimiter({ store: 's', limit: 1, maxShare: 1, metrics, now });
    const guard = createStoreGuard({
      store: 's',
      retry: { attempts: 3, baseDelay: 1, maxDelay: 1 },
      // Outages open the breaker; this test is about turns, not the breaker.
      breaker: { failures: 1_000, openFor: 30_000 },
      metrics,
      logger: pino({ level: 'silent' }),
      now,
      sleep: () => new Promise((r) => setImmediate(r)),
    });
    const bounds = { signal: new AbortController().signal, deadlineAt: Infinity };
    const starts: string[] = [];
    const call = (namespace: string, fails: boolean) =>
      guard.call(
        () =>
          limiter.run(
            async () => {
              starts.push(namespace);
              await new Promise((r) => setImmediate(r));
              if (fails) throw new ProviderError('Unavailable', 'store down');
              return namespace;
            },
            { namespace, serviceAccount: 'sa' },
            bounds,
          ),
        bounds,
      );
    const flaky = Array.from({ length: 4 }, () => call('flaky', true).catch((err: ProviderError) => err.code));
    const steady = Array.from({ length: 4 }, () => call('steady', false));
    expect(await Promise.all(flaky)).toEqual(['Unavailable', 'Unavailable', 'Unavailable', 'Unavailable']);
    expect(await Promise.all(steady)).toEqual(['steady', 'steady', 'steady', 'steady']);
    expect(starts.filter((ns) => ns === 'flaky')).toHaveLength(12);
    // The first flaky call found the slot free; from then on, every slot is a turn in the queue.
    const whileSteadyWaits = starts.slice(1, starts.lastIndexOf('steady')).join(',');
    expect(whileSteadyWaits).not.toContain('flaky,flaky');
  });
});
