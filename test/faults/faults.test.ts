/**
 * Every fault class of the shared vocabulary (test/servers/faults.ts), against every remote store
 * kind, through the real Mount socket. For each: the Mount succeeds or fails as specified, with the
 * right gRPC code and a message naming the object and the store, the provider keeps serving (a good
 * Mount right after), no unhandled rejection happens, and secret material never reaches a message.
 */
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Fault } from '../servers/faults.js';
import { malformedBodyMarker } from '../servers/faults.js';
import { startFaultWorld, storeKinds, type FaultWorld, type StoreKind } from './fixture.js';

let w: FaultWorld;
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);

beforeAll(async () => {
  process.on('unhandledRejection', onUnhandled);
  w = await startFaultWorld();
}, 60_000);

afterAll(async () => {
  process.off('unhandledRejection', onUnhandled);
  await w?.close();
  w.canaries.expectNoneIn(w.p.logs, 'provider logs');
  w.canaries.expectNoneIn(w.errors, 'gRPC error details');
  expect(w.errors.filter((e) => e.includes(malformedBodyMarker)), 'a store body quoted in an error').toEqual([]);
  expect(unhandled).toEqual([]);
});

beforeEach(() => w.clearFaults());

const refs: Record<StoreKind, string> = { kube: 'multi', vault: 'secret/data/shop/multi', sm: 'shop/multi', ssm: '/shop/multi' };

/** What the user sees must say which object of which store failed. */
function expectNamed(store: StoreKind, details: string): void {
  expect(details).toContain(`objects[0] "s" (store ${store}, ref ${refs[store]})`);
}

async function mountError(store: StoreKind, deadlineMs = 20_000) {
  const err = await w.p.client.mountError(w.request(store), deadlineMs);
  w.errors.push(err.details);
  return err;
}

async function expectServing(store: StoreKind): Promise<void> {
  w.clearFaults();
  const reply = await w.p.client.mount(w.request(store));
  expect(w.versionOf(store, reply)).toBe(0);
}

interface FailureCase {
  readonly name: string;
  readonly fault: Fault;
  readonly code: status;
  /** Part of the cause, per store. */
  readonly cause: Record<StoreKind, RegExp>;
}

/** Persistent faults (every attempt, including the SDK's and the guard's retries, meets them). */
const failures: FailureCase[] = [
  {
    name: '5xx',
    fault: { kind: 'status', status: 503 },
    code: status.UNAVAILABLE,
    cause: { kube: /answered 503/, vault: /HTTP 503.*Vault is sealed/, sm: /InternalServiceError \(HTTP 503\)/, ssm: /InternalServerError \(HTTP 503\)/ },
  },
  {
    name: 'a connection reset mid-body',
    fault: { kind: 'reset' },
    code: status.UNAVAILABLE,
    cause: {
      kube: /cannot reach the API server|malformed answer/,
      vault: /cannot reach Vault/,
      sm: /cannot reach AWS Secrets Manager|malformed answer/,
      ssm: /cannot reach AWS Systems Manager Parameter Store|malformed answer/,
    },
  },
  {
    name: 'a truncated JSON body',
    fault: { kind: 'truncated' },
    code: status.UNAVAILABLE,
    cause: { kube: /malformed answer/, vault: /not a JSON object/, sm: /malformed answer/, ssm: /malformed answer/ },
  },
  {
    name: 'a 200 that is not JSON',
    fault: { kind: 'malformed', shape: 'text' },
    code: status.UNAVAILABLE,
    cause: { kube: /malformed answer/, vault: /not a JSON object/, sm: /malformed answer/, ssm: /malformed answer/ },
  },
  {
    name: 'a 200 with JSON of the wrong shape',
    fault: { kind: 'malformed', shape: 'shape' },
    code: status.UNAVAILABLE,
    cause: {
      kube: /malformed answer/,
      // A JSON object (Vault's envelope) whose data is a list: not NotFound, not "not a JSON object".
      vault: /answered "secret\/data\/shop\/multi" with an unexpected response shape \("data" is a list, not an object\)/,
      sm: /malformed answer reading secret "shop\/multi" \(its SecretString is a number, not a string\)/,
      ssm: /malformed answer reading parameter "\/shop\/multi" \(its Value is a number, not a string\)/,
    },
  },
];

