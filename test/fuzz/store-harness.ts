/**
 * What the store fuzz tests share: the driver's Mount in process over a provider config whose
 * stores point at protocol-faithful test servers, the invariants every case keeps, and generators
 * for the class's objects, the pod and its tokens, the `role` parameter and server faults.
 *
 *   const h = await startStoreHarness({ config, dir, canaries, injectors: [azure.faults] });
 *   await h.run({ attributes, kinds: ['azure-key-vault'], fault });   // throws when an invariant breaks
 *   await h.finish({ tokens: gcp.issuedTokens });                      // closes, scans, records, prints
 *
 * Invariants per case: a volume the driver accepts, or a ProviderError with a code of the closed
 * set that is not Internal and a clean message; no unhandled rejection, no polluted prototype, and
 * no marker of `canaries` (stored values, tokens) in a message, a log line, an object version or
 * the metrics. FUZZ_SEED fixes the seed; FUZZ_SCALE multiplies the number of runs.
 */
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { Writable } from 'node:stream';
import fc from 'fast-check';
import { expect } from 'vitest';
import { parseProviderConfig } from '../../src/config/load.js';
import { errorCodes, ProviderError } from '../../src/errors.js';
import type { MountResult } from '../../src/mount/assemble.js';
import { createMountHandler } from '../../src/mount/handler.js';
import { createLogger } from '../../src/observability/log.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { createDriverMount } from '../../src/server/driver-mount.js';
import { holdStates } from '../../src/stores/holder.js';
import { createStores } from '../../src/stores/stores.js';
import { recordText } from '../helpers/capture.js';
import type { Canaries } from '../helpers/canary.js';
import { malformedBodyMarker, type Fault, type FaultInjector } from '../servers/faults.js';
import { loneSurrogate, volumeProblems } from './driver-rules.js';

const seed = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : undefined;
const scale = process.env.FUZZ_SCALE ? Number(process.env.FUZZ_SCALE) : 1;
export const runs = (n: number) => Math.max(1, Math.round(n * scale));
export const params = (numRuns: number): fc.Parameters<unknown> => ({ numRuns: runs(numRuns), ...(seed === undefined ? {} : { seed }) });

export type Outcome = { ok: true; result: MountResult } | { ok: false; error: unknown };

/** A fault of the shared vocabulary armed on one server (by its name in `injectors`) for one case. */
export interface ArmedFault {
  readonly server: string;
  readonly fault: Fault;
  readonly match: string | RegExp;
  /** 1: the guard's retry gets through; more: the failure reaches the Mount. */
  readonly times: number;
}

export interface Case {
  /** The Mount's attributes (JSON text, as the driver sends them). */
  readonly attributes: string;
  /** Backend kinds the class names, for the per-kind counts. */
  readonly kinds: readonly string[];
  readonly fault?: ArmedFault;
  /** The Mount's call is cancelled before it starts. */
  readonly cancelled?: boolean;
}

export interface StoreHarness {
  run(c: Case): Promise<Outcome>;
  /** Mounts per backend kind named, and the error codes of Mounts that named that kind alone. */
  readonly counts: { all: number; ok: number; byKind: Map<string, number>; codes: Map<string, Set<string>> };
  /** Closes the stores, then checks and records every readable text; `tokens`: more secrets to check (not registered). */
  finish(options?: { tokens?: readonly string[]; closeServers?: () => Promise<void> }): Promise<void>;
}

