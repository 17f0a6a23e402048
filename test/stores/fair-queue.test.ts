import { describe, expect, it } from 'vitest';
import { createFairQueue } from '../../src/stores/fair-queue.js';

const uncapped = () => false;

describe('fair queue', () => {
  it('keeps each service account first-in-first-out', () => {
    const queue = createFairQueue<string>();
    for (const item of ['1', '2', '3']) queue.enqueue('ns', 'sa', item);
    expect([queue.next(uncapped)?.item, queue.next(uncapped)?.item, queue.next(uncapped)?.item]).toEqual(['1', '2', '3']);
    expect(queue.next(uncapped)).toBeUndefined();
    expect(queue.size).toBe(0);
  });

  it('sends a namespace that emptied and came back to the back of the turns', () => {
    const queue = createFairQueue<string>();
    queue.enqueue('a', 'sa', 'a1');
    queue.enqueue('b', 'sa', 'b1');
    queue.enqueue('b', 'sa', 'b2');
    expect(queue.next(uncapped)?.item).toBe('a1');
    queue.enqueue('a', 'sa', 'a2');
    expect([queue.next(uncapped)?.item, queue.next(uncapped)?.item, queue.next(uncapped)?.item]).toEqual(['b1', 'a2', 'b2']);
  });

  it('removes a queued item, and removing it twice or after its turn changes nothing', () => {
    const queue = createFairQueue<string>();
    const gone = queue.enqueue('a', 'sa', 'gone');
    const taken = queue.enqueue('b', 'sa', 'taken');
    queue.enqueue('c', 'sa', 'kept');
    queue.remove(gone);
    queue.remove(gone);
    expect(queue.size).toBe(2);
    expect(queue.next(uncapped)?.item).toBe('taken');
    queue.remove(taken);
    expect(queue.size).toBe(1);
    expect(queue.next(uncapped)).toEqual({ namespace: 'c', item: 'kept' });
  });

  it('looks at one namespace per pick when none is capped, however many wait', () => {
    const queue = createFairQueue<number>();
    for (let i = 0; i < 20_000; i++) queue.enqueue(`ns-${i}`, 'sa', i);
    let looks = 0;
    const count = () => {
      looks += 1;
      return false;
    };
    for (let i = 0; i < 20_000; i++) expect(queue.next(count)?.item).toBe(i);
    expect(looks).toBe(20_000);
    expect(queue.size).toBe(0);
  });

  it('passes over capped namespaces only: a pick looks at no more namespaces than are capped, plus one', () => {
    const queue = createFairQueue<string>();
    const capped = new Set(['c0', 'c1', 'c2']);
    for (const ns of capped) queue.enqueue(ns, 'sa', ns);
    for (let i = 0; i < 5_000; i++) queue.enqueue(`free-${i}`, 'sa', `free-${i}`);
    let looks = 0;
    const isCapped = (ns: string) => {
      looks += 1;
      return capped.has(ns);
    };
    expect(queue.next(isCapped)?.item).toBe('free-0');
    expect(looks).toBe(4);
  });

  it('holds nothing for namespaces that no longer wait', () => {
    const queue = createFairQueue<number>();
    const tickets = Array.from({ length: 10_000 }, (_, i) => queue.enqueue(`ns-${i}`, `sa-${i % 7}`, i));
    for (const ticket of tickets) queue.remove(ticket);
    expect(queue.size).toBe(0);
    expect(queue.next(uncapped)).toBeUndefined();
    queue.enqueue('late', 'sa', 1);
    expect(queue.next(uncapped)).toEqual({ namespace: 'late', item: 1 });
  });
});
