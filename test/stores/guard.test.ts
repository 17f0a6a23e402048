import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { ProviderError } from '../../src/errors.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { createStoreGuard } from '../../src/stores/guard.js';

/**
 * The store guard with a clock the test moves: a wait advances the clock by its length at once, so
 * backoffs, Retry-After and the deadline are checked as numbers, without sleeping.
 */
function setup(over: { attempts?: number; failures?: number; openFor?: number; sleep?: (ms: number, signal: AbortSignal) => Promise<void> } = {}) {
  const clock = { now: 1_000_000 };
  const waits: number[] = [];
  const metrics = createMetrics({ defaultMetrics: false });
  const guard = createStoreGuard({
    store: 's',
    retry: { attempts: over.attempts ?? 3, baseDelay: 100, maxDelay: 1_000 },
    breaker: { failures: over.failures ?? 3, openFor: over.openFor ?? 30_000 },
    metrics,
    logger: pino({ level: 'silent' }),
    now: () => clock.now,
    sleep:
      over.sleep ??
      (async (ms) => {
        waits.push(ms);
        clock.now += ms;
      }),
    // The middle of the jitter range: each backoff is 3/4 of its ceiling.
    random: () => 0.5,
  });
  const counter = async (pattern: RegExp) => Number(pattern.exec(await metrics.registry.metrics())?.[1] ?? 0);
  return { clock, waits, guard, counter };
}

/** An attempt that fails with each of `errors` in turn, then answers `ok`. */
function scripted(...errors: Error[]) {
  const attempt = async () => {
    attempt.calls += 1;
    const error = errors[attempt.calls - 1];
    if (error) throw error;
    return 'ok';
  };
  attempt.calls = 0;
  return attempt;
}

const outage = () => new ProviderError('Unavailable', 'store down');
const bounds = (deadlineAt = Infinity) => ({ signal: new AbortController().signal, deadlineAt });

describe('store guard retries', () => {
  it('retries transient failures with doubling backoff and returns the answer', async () => {
    const { guard, waits, counter } = setup({ attempts: 3 });
    const attempt = scripted(outage(), outage());
    await expect(guard.call(attempt, bounds())).resolves.toBe('ok');
    expect(attempt.calls).toBe(3);
    expect(waits).toEqual([75, 150]);
    expect(await counter(/usp_store_retries_total\{store="s"\} (\d+)/)).toBe(2);
  });

  it('gives up after the configured attempts with the last error', async () => {
    const { guard } = setup({ attempts: 3, failures: 10 });
    const attempt = scripted(outage(), outage(), new ProviderError('Unavailable', 'third'), outage());
    await expect(guard.call(attempt, bounds())).rejects.toThrow('third');
    expect(attempt.calls).toBe(3);
  });

  it('never retries what is not transient: refusals, missing objects, permanent failures, unclassified errors', async () => {
    const { guard, waits } = setup({ attempts: 5 });
    for (const error of [
      new ProviderError('PermissionDenied', 'denied'),
      new ProviderError('NotFound', 'gone'),
      new ProviderError('Unavailable', 'certificate not trusted', { transient: false }),
      new TypeError('a bug'),
    ]) {
      const attempt = scripted(error);
      await expect(guard.call(attempt, bounds())).rejects.toBeInstanceOf(ProviderError);
      expect(attempt.calls).toBe(1);
    }
    expect(waits).toEqual([]);
  });

  it("retries a store's own timeout marked transient, whatever its code", async () => {
    const { guard } = setup();
    const attempt = scripted(new ProviderError('DeadlineExceeded', 'store call timed out', { transient: true }));
    await expect(guard.call(attempt, bounds())).resolves.toBe('ok');
    expect(attempt.calls).toBe(2);
  });

  it("waits the store's Retry-After instead of its own backoff", async () => {
    const { guard, waits } = setup();
    const attempt = scripted(new ProviderError('Unavailable', 'throttled', { retryAfterSeconds: 7 }));
    await expect(guard.call(attempt, bounds())).resolves.toBe('ok');
    expect(waits).toEqual([7_000]);
  });

  it('does not start a wait that would end past the deadline', async () => {
    const { guard, clock, waits } = setup({ attempts: 10, failures: 100 });
    const attempt = scripted(...Array.from({ length: 10 }, outage));
    // Backoffs 75, 150, 300, 600 end at +1125; the next (750) would end at +1875, past +1500.
    await expect(guard.call(attempt, bounds(clock.now + 1_500))).rejects.toThrow('store down');
    expect(waits).toEqual([75, 150, 300, 600]);
    expect(attempt.calls).toBe(5);

    const throttled = scripted(new ProviderError('Unavailable', 'throttled', { retryAfterSeconds: 30 }));
    await expect(guard.call(throttled, bounds(clock.now + 5_000))).rejects.toThrow('throttled');
    expect(throttled.calls).toBe(1);
  });

  it('does not retry a failure that came after the Mount gave up', async () => {
    const { guard } = setup();
    const controller = new AbortController();
    const attempt = scripted(outage());
    const aborting = async () => {
      controller.abort();
      return attempt();
    };
    await expect(guard.call(aborting, { signal: controller.signal, deadlineAt: Infinity })).rejects.toThrow('store down');
    expect(attempt.calls).toBe(1);
  });

  it('stops waiting to retry when the Mount gives up, with DeadlineExceeded', async () => {
    const controller = new AbortController();
    const { guard } = setup({
      sleep: (_ms, signal) =>
        new Promise((_, reject) => {
          signal.addEventListener('abort', () => reject(signal.reason as Error));
          controller.abort();
        }),
    });
    const attempt = scripted(outage());
    await expect(guard.call(attempt, { signal: controller.signal, deadlineAt: Infinity })).rejects.toMatchObject({
      code: 'DeadlineExceeded',
      message: 'the Mount deadline passed while waiting to retry store s (store down)',
    });
    expect(attempt.calls).toBe(1);
  });
});

