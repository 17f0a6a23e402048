import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { parseProviderConfig } from '../../src/config/load.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { closeStores, createStores } from '../../src/stores/stores.js';

const entry = (extra: string) => `stores:\n  - {name: files, backend: file, root: /nonexistent${extra}}\n`;

describe('fairness settings of a store', () => {
  it('default to a 0.75 share', async () => {
    const parsed = await parseProviderConfig(entry(''), '/tmp');
    expect(parsed.ok && parsed.config.stores[0]!.fairness).toEqual({ maxShare: 0.75 });
  });

  it.each([['0'], ['1.5'], ['"half"']])('refuse maxShare %s, naming the store entry and the field', async (value) => {
    const parsed = await parseProviderConfig(entry(`, fairness: {maxShare: ${value}}`), '/tmp');
    expect(parsed.ok).toBe(false);
    expect(parsed.ok ? [] : parsed.problems.join('\n')).toMatch(/stores\[0\]\.fairness\.maxShare/);
  });

  it("set the share the store's limiter applies", async () => {
    const parsed = await parseProviderConfig(entry(', concurrency: 4, fairness: {maxShare: 0.5}'), '/tmp');
    if (!parsed.ok) throw new Error(parsed.problems.join('\n'));
    const metrics = createMetrics({ defaultMetrics: false });
    const { stores } = await createStores(parsed.config, { logger: pino({ level: 'silent' }), metrics, now: Date.now });
    const { limiter } = stores.get('files')!;
    const bounds = { signal: new AbortController().signal, deadlineAt: Infinity };
    const order: string[] = [];
    const releases = new Map<string, () => void>();
    const run = (namespace: string, name: string) =>
      limiter.run(
        async () => {
          order.push(name);
          await new Promise<void>((r) => releases.set(name, r));
        },
        { namespace, serviceAccount: 'sa' },
        bounds,
      );
    const settle = () => new Promise((r) => setImmediate(r));
    const runs = ['a1', 'a2', 'a3', 'a4', 'a5'].map((name) => run('a', name));
    runs.push(run('b', 'b1'), run('b', 'b2'));
    await settle();
    releases.get('a1')!();
    await settle();
    // Holding 2 of 4 slots is a 0.5 share: `a` waits while `b` does (with the default 0.75, a5 would go).
    releases.get('a2')!();
    await settle();
    expect(order).toEqual(['a1', 'a2', 'a3', 'a4', 'b1', 'b2']);
    for (const name of ['a3', 'a4', 'b1', 'b2']) releases.get(name)!();
    await settle();
    releases.get('a5')!();
    await Promise.all(runs);
    await closeStores(stores.values());
  });
});