export async function startStoreHarness(options: {
  config: string;
  dir: string;
  canaries: Canaries;
  injectors: Readonly<Record<string, FaultInjector>>;
  name: string;
}): Promise<StoreHarness> {
  const { canaries, injectors } = options;
  const logText: string[] = [];
  const leakedLogLines: string[] = [];
  const errorMessages: string[] = [];
  const versionTexts: string[] = [];
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  const loaded = await parseProviderConfig(options.config, options.dir);
  if (!loaded.ok) throw new Error(loaded.problems.join('; '));
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      const text = chunk.toString('utf8');
      logText.push(text);
      if (canaries.all.some((s) => text.includes(s))) leakedLogLines.push(text);
      done();
    },
  });
  const logger = createLogger({ level: 'debug', destination: sink });
  const metrics = createMetrics({ defaultMetrics: false });
  const states = holdStates(await createStores(loaded.config, { logger, metrics, now: Date.now }));
  const mount = createDriverMount(createMountHandler({ states, logger, metrics, now: Date.now, fallbackVersionKey: randomBytes(32) }));
  const counts = { all: 0, ok: 0, byKind: new Map<string, number>(), codes: new Map<string, Set<string>>() };

  const fail = (why: string): never => {
    throw new Error(why);
  };

  /** The invariants every case must keep, whatever the input. */
  const check = (outcome: Outcome): void => {
    const leak = (text: string) => [...canaries.all, malformedBodyMarker].find((s) => text.includes(s));
    if (Object.keys(Object.prototype).length > 0 || ({} as Record<string, unknown>).polluted !== undefined) fail('Object.prototype was polluted');
    if (outcome.ok) {
      const { files, objectVersions } = outcome.result;
      const problems = volumeProblems(files);
      if (problems.length > 0) fail(`the driver would reject this volume: ${problems.slice(0, 3).join('; ')}`);
      if (objectVersions.length < 1) fail('no object version (the driver fails the mount)');
      for (const ov of objectVersions) {
        if (typeof ov.id !== 'string' || ov.id === '' || typeof ov.version !== 'string' || ov.version === '') fail('empty object version');
        versionTexts.push(`${ov.id} ${ov.version}`);
        if (leak(`${ov.id}\n${ov.version}`)) fail('a secret value or token is in an object version');
      }
      return;
    }
    const { error } = outcome;
    if (!(error instanceof ProviderError)) fail(`not a ProviderError: ${String(error)}`);
    const e = error as ProviderError;
    if (!(errorCodes as readonly string[]).includes(e.code)) fail(`code ${String(e.code)} is not in the closed set`);
    // Internal means "a bug, please report it": hostile input or a misbehaving store is never that.
    if (e.code === 'Internal') fail(`Internal error: ${e.message}`);
    if (typeof e.message !== 'string' || e.message.trim() === '') fail('empty error message');
    if (loneSurrogate.test(e.message)) fail(`message is not valid Unicode: ${JSON.stringify(e.message.slice(0, 200))}`);
    errorMessages.push(e.message);
    const leaked = leak(e.message);
    if (leaked) fail(`message leaks a secret (${leaked.slice(0, 16)}...): ${e.message.slice(0, 400)}`);
  };

  return {
    counts,
    async run(c) {
      counts.all += 1;
      for (const kind of new Set(c.kinds)) counts.byKind.set(kind, (counts.byKind.get(kind) ?? 0) + 1);
      for (const injector of Object.values(injectors)) injector.clear();
      if (c.fault) injectors[c.fault.server]!.inject(c.fault.fault, { match: c.fault.match, times: c.fault.times });
      const controller = new AbortController();
      if (c.cancelled) controller.abort();
      let outcome: Outcome;
      try {
        outcome = { ok: true, result: await mount({ attributes: c.attributes, secrets: 'null', permission: '420', targetPath: '/mnt' }, controller.signal) };
      } catch (error) {
        outcome = { ok: false, error };
      }
      // A rejection nobody handles is reported after the microtasks: give it a turn, then blame this
      // case. Work a cancelled Mount leaves behind may still be talking to a server: give it longer.
      await new Promise((resolve) => (c.cancelled ? setTimeout(resolve, 30) : setImmediate(resolve)));
      if (unhandled.length > 0) fail(`unhandled rejection: ${String(unhandled.splice(0)[0])}`);
      check(outcome);
      if (leakedLogLines.length > 0) fail(`a log line holds a secret: ${leakedLogLines.splice(0)[0]!.slice(0, 400)}`);
      if (outcome.ok) counts.ok += 1;
      else if (new Set(c.kinds).size === 1) {
        const codes = counts.codes.get(c.kinds[0]!) ?? new Set<string>();
        codes.add((outcome.error as ProviderError).code);
        counts.codes.set(c.kinds[0]!, codes);
      }
      return outcome;
    },
    async finish({ tokens = [], closeServers } = {}) {
      const exposition = await metrics.registry.metrics();
      await states.close();
      await closeServers?.();
      await new Promise((resolve) => setImmediate(resolve));
      process.off('unhandledRejection', onUnhandled);
      await rm(options.dir, { recursive: true, force: true });
      const readable = { 'provider logs': logText, 'Mount error messages': errorMessages, 'object ids and versions': versionTexts, metrics: [exposition] };
      for (const [where, texts] of Object.entries(readable)) {
        canaries.expectNoneIn(texts, where);
        const all = texts.join('\n');
        expect(tokens.filter((t) => all.includes(t)), `access tokens in ${where}`).toEqual([]);
      }
      recordText(`${options.name}: provider logs`, logText.join(''));
      recordText(`${options.name}: error messages`, [...new Set(errorMessages)].join('\n'));
      recordText(`${options.name}: object versions`, [...new Set(versionTexts)].join('\n'));
      recordText(`${options.name}: metrics`, exposition);
      // Work a Mount left behind must not fail unobserved either, even once the stores are closed.
      expect(unhandled.map(String), 'unhandled rejections after the last case').toEqual([]);
      const perKind = [...counts.byKind].map(([kind, n]) => `${n} with ${kind} objects`).join(', ');
      console.log(`${options.name}: ${counts.all} Mount cases (${perKind}; ${counts.ok} succeeded)`);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Store-side values.

/** Bytes that are not UTF-8 (a lone continuation byte, an overlong form, 0xff, NUL, ESC) around a marker. */
export const binaryOf = (marker: string): Buffer => Buffer.concat([Buffer.from([0x80, 0xc0, 0xaf, 0xff, 0x00, 0x1b]), Buffer.from(marker), randomBytes(32)]);

/** A PEM block whose body is a marker (in base64: register that form too). */
export const pemText = (marker: string): string => `-----BEGIN PRIVATE KEY-----\n${Buffer.from(marker).toString('base64')}\n-----END PRIVATE KEY-----\n`;

// ---------------------------------------------------------------------------------------------
// Generators.

export const anyText = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.string({ unit: fc.constantFrom('.', '/', '\\', '\0', '%', '*', '{', '}', '?', '#', '&', '=', ':', '\ud800', '\udc00', 'a', '-', ' ', '\n'), maxLength: 16 }),
);
export const jsonish = fc.oneof(fc.jsonValue({ maxDepth: 2 }), anyText);
/** Usually one of its kind; sometimes something else entirely. */
export const mostly = <T, U>(usual: fc.Arbitrary<T>, rare: fc.Arbitrary<U>, weight = 6) => fc.oneof({ weight, arbitrary: usual }, { weight: 1, arbitrary: rare });
/** `arb` one time in `oneIn`, else undefined. */
export const maybe = <T>(arb: fc.Arbitrary<T>, oneIn = 2): fc.Arbitrary<T | undefined> =>
  fc.oneof({ weight: oneIn - 1, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: arb });

/** An object of `objects` as [field, value] pairs, so that `__proto__` and duplicate fields survive. */
export type Pairs = Array<[string, unknown]>;

const fileName = mostly(
  fc.constantFrom('a', 'b', 'c/d', 'e.txt'),
  fc.constantFrom('..', '../x', '/abs', 'a//b', '', '\ud800', 'x'.repeat(256), 'a/..', '__proto__'),
  12,
);
const transform = mostly(
  fc.constant<Pairs>([]),
  fc.constantFrom<Pairs>(
    [['key', 'password']],
    [['key', '__proto__']],
    [['key', 'nope']],
    [['select', 'deep.list[1]']],
    [['select', 'constructor.prototype']],
    [['select', '[']],
    [['expand', 'keys']],
    [['decode', 'base64']],
    [['decode', 'hex']],
    [['optional', true]],
    [['mount', false]],
    [['mode', '0400']],
  ),
  2,
);
const extraField = fc.tuple(fc.constantFrom('kind', 'format', 'serviceAccount', 'foo', '__proto__', 'constructor', 'role', 'version', 'recursive'), jsonish);

/**
 * One object of a store. Four in five are plausible (known refs, fields that fit them: they reach
 * the store); the rest are hostile in every field at once.
 */
export function objectEntry(stores: fc.Arbitrary<string>, plausible: fc.Arbitrary<Pairs>, hostile: fc.Arbitrary<Pairs>): fc.Arbitrary<Pairs> {
  const entry = (name: fc.Arbitrary<unknown>, own: fc.Arbitrary<Pairs>, t: fc.Arbitrary<Pairs>, extra: fc.Arbitrary<[string, unknown] | undefined>) =>
    fc
      .record({ name, store: stores, own, t, extra })
      .map(({ name: n, store, own: fields, t: more, extra: e }) => [['name', n], ['store', store], ...fields, ...more, ...(e ? [e] : [])] as Pairs);
  return fc.oneof(
    { weight: 4, arbitrary: entry(fc.constantFrom('a', 'b', 'c/d', 'e.txt'), plausible, maybe(transform, 6).map((t) => t ?? []), fc.constant(undefined)) },
    { weight: 1, arbitrary: entry(mostly(fileName, jsonish, 10), hostile, transform, maybe(extraField, 3)) },
  );
}

/** The store an entry names (its second pair). */
export const storeOf = (entry: Pairs): string => String(entry[1]![1]);

/** The `objects` parameter as YAML flow mappings, one per line. */
export function objectsYaml(entries: readonly Pairs[]): string {
  // Object names made unique unless the name is hostile on purpose, so most cases reach the store.
  return entries
    .map((pairs, i) => {
      const fields = pairs.map(([k, val]) => (k === 'name' && typeof val === 'string' && /^[a-e]/.test(val) ? [k, `o${i}/${val}`] : [k, val]));
      return `- {${fields.map(([k, val]) => `${JSON.stringify(k)}: ${JSON.stringify(val === undefined ? null : val)}`).join(', ')}}`;
    })
    .join('\n');
}

export interface FuzzPod {
  /** Index into the test's list of known pods (whose tokens it issued); 0 for a made-up pod. */
  readonly index: number;
  readonly namespace: string;
  readonly serviceAccount: string;
}

/** Mostly one of `pods`; sometimes a service account no store knows (new cache keys, foreign tokens). */
export function podOf(pods: ReadonlyArray<{ namespace: string; serviceAccount: string }>): fc.Arbitrary<FuzzPod> {
  return fc.oneof(
    { weight: 8, arbitrary: fc.nat({ max: pods.length - 1 }).map((i) => ({ index: i, ...pods[i]! })) },
    { weight: 1, arbitrary: fc.stringMatching(/^[a-z][a-z0-9-]{0,10}[a-z0-9]$/).map((sa) => ({ index: 0, namespace: pods[0]!.namespace, serviceAccount: sa })) },
  );
}

/** Tokens a test issues once per known pod: its own, an expired one, another pod's, one for another audience. */
export type TokenKind = 'valid' | 'expiredJwt' | 'otherPod' | 'wrongAudience';
export type IssuedTokens = Record<TokenKind, string>;
export type TokenChoice = TokenKind | 'expiredAttribute' | 'badTimestamp' | 'garbage' | 'empty' | 'missing' | 'nonString' | 'huge';
export const tokenChoice = fc.oneof(
  { weight: 20, arbitrary: fc.constant<TokenChoice>('valid') },
  { weight: 4, arbitrary: fc.constantFrom<TokenChoice>('expiredJwt', 'otherPod', 'wrongAudience', 'expiredAttribute', 'badTimestamp', 'garbage', 'empty', 'missing', 'nonString', 'huge') },
);

/** The driver's tokens entry for one audience, as JSON text (undefined: no entry). `garbage` is a registered marker. */
export function tokenEntry(issued: IssuedTokens, choice: TokenChoice, garbage: string): string | undefined {
  const entry = (token: unknown, expirationTimestamp = '2099-01-01T00:00:00Z') => JSON.stringify({ token, expirationTimestamp });
  switch (choice) {
    case 'missing':
      return undefined;
    case 'expiredAttribute':
      return entry(issued.valid, '2001-01-01T00:00:00Z');
    case 'badTimestamp':
      return entry(issued.valid, 'not a date');
    case 'garbage':
      return entry(garbage);
    case 'empty':
      return entry('');
    case 'nonString':
      return JSON.stringify({ token: 5 });
    case 'huge':
      return entry(`${issued.valid}.${'A'.repeat(70_000)}`);
    default:
      return entry(issued[choice]);
  }
}

/** The class's `role` parameter: absent mostly, else a known one, a near miss or noise. */
export function roleOf(known: readonly string[], prefix: string): fc.Arbitrary<string | undefined> {
  return maybe(
    mostly(
      fc.constantFrom('', ...known),
      fc.oneof(
        fc.constantFrom(`${prefix}\u0000`, `${prefix}\ud800`, `${prefix}${'x'.repeat(5000)}`, `${prefix}a&client_id=evil`, `${prefix}a%26scope%3Dx`, `${prefix}../../x`, `${prefix}a b`, ` ${prefix}`, '*'),
        anyText.map((t) => `${prefix}${t}`),
        anyText,
      ),
      3,
    ),
    3,
  );
}

const faultKinds = fc.constantFrom<Fault>(
  { kind: 'status', status: 500 },
  { kind: 'status', status: 503 },
  { kind: 'status', status: 429 },
  { kind: 'status', status: 400 },
  { kind: 'status', status: 401 },
  { kind: 'status', status: 403 },
  { kind: 'status', status: 404 },
  { kind: 'reset' },
  { kind: 'truncated' },
  { kind: 'malformed' },
  { kind: 'malformed', shape: 'shape' },
  { kind: 'oversized', bytes: 2 * 1024 * 1024 },
  { kind: 'latency', ms: 5 },
);

/** One case in six arms a fault on the server named `server` for requests matching one of `matches`. */
export function faultOn(server: string, matches: ReadonlyArray<string | RegExp>): fc.Arbitrary<ArmedFault | undefined> {
  return maybe(fc.record({ server: fc.constant(server), match: fc.constantFrom(...matches), times: fc.constantFrom(1, 3), fault: faultKinds }), 6);
}

/**
 * Statuses no store of ours documents for a read, which a proxy, a gateway or the server's own
 * limits may still send: a redirect, a conflict, a body or headers too large (431 is what a Go or
 * Node server answers to a huge bearer token). Armed for every attempt of the case.
 */
export function unusualStatusOn(server: string, matches: ReadonlyArray<string | RegExp>): fc.Arbitrary<ArmedFault> {
  return fc.record({
    server: fc.constant(server),
    match: fc.constantFrom(...matches),
    times: fc.constant(3),
    fault: fc.constantFrom<Fault>({ kind: 'status', status: 302 }, { kind: 'status', status: 409 }, { kind: 'status', status: 413 }, { kind: 'status', status: 431 }),
  });
}

/** Mount attributes: the class's objects and role, the pod, and the driver's tokens by audience. */
export function attributesOf(objects: string, pod: FuzzPod, tokens: Record<string, string | undefined>, role?: string): string {
  const tokenPairs = Object.entries(tokens).filter(([, e]) => e !== undefined);
  const members: Array<[string, string]> = [
    ['objects', JSON.stringify(objects)],
    ['secretProviderClass', JSON.stringify('fuzz')],
    ['csi.storage.k8s.io/pod.name', JSON.stringify('app-0')],
    ['csi.storage.k8s.io/pod.namespace', JSON.stringify(pod.namespace)],
    ['csi.storage.k8s.io/pod.uid', JSON.stringify('6f1c8a52-0000-4000-8000-000000000001')],
    ['csi.storage.k8s.io/serviceAccount.name', JSON.stringify(pod.serviceAccount)],
    ['csi.storage.k8s.io/ephemeral', JSON.stringify('true')],
    ['csi.storage.k8s.io/serviceAccount.tokens', JSON.stringify(`{${tokenPairs.map(([aud, e]) => `${JSON.stringify(aud)}:${e}`).join(',')}}`)],
  ];
  if (role !== undefined) members.push(['role', JSON.stringify(role)]);
  return `{${members.map(([k, val]) => `${JSON.stringify(k)}:${val}`).join(',')}}`;
}
