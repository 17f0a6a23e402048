import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { raceSignal } from '../../src/abort.js';

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
