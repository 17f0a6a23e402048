import { describe, expect, it } from 'vitest';
import { createMetrics } from '../../src/observability/metrics.js';
import { createLimiter, type Limiter } from '../../src/stores/limit.js';

/** The limiter's clock; it moves only when a test says so. */
function testClock() {
  const clock = { t: 1_000_000, now: () => clock.t };
  return clock;
}

function setup(limit: number, maxShare = 0.5) {
  const clock = testClock();
  const metrics = createMetrics({ defaultMetrics: false });
  const limiter = createLimiter({ store: 's', limit, maxShare, metrics, now: clock.now });
  const started: string[] = [];
  const finishers = new Map<string, () => void>();
  /** Queues a call named `name` for `namespace`/`account`; the test finishes it with finish(name). */
  const call = (name: string, namespace = 'ns', account = 'sa', bounds: { signal?: AbortSignal; deadlineAt?: number } = {}) =>
    limiter.run(
      async () => {
        started.push(name);
        await new Promise<void>((resolve) => finishers.set(name, resolve));
        return name;
      },
      { namespace, serviceAccount: account },
      { signal: bounds.signal ?? new AbortController().signal, deadlineAt: bounds.deadlineAt ?? Infinity },
    );
  const finish = async (name: string) => {
    const done = finishers.get(name);
    if (!done) throw new Error(`${name} is not running`);
    done();
    await settle();
  };
  const metric = async (pattern: RegExp) => pattern.exec(await metrics.registry.metrics())?.[1];
  return { clock, limiter, started, call, finish, metric };
}

/** Lets granted calls start (their task runs a few microtasks after the grant). */
const settle = () => new Promise((r) => setImmediate(r));

/** Finishes the running calls one at a time, oldest first, until nothing runs. */
async function drain(t: ReturnType<typeof setup>, limiter: Limiter) {
  for (let i = 0; limiter.active > 0; i++) await t.finish(t.started[i]!);
}

describe('per-store concurrency limit', () => {
  it('never runs more than the limit at once and runs every task', async () => {
    const { limiter } = setup(3);
    let active = 0;
    let peak = 0;
    const task = async () => {
      active += 1;
      peak = Math.max(peak, active);
      await settle();
      active -= 1;
      return 1;
    };
    const bounds = { signal: new AbortController().signal, deadlineAt: Infinity };
    const runs = Array.from({ length: 30 }, (_, i) => limiter.run(task, { namespace: `ns${i % 4}`, serviceAccount: 'sa' }, bounds));
    expect(await Promise.all(runs)).toHaveLength(30);
    expect(peak).toBe(3);
    expect(limiter.active).toBe(0);
    expect(limiter.waiting).toBe(0);
  });

  it('starts one identity\'s waiting calls in the order they came, one per freed slot', async () => {
    const t = setup(1);
    const runs = ['a', 'b', 'c', 'd'].map((name) => t.call(name));
    await settle();
    expect(t.started).toEqual(['a']);
    expect(t.limiter.waiting).toBe(3);
    await drain(t, t.limiter);
    expect(t.started).toEqual(['a', 'b', 'c', 'd']);
    expect(await Promise.all(runs)).toEqual(['a', 'b', 'c', 'd']);
  });

  it('frees the slot when a task fails', async () => {
    const { limiter } = setup(1);
    const who = { namespace: 'ns', serviceAccount: 'sa' };
    const bounds = { signal: new AbortController().signal, deadlineAt: Infinity };
    await expect(limiter.run(() => Promise.reject(new Error('boom')), who, bounds)).rejects.toThrow('boom');
    expect(limiter.active).toBe(0);
    await expect(limiter.run(async () => 'next', who, bounds)).resolves.toBe('next');
  });
});

