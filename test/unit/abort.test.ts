import { execFileSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { lazyAbort, lazyDeadline, raceSignal, withDeadline } from '../../src/abort.js';

const root = resolve(import.meta.dirname, '../..');

describe('raceSignal', () => {
  const unhandled: unknown[] = [];
  const record = (reason: unknown) => unhandled.push(reason);
  beforeEach(() => {
    unhandled.length = 0;
    process.on('unhandledRejection', record);
  });
  afterEach(() => {
    process.off('unhandledRejection', record);
  });

  it('rejects at once for a signal that already aborted, and the work failing later is no unhandled rejection', async () => {
    const work = sleep(20).then(() => {
      throw new Error('the store failed after the caller left');
    });
    await expect(raceSignal(work, AbortSignal.abort(), () => new Error('cancelled'))).rejects.toThrow('cancelled');
    await sleep(60);
    expect(unhandled).toEqual([]);
  });

  it('rejects when the signal aborts mid-work, and leaves the work running for others', async () => {
    const controller = new AbortController();
    const work = sleep(50).then(() => 'value');
    const raced = raceSignal(work, controller.signal, () => new Error('cancelled'));
    controller.abort();
    await expect(raced).rejects.toThrow('cancelled');
    await expect(work).resolves.toBe('value');
  });

  it('settles like the work when the signal never aborts', async () => {
    await expect(raceSignal(Promise.resolve(7), new AbortController().signal, () => new Error('x'))).resolves.toBe(7);
    await expect(raceSignal(Promise.reject(new Error('failed')), new AbortController().signal, () => new Error('x'))).rejects.toThrow('failed');
  });
});

describe('withDeadline', () => {
  it('aborts after its time limit and says so', async () => {
    const deadline = withDeadline(new AbortController().signal, 30);
    expect(deadline.signal.aborted).toBe(false);
    await sleep(80);
    expect(deadline.signal.aborted).toBe(true);
    expect(deadline.timedOut).toBe(true);
    deadline.clear();
  });

  it('aborts with its caller, and not by time', () => {
    const caller = new AbortController();
    const deadline = withDeadline(caller.signal, 10_000);
    caller.abort();
    expect(deadline.signal.aborted).toBe(true);
    expect(deadline.timedOut).toBe(false);
    deadline.clear();
    expect(withDeadline(AbortSignal.abort(), 10_000).signal.aborted).toBe(true);
  });

  it('stops its timer and lets go of the caller when cleared', async () => {
    const caller = new AbortController();
    const deadline = withDeadline(caller.signal, 30);
    deadline.clear();
    await sleep(80);
    caller.abort();
    expect(deadline.signal.aborted).toBe(false);
  });

  it('fires however often the garbage collector runs while the call waits (nodejs/node#57736)', async () => {
    // The built module in a process of its own with --expose-gc: nothing but the pending call holds the signal.
    const script = `
      import { withDeadline } from ${JSON.stringify(pathToFileURL(join(root, 'dist/src/abort.js')).href)};
      const caller = new AbortController();
      let fired = 0;
      for (let i = 0; i < 50; i++) withDeadline(caller.signal, 100).signal.addEventListener('abort', () => { fired += 1; });
      const until = Date.now() + 400;
      while (Date.now() < until) { globalThis.gc(); await new Promise((r) => setTimeout(r, 5)); }
      process.stdout.write(String(fired));`;
    const fired = execFileSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(fired).toBe('50');
  });
});

describe('lazyAbort', () => {
  it('makes its signal on first use, aborted if the call was cancelled before', () => {
    const early = lazyAbort();
    early.abort();
    expect(early.signal.aborted).toBe(true);
    const late = lazyAbort();
    const { signal } = late;
    expect(signal.aborted).toBe(false);
    late.abort();
    expect(signal.aborted).toBe(true);
    expect(late.signal).toBe(signal);
  });
});

describe('lazyDeadline', () => {
  it('asks for its caller signal only when its own signal is wanted', () => {
    const caller = new AbortController();
    let asked = 0;
    const unused = lazyDeadline(() => {
      asked += 1;
      return caller.signal;
    }, 10_000);
    expect(unused.timedOut).toBe(false);
    unused.clear();
    expect(asked).toBe(0);
    const used = lazyDeadline(() => {
      asked += 1;
      return caller.signal;
    }, 10_000);
    expect(used.signal).toBe(used.signal);
    expect(asked).toBe(1);
    caller.abort();
    expect(used.signal.aborted).toBe(true);
    expect(used.timedOut).toBe(false);
    used.clear();
  });

  it('counts its time from its creation, not from the first use of its signal', async () => {
    const deadline = lazyDeadline(new AbortController().signal, 100);
    await sleep(60);
    const { signal } = deadline;
    expect(signal.aborted).toBe(false);
    const aborted = new Promise((resolve) => signal.addEventListener('abort', resolve));
    const started = performance.now();
    await aborted;
    // About 40 ms of its 100 were left; a timer started at first use would take the whole 100.
    expect(performance.now() - started).toBeLessThan(85);
    expect(deadline.timedOut).toBe(true);
    expect((signal.reason as DOMException).message).toBe('no answer within 100ms');
  });

  it('is aborted at once when its time passed before its signal was wanted', async () => {
    const deadline = lazyDeadline(undefined, 20);
    await sleep(40);
    expect(deadline.signal.aborted).toBe(true);
    expect(deadline.timedOut).toBe(true);
    expect((deadline.signal.reason as DOMException).name).toBe('TimeoutError');
  });

  it('takes any number of listeners: every waiter of a Mount shares it', () => {
    const deadline = lazyDeadline(undefined, 10_000);
    // The limit Node keeps on an EventTarget (events.setMaxListeners writes it; 0 is none, so no
    // MaxListenersExceededWarning however many objects of a Mount wait on it). Read by its symbol:
    // events.getMaxListeners throws for 0 on Node 20; under vitest on Node 24 a plain signal has no
    // limit either, so the plain signal is no control there.
    const limitOf = (signal: AbortSignal) => {
      const key = Object.getOwnPropertySymbols(signal).find((k) => k.description === 'events.maxEventTargetListeners');
      return key === undefined ? undefined : (signal as unknown as Record<symbol, unknown>)[key];
    };
    expect(limitOf(deadline.signal)).toBe(0);
    for (let i = 0; i < 20; i++) deadline.signal.addEventListener('abort', () => {});
    deadline.clear();
  });
});
