import { execFileSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { raceSignal, withDeadline } from '../../src/abort.js';

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