describe('fair turns between namespaces and service accounts', () => {
  it('gives free slots to waiting namespaces in turn, whatever order their calls came in', async () => {
    const t = setup(1, 1);
    t.call('blocker', 'a');
    for (const [name, ns] of [['a1', 'a'], ['a2', 'a'], ['a3', 'a'], ['b1', 'b'], ['c1', 'c'], ['b2', 'b']] as const) t.call(name, ns);
    await settle();
    await drain(t, t.limiter);
    expect(t.started).toEqual(['blocker', 'a1', 'b1', 'c1', 'a2', 'b2', 'a3']);
  });

  it('within a namespace, gives its turns to its service accounts in turn', async () => {
    const t = setup(1, 1);
    t.call('blocker', 'other');
    for (const name of ['p1', 'p2', 'p3']) t.call(name, 'team', 'p');
    t.call('q1', 'team', 'q');
    t.call('x1', 'other');
    await settle();
    await drain(t, t.limiter);
    expect(t.started).toEqual(['blocker', 'p1', 'x1', 'q1', 'p2', 'p3']);
  });

  it('lets a namespace holding its share (maxShare) wait while another namespace waits', async () => {
    const t = setup(4, 0.5);
    for (let i = 1; i <= 8; i++) t.call(`n${i}`, 'noisy');
    await settle();
    expect(t.started).toEqual(['n1', 'n2', 'n3', 'n4']);
    for (const name of ['q1', 'q2', 'q3']) t.call(name, 'quiet');
    // noisy holds 3 and 2 slots after the first two finish: both free slots go to quiet.
    await t.finish('n1');
    await t.finish('n2');
    expect(t.started.slice(4)).toEqual(['q1', 'q2']);
    // Now quiet holds its share and noisy is below its own: noisy has the next two.
    await t.finish('n3');
    await t.finish('n4');
    expect(t.started.slice(6)).toEqual(['n5', 'n6']);
    // noisy back at its share: quiet's last call goes first.
    await t.finish('q1');
    expect(t.started.slice(8)).toEqual(['q3']);
  });

  it('without a cap (maxShare 1), the same burst gives freed slots in plain turns', async () => {
    const t = setup(4, 1);
    for (let i = 1; i <= 8; i++) t.call(`n${i}`, 'noisy');
    await settle();
    for (const name of ['q1', 'q2', 'q3']) t.call(name, 'quiet');
    await t.finish('n1');
    await t.finish('n2');
    await t.finish('n3');
    expect(t.started.slice(4)).toEqual(['n5', 'q1', 'n6']);
  });

  it('gives a namespace alone every slot, whatever its share', async () => {
    const t = setup(4, 0.25);
    for (let i = 1; i <= 6; i++) t.call(`n${i}`, 'alone', `sa${i % 2}`);
    await settle();
    expect(t.limiter.active).toBe(4);
    await t.finish('n1');
    expect(t.limiter.active).toBe(4);
    expect(t.started).toHaveLength(5);
  });

  it('never leaves a slot idle while calls wait, even when every waiting namespace holds its share', async () => {
    const t = setup(5, 0.4);
    t.call('a1', 'a');
    t.call('a2', 'a');
    t.call('b1', 'b');
    t.call('b2', 'b');
    t.call('c1', 'c');
    t.call('a3', 'a');
    t.call('b3', 'b');
    await settle();
    await t.finish('c1');
    expect(t.started.slice(5)).toEqual(['a3']);
    expect(t.limiter.active).toBe(5);
  });
});

describe('calls leaving the queue', () => {
  it('drops waiting calls whose deadline passed (on the limiter clock) when a slot frees, and runs the next', async () => {
    const t = setup(1);
    t.call('blocker', 'ns', 'sa');
    const late = t.call('late', 'ns', 'sa', { deadlineAt: t.clock.t + 100 });
    const onTime = t.call('on-time', 'ns', 'sa', { deadlineAt: t.clock.t + 10_000 });
    expect(await t.metric(/usp_store_queued_calls\{store="s"\} (\d+)/)).toBe('2');
    const dropped = expect(late).rejects.toMatchObject({ code: 'DeadlineExceeded', message: 'the deadline passed while waiting for a free connection to the store' });
    t.clock.t += 200;
    await t.finish('blocker');
    await dropped;
    expect(t.started).toEqual(['blocker', 'on-time']);
    await t.finish('on-time');
    await expect(onTime).resolves.toBe('on-time');
    expect(await t.metric(/usp_store_queue_dropped_total\{store="s",reason="deadline"\} (\d+)/)).toBe('1');
    expect(await t.metric(/usp_store_queued_calls\{store="s"\} (\d+)/)).toBe('0');
  });

  it('takes a cancelled call out of the queue at once, counted as cancelled, keeping the order of the rest', async () => {
    const t = setup(1);
    t.call('first', 'a');
    const aborter = new AbortController();
    const cancelled = t.call('cancelled', 'b', 'sa', { signal: aborter.signal, deadlineAt: t.clock.t + 60_000 });
    t.call('last', 'c');
    expect(t.limiter.waiting).toBe(2);
    aborter.abort();
    await expect(cancelled).rejects.toMatchObject({ code: 'DeadlineExceeded', message: 'the Mount was cancelled while waiting for a free connection to the store' });
    expect(t.limiter.waiting).toBe(1);
    expect(await t.metric(/usp_store_queued_calls\{store="s"\} (\d+)/)).toBe('1');
    await drain(t, t.limiter);
    expect(t.started).toEqual(['first', 'last']);
    expect(await t.metric(/usp_store_queue_dropped_total\{store="s",reason="cancelled"\} (\d+)/)).toBe('1');
  });

  it('counts an abort at the deadline as a deadline drop', async () => {
    const t = setup(1);
    t.call('blocker');
    const aborter = new AbortController();
    const waiting = t.call('waiting', 'ns', 'sa', { signal: aborter.signal, deadlineAt: t.clock.t + 1_000 });
    t.clock.t += 1_000;
    aborter.abort();
    await expect(waiting).rejects.toMatchObject({ code: 'DeadlineExceeded' });
    expect(await t.metric(/usp_store_queue_dropped_total\{store="s",reason="deadline"\} (\d+)/)).toBe('1');
    expect(t.limiter.waiting).toBe(0);
  });

  it('refuses at once when the signal has already aborted', async () => {
    const t = setup(1);
    t.call('blocker');
    const aborter = new AbortController();
    aborter.abort();
    await expect(t.call('late', 'ns', 'sa', { signal: aborter.signal, deadlineAt: t.clock.t + 60_000 })).rejects.toMatchObject({ code: 'DeadlineExceeded' });
    expect(t.limiter.waiting).toBe(0);
    expect(t.started).toEqual(['blocker']);
  });
});