describe.each(storeKinds)('store %s', (store) => {
  it('serves the secret without faults', async () => {
    await expectServing(store);
  });

  it('added latency below the store timeout only slows the Mount', async () => {
    w.inject(store, { kind: 'latency', ms: 400 });
    const started = Date.now();
    const reply = await w.p.client.mount(w.request(store));
    expect(w.versionOf(store, reply)).toBe(0);
    expect(Date.now() - started).toBeGreaterThanOrEqual(380);
  });

  it('a 429 with Retry-After is waited out and retried', async () => {
    w.inject(store, { kind: 'status', status: 429, retryAfterSeconds: 1 });
    const started = Date.now();
    const reply = await w.p.client.mount(w.request(store));
    expect(w.versionOf(store, reply)).toBe(0);
    // The SDK's own throttling backoff is shorter than Retry-After; the others honour it.
    if (store !== 'sm' && store !== 'ssm') expect(Date.now() - started).toBeGreaterThanOrEqual(950);
  });

  it.each(['reset', 'truncated', 'malformed'] as const)('a single %s answer is retried and the Mount succeeds', async (kind) => {
    w.inject(store, { kind } as Fault);
    const reply = await w.p.client.mount(w.request(store));
    expect(w.versionOf(store, reply)).toBe(0);
  });

  it.each(failures)('fails clearly on $name', async ({ fault, code, cause }) => {
    w.inject(store, fault, { times: 1000 });
    const err = await mountError(store);
    expect({ code: err.code, details: err.details }).toMatchObject({ code, details: expect.stringMatching(cause[store]) });
    expectNamed(store, err.details);
    await expectServing(store);
  });

  it('a store that accepts and never answers ends in DEADLINE_EXCEEDED within the store timeout and retries', async () => {
    w.inject(store, { kind: 'hang' }, { times: 1000 });
    const started = Date.now();
    const err = await mountError(store, 30_000);
    const elapsed = Date.now() - started;
    expect(err.code).toBe(status.DEADLINE_EXCEEDED);
    expectNamed(store, err.details);
    // 3 attempts of 1 s plus short backoffs; far below the call's 30 s deadline.
    expect(elapsed).toBeLessThan(8_000);
    await expectServing(store);
  });

  it('a hang is cut at the Mount deadline when that comes first', async () => {
    w.inject(store, { kind: 'hang' }, { times: 1000 });
    const started = Date.now();
    const err = await mountError(store, 1_000);
    expect(err.code).toBe(status.DEADLINE_EXCEEDED);
    expect(Date.now() - started).toBeLessThan(2_500);
    await expectServing(store);
  });

  it('refuses a 64 MiB answer without buffering it', async () => {
    w.inject(store, { kind: 'oversized', bytes: 64 * 1024 * 1024 }, { times: 1000 });
    global.gc?.();
    const baseline = process.memoryUsage().rss;
    let peak = baseline;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 10);
    const started = Date.now();
    const err = await mountError(store);
    clearInterval(sampler);
    peak = Math.max(peak, process.memoryUsage().rss);
    expect(err.code).toBe(status.UNAVAILABLE);
    expect(err.details).toMatch(/exceeded|more than \d+ bytes/);
    expectNamed(store, err.details);
    console.info(`oversized answer from ${store}: RSS grew ${((peak - baseline) / 2 ** 20).toFixed(1)} MiB`);
    // Buffering even one 64 MiB answer (bytes, then a string) would add well over 100 MiB.
    expect((peak - baseline) / 2 ** 20, `RSS growth in MiB during the oversized answers of ${store}`).toBeLessThan(48);
    expect(Date.now() - started).toBeLessThan(10_000);
    await expectServing(store);
  });
});
