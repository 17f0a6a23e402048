import { describe, expect, it } from 'vitest';
import { createLimiter } from '../../src/stores/limit.js';

/** A task the test finishes by hand, recording when it started. */
function manualTask(started: string[], name: string) {
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  const task = async () => {
    started.push(name);
    await done;
    return name;
  };
  return { task, finish };
}

const never = new AbortController().signal;

describe('per-store concurrency limit', () => {
  it('never runs more than the limit at once and runs every task', async () => {
    const limiter = createLimiter(3);
    let active = 0;
    let peak = 0;
    const task = async () => {
      active += 1;
      peak = Math.max(peak, active);
      await new Promise((r) => setImmediate(r));
      active -= 1;
      return 1;
    };
    const results = await Promise.all(Array.from({ length: 30 }, () => limiter.run(task, new AbortController().signal)));
    expect(results).toHaveLength(30);
    expect(peak).toBe(3);
    expect(limiter.active).toBe(0);
    expect(limiter.waiting).toBe(0);
  });

  it('starts waiting tasks in the order they came, one per freed slot', async () => {
    const limiter = createLimiter(1);
    const started: string[] = [];
    const tasks = ['a', 'b', 'c', 'd'].map((name) => manualTask(started, name));
    const runs = tasks.map((t) => limiter.run(t.task, never));
    await Promise.resolve();
    expect(started).toEqual(['a']);
    expect(limiter.waiting).toBe(3);
    for (const [i, t] of tasks.entries()) {
      t.finish();
      await runs[i];
      await Promise.resolve();
      expect(started).toEqual(['a', 'b', 'c', 'd'].slice(0, Math.min(i + 2, 4)));
    }
    expect(await Promise.all(runs)).toEqual(['a', 'b', 'c', 'd']);
  });

  it('frees the slot when a task fails', async () => {
    const limiter = createLimiter(1);
    await expect(limiter.run(() => Promise.reject(new Error('boom')), never)).rejects.toThrow('boom');
    expect(limiter.active).toBe(0);
    await expect(limiter.run(async () => 'next', never)).resolves.toBe('next');
  });

  it('drops a waiting task whose signal aborts, without running it, and keeps the order of the rest', async () => {
    const limiter = createLimiter(1);
    const started: string[] = [];
    const first = manualTask(started, 'first');
    const blocker = limiter.run(first.task, never);
    const aborter = new AbortController();
    const dropped = limiter.run(manualTask(started, 'dropped').task, aborter.signal);
    const last = manualTask(started, 'last');
    const after = limiter.run(last.task, never);
    expect(limiter.waiting).toBe(2);
    aborter.abort();
    await expect(dropped).rejects.toMatchObject({
      code: 'DeadlineExceeded',
      message: 'the deadline passed while waiting for a free connection to the store',
    });
    expect(limiter.waiting).toBe(1);
    first.finish();
    await blocker;
    last.finish();
    await after;
    expect(started).toEqual(['first', 'last']);
  });

  it('refuses at once when the signal has already aborted', async () => {
    const limiter = createLimiter(1);
    const started: string[] = [];
    const blocker = manualTask(started, 'blocker');
    const running = limiter.run(blocker.task, never);
    const aborter = new AbortController();
    aborter.abort();
    await expect(limiter.run(manualTask(started, 'late').task, aborter.signal)).rejects.toMatchObject({ code: 'DeadlineExceeded' });
    expect(limiter.waiting).toBe(0);
    blocker.finish();
    await running;
  });
});