describe('store guard circuit breaker', () => {
  it('opens after N consecutive failed calls and then fails fast without calling the store', async () => {
    const { guard, counter } = setup({ attempts: 1, failures: 3 });
    for (let i = 0; i < 3; i++) await expect(guard.call(scripted(outage()), bounds())).rejects.toThrow('store down');
    expect(guard.state).toBe('open');
    expect(await counter(/usp_store_circuit_state\{store="s"\} (\d+)/)).toBe(2);

    const attempt = scripted();
    const error = await guard.call(attempt, bounds()).catch((err: unknown) => err as ProviderError);
    expect(attempt.calls).toBe(0);
    expect(error).toMatchObject({ code: 'Unavailable', transient: false, retryAfterSeconds: 30 });
    expect((error as ProviderError).message).toBe('store s is failing (3 calls in a row failed); not calling it for another 30s');
    expect(await counter(/usp_store_circuit_rejections_total\{store="s"\} (\d+)/)).toBe(1);
  });

  it('counts failed retries of one call towards opening, and stops retrying once open', async () => {
    const { guard } = setup({ attempts: 5, failures: 2 });
    const attempt = scripted(outage(), outage(), outage());
    await expect(guard.call(attempt, bounds())).rejects.toThrow('store down');
    expect(attempt.calls).toBe(2);
    expect(guard.state).toBe('open');
  });

  it('a success resets the count of consecutive failures', async () => {
    const { guard } = setup({ attempts: 1, failures: 3 });
    for (const fails of [2, 2]) {
      for (let i = 0; i < fails; i++) await expect(guard.call(scripted(outage()), bounds())).rejects.toThrow();
      await guard.call(scripted(), bounds());
    }
    expect(guard.state).toBe('closed');
  });

  it('after openFor lets one probe through: success closes it, failure opens it again', async () => {
    const { guard, clock } = setup({ attempts: 1, failures: 1, openFor: 30_000 });
    await expect(guard.call(scripted(outage()), bounds())).rejects.toThrow('store down');
    clock.now += 29_999;
    await expect(guard.call(scripted(), bounds())).rejects.toThrow('not calling it for another 1s');

    clock.now += 1;
    await expect(guard.call(scripted(outage()), bounds())).rejects.toThrow('store down');
    expect(guard.state).toBe('open');
    await expect(guard.call(scripted(), bounds())).rejects.toThrow('for another 30s');

    clock.now += 30_000;
    let letProbeAnswer!: () => void;
    const probe = guard.call(() => new Promise<string>((resolve) => (letProbeAnswer = () => resolve('probed'))), bounds());
    expect(guard.state).toBe('half-open');
    // While the probe runs, other calls still fail fast.
    const other = scripted();
    await expect(guard.call(other, bounds())).rejects.toThrow('store s is failing');
    expect(other.calls).toBe(0);
    letProbeAnswer();
    await expect(probe).resolves.toBe('probed');
    expect(guard.state).toBe('closed');
    await expect(guard.call(scripted(), bounds())).resolves.toBe('ok');
  });

  it('denied and not-found answers never open it', async () => {
    const { guard } = setup({ attempts: 1, failures: 2 });
    for (let i = 0; i < 10; i++) {
      await expect(guard.call(scripted(new ProviderError('PermissionDenied', 'no')), bounds())).rejects.toThrow();
      await expect(guard.call(scripted(new ProviderError('NotFound', 'gone')), bounds())).rejects.toThrow();
      await expect(guard.call(scripted(new ProviderError('InvalidArgument', 'bad ref')), bounds())).rejects.toThrow();
    }
    expect(guard.state).toBe('closed');
  });

  it('a Mount giving up does not count against the store', async () => {
    const { guard } = setup({ attempts: 1, failures: 1 });
    for (let i = 0; i < 3; i++) {
      const controller = new AbortController();
      const attempt = async () => {
        controller.abort();
        throw new ProviderError('DeadlineExceeded', 'the Mount deadline passed');
      };
      await expect(guard.call(attempt, { signal: controller.signal, deadlineAt: Infinity })).rejects.toThrow();
    }
    expect(guard.state).toBe('closed');
  });
});
