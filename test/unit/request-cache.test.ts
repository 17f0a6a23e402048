import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createRequestCache } from '../../src/server/request-cache.js';
import { driverRequest, type PodOptions } from '../helpers/driver-client.js';

const objects = '- {name: a, store: files, ref: a}';
const start = Date.parse('2026-01-01T00:00:00Z');

/** A pod whose one token expires `inMs` after the start of the test clock. */
const withToken = (inMs: number, pod: PodOptions = {}): PodOptions => ({
  ...pod,
  tokens: { vault: { token: `token-${inMs}`, expirationTimestamp: new Date(start + inMs).toISOString() } },
});

describe('createRequestCache', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(start);
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('reuses the parse of a request with exactly the same strings', () => {
    const parse = createRequestCache();
    const request = driverRequest(objects, withToken(3_600_000));
    const first = parse(request);
    expect(parse({ ...request })).toBe(first);
    expect(first.tokens.get('vault')?.token.reveal()).toBe('token-3600000');
    expect(parse(driverRequest(objects, withToken(3_600_000, { podName: 'app-1' })))).not.toBe(first);
  });

  it('parses again when the secrets or the permission differ, and keeps the last', () => {
    const parse = createRequestCache();
    const request = driverRequest(objects);
    const first = parse(request);
    const secrets = parse({ ...request, secrets: JSON.stringify({ user: 'u' }) });
    expect(secrets).not.toBe(first);
    expect(secrets.secrets.get('user')?.reveal()).toBe('u');
    const mode = parse({ ...request, permission: '256' });
    expect(mode.defaultMode).toBe(0o400);
    expect(parse({ ...request, permission: '256' })).toBe(mode);
    expect(parse(request)).not.toBe(first);
    expect(parse.size).toBe(1);
  });

  it('keeps no failed parse: the error is made again', () => {
    const parse = createRequestCache();
    const bad = { ...driverRequest(objects), attributes: '{"csi.storage.k8s.io/pod.namespace": 1' };
    expect(() => parse(bad)).toThrow('attributes: not valid JSON');
    expect(() => parse(bad)).toThrow('attributes: not valid JSON');
    expect(parse.size).toBe(0);
  });

  it('drops an entry when its first token expires, by a timer, so no expired token stays in memory', () => {
    const parse = createRequestCache();
    const request = driverRequest(objects, withToken(60_000));
    const first = parse(request);
    parse(driverRequest(objects, withToken(120_000, { podName: 'app-1' })));
    expect(parse.size).toBe(2);
    vi.advanceTimersByTime(60_000);
    expect(parse.size).toBe(1);
    vi.advanceTimersByTime(60_000);
    expect(parse.size).toBe(0);
    expect(parse(request)).not.toBe(first);
  });

  it('keeps nothing whose token has already expired, and nothing past maxAgeMs', () => {
    const parse = createRequestCache({ maxAgeMs: 1_000 });
    parse(driverRequest(objects, withToken(-1)));
    expect(parse.size).toBe(0);
    const request = driverRequest(objects);
    const first = parse(request);
    vi.advanceTimersByTime(999);
    expect(parse(request)).toBe(first);
    vi.advanceTimersByTime(1);
    expect(parse.size).toBe(0);
    expect(parse(request)).not.toBe(first);
  });

  it('stays within its entries and characters, dropping the least recently used first', () => {
    const parse = createRequestCache({ maxEntries: 2 });
    const requests = ['a', 'b', 'c'].map((podName) => driverRequest(objects, { podName }));
    const a = parse(requests[0]!);
    parse(requests[1]!);
    expect(parse(requests[0]!)).toBe(a);
    parse(requests[2]!);
    expect(parse.size).toBe(2);
    expect(parse(requests[0]!)).toBe(a);
    const small = createRequestCache({ maxChars: 8 * 100 });
    small(driverRequest(objects, { parameters: { role: 'x'.repeat(200) } }));
    expect(small.size).toBe(0);
  });
});
