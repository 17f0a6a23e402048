/**
 * No response ever mixes old and new content: each store's two-key secret flips between v1 and v2
 * while Mounts run concurrently and single faults (resets, truncated and malformed answers, 5xx,
 * latency) make the provider retry. Every successful reply must be entirely v1 or entirely v2;
 * every failure must be a code the driver handles (UNAVAILABLE, which it retries, or DEADLINE_EXCEEDED).
 */
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Fault } from '../servers/faults.js';
import { startFaultWorld, storeKinds, type FaultWorld } from './fixture.js';

let w: FaultWorld;

beforeAll(async () => {
  w = await startFaultWorld();
}, 60_000);

afterAll(async () => {
  await w?.close();
  w.canaries.expectNoneIn(w.p.logs, 'provider logs');
  w.canaries.expectNoneIn(w.errors, 'gRPC error details');
});

const faults: Fault[] = [
  { kind: 'reset' },
  { kind: 'truncated' },
  { kind: 'malformed', shape: 'text' },
  { kind: 'malformed', shape: 'shape' },
  { kind: 'status', status: 503, retryAfterSeconds: 0 },
  { kind: 'latency', ms: 60 },
];

describe.each(storeKinds)('store %s', (store) => {
  it('answers entirely v1 or entirely v2 while the secret changes under faults and retries', async () => {
    const runMs = 2_500;
    const stopAt = Date.now() + runMs;
    const seen = [0, 0];
    const failures = new Map<number, number>();
    let current: 0 | 1 = 0;

    const flipper = (async () => {
      while (Date.now() < stopAt) {
        current = current === 0 ? 1 : 0;
        w.setVersion(store, current);
        await new Promise((r) => setTimeout(r, 40));
      }
    })();
    let injected = 0;
    const spoiler = (async () => {
      while (Date.now() < stopAt) {
        w.inject(store, faults[injected % faults.length]!);
        injected += 1;
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const worker = async () => {
      while (Date.now() < stopAt) {
        try {
          const reply = await w.p.client.mount(w.request(store), 10_000);
          seen[w.versionOf(store, reply)]! += 1;
        } catch (err) {
          const e = err as { code?: number; details?: string; message: string };
          if (e.code === undefined) throw err; // versionOf: mixed or foreign content
          w.errors.push(e.details ?? '');
          failures.set(e.code, (failures.get(e.code) ?? 0) + 1);
        }
      }
    };
    await Promise.all([flipper, spoiler, ...Array.from({ length: 8 }, worker)]);
    w.clearFaults();

    console.info(`${store}: v1 ${seen[0]}, v2 ${seen[1]}, failures ${JSON.stringify(Object.fromEntries(failures))}, faults injected ${injected}`);
    expect(seen[0]).toBeGreaterThan(0);
    expect(seen[1]).toBeGreaterThan(0);
    for (const code of failures.keys()) expect([status.UNAVAILABLE, status.DEADLINE_EXCEEDED]).toContain(code);
    // The provider still serves the latest version.
    expect(w.versionOf(store, await w.p.client.mount(w.request(store)))).toBe(current);
  });
});
