/**
 * Property-based tests of the whole Mount path from raw request strings, in process (the driver's
 * Mount the gRPC server runs, without a socket per case), against a real file store in a temp directory.
 *
 * Every case must end in either a volume the driver accepts or a ProviderError with a code from
 * the closed set and a clean message; never a crash, an unhandled rejection, a leaked secret or a
 * polluted prototype. FUZZ_SEED fixes the seed; FUZZ_SCALE multiplies the number of runs.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseProviderConfig } from '../../src/config/load.js';
import { createStores } from '../../src/stores/stores.js';
import { holdStates, type StateHolder } from '../../src/stores/holder.js';
import { errorCodes, ProviderError } from '../../src/errors.js';
import type { MountResult } from '../../src/mount/assemble.js';
import { createMountHandler } from '../../src/mount/handler.js';
import { createDriverMount, type DriverMount } from '../../src/server/driver-mount.js';
import type { MountRequestMessage } from '../../src/server/request.js';
import { createLogger } from '../../src/observability/log.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { loneSurrogate, volumeProblems } from './driver-rules.js';

const seed = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : undefined;
const scale = process.env.FUZZ_SCALE ? Number(process.env.FUZZ_SCALE) : 1;
const runs = (n: number) => Math.max(1, Math.round(n * scale));
const params = (numRuns: number): fc.Parameters<unknown> => ({ numRuns: runs(numRuns), ...(seed === undefined ? {} : { seed }) });

// ---------------------------------------------------------------------------------------------
// Secrets: every value a store or a request holds is a unique marker that must never surface in
// an error message, a log line or an object version.

const secretValues: string[] = [];
function canary(label: string): string {
  const value = `CANARY-${label}-${randomBytes(9).toString('hex')}`;
  secretValues.push(value);
  return value;
}
const c = {
  user: canary('user'),
  pass: canary('pass'),
  api: canary('api'),
  item: canary('item'),
  proto: canary('proto'),
  ctor: canary('ctor'),
  slash: canary('slash'),
  dots: canary('dots'),
  empty: canary('empty'),
  long: canary('long'),
  plain: canary('plain'),
  b64: canary('b64'),
  hex: canary('hex'),
  team: canary('team'),
  outside: canary('outside'),
  list: canary('list'),
  flatA: canary('flat-a'),
  flatB: canary('flat-b'),
  nodeSecret: canary('node-publish'),
  token: canary('token'),
};
// Encoded forms are secret too: a message quoting the base64 text leaks the value.
secretValues.push(Buffer.from(c.b64).toString('base64'), Buffer.from(c.hex).toString('hex'));

const dbJson =
  `{"username":${JSON.stringify(c.user)},"password":${JSON.stringify(c.pass)},"deep":{"api":{"key":${JSON.stringify(c.api)}}},` +
  `"list":[1,${JSON.stringify(c.item)}],"__proto__":{"polluted":${JSON.stringify(c.proto)}},` +
  `"constructor":{"prototype":{"polluted":${JSON.stringify(c.ctor)}}},"a/b":${JSON.stringify(c.slash)},` +
  `"..":${JSON.stringify(c.dots)},"":${JSON.stringify(c.empty)},"${'k'.repeat(300)}":${JSON.stringify(c.long)},"n":42,"t":true,"z":null}`;

const storeFiles: Record<string, string | Buffer> = {
  'secrets/shop/db.json': dbJson,
  'secrets/shop/flat.json': JSON.stringify({ a: c.flatA, 'b.txt': c.flatB }),
  'secrets/shop/password': c.plain,
  'secrets/shop/b64': Buffer.from(c.b64).toString('base64'),
  'secrets/shop/hex': Buffer.from(c.hex).toString('hex'),
  'secrets/shop/binary.bin': Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
  'secrets/shop/list.json': JSON.stringify([c.list, { x: c.list }]),
  'secrets/shop/null.json': 'null',
  'secrets/shop/deep.json': `${'{"a":'.repeat(50_000)}1${'}'.repeat(50_000)}`,
  'secrets/shop/%2e%2e': 'percent-dots',
  'secrets/team-a/x': c.team,
  'secrets/web/x': 'web-x',
  'outside/secret': c.outside,
  'big/a': Buffer.alloc(1536 * 1024, 'a'),
};

const config = `
defaultStore: files
versionKey: fuzz-version-key-0123456789
stores:
  - name: files
    backend: file
    root: secrets
    cache: {ttl: 0}
  - name: cached
    backend: file
    root: secrets
  - name: guarded
    backend: file
    root: secrets
    cache: {ttl: 0}
    access:
      - allow: {namespaces: ["shop", "team-*"], refs: ["{namespace}/**"]}
      - deny: {serviceAccounts: ["intruder"]}
  - name: big
    backend: file
    root: big
    maxBytes: 4194304
`;

// ---------------------------------------------------------------------------------------------
// The driver's Mount under test (request parsing, then the pipeline), wired as the server does.

let dir: string;
let states: StateHolder;
let mount: DriverMount;
const leakedLogLines: string[] = [];
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);
let cases = 0;

beforeAll(async () => {
  process.on('unhandledRejection', onUnhandled);
  dir = await mkdtemp(join(tmpdir(), 'usp-fuzz-'));
  for (const [path, contents] of Object.entries(storeFiles)) {
    await mkdir(join(dir, path, '..'), { recursive: true });
    await writeFile(join(dir, path), contents);
  }
  await symlink(join(dir, 'outside/secret'), join(dir, 'secrets/shop/escape'));
  await mkdir(join(dir, 'secrets/shop/dir'));
  const loaded = await parseProviderConfig(config, dir);
  if (!loaded.ok) throw new Error(loaded.problems.join('; '));
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      const text = chunk.toString('utf8');
      if (secretValues.some((s) => text.includes(s))) leakedLogLines.push(text);
      done();
    },
  });
  const logger = createLogger({ level: 'debug', destination: sink });
  const metrics = createMetrics({ defaultMetrics: false });
  states = holdStates(await createStores(loaded.config, { logger, metrics, now: Date.now }));
  mount = createDriverMount(createMountHandler({ states, logger, metrics, now: Date.now, fallbackVersionKey: randomBytes(32) }));
});

afterAll(async () => {
  process.off('unhandledRejection', onUnhandled);
  await states.close();
  await rm(dir, { recursive: true, force: true });
  console.log(`mount fuzz: ${cases} Mount cases`);
});

type Outcome = { ok: true; result: MountResult } | { ok: false; error: unknown };

async function run(request: MountRequestMessage, abort = false): Promise<Outcome> {
  cases += 1;
  const controller = new AbortController();
  if (abort) controller.abort();
  try {
    return { ok: true, result: await mount(request, controller.signal) };
  } catch (error) {
    return { ok: false, error };
  }
}

const fail = (why: string): never => {
  throw new Error(why);
};

/** The invariants every case must keep, whatever the input. */
function check(outcome: Outcome): void {
  const leak = (text: string) => secretValues.find((s) => text.includes(s));
  if (Object.keys(Object.prototype).length > 0 || ({} as Record<string, unknown>).polluted !== undefined) {
    fail('Object.prototype was polluted');
  }
  if (outcome.ok) {
    const { files, objectVersions } = outcome.result;
    const problems = volumeProblems(files);
    if (problems.length > 0) fail(`the driver would reject this volume: ${problems.slice(0, 3).join('; ')}`);
    if (objectVersions.length < 1) fail('no object version (the driver fails the mount)');
    for (const v of objectVersions) {
      if (typeof v.id !== 'string' || v.id === '' || typeof v.version !== 'string' || v.version === '') fail('empty object version');
      if (leak(`${v.id}\n${v.version}`)) fail('a secret value is in an object version');
    }
    return;
  }
  const { error } = outcome;
  if (!(error instanceof ProviderError)) fail(`not a ProviderError: ${String(error)}`);
  const e = error as ProviderError;
  if (!(errorCodes as readonly string[]).includes(e.code)) fail(`code ${String(e.code)} is not in the closed set`);
  // Internal means "a bug, please report it": hostile input is the caller's fault, never ours.
  if (e.code === 'Internal') fail(`Internal error on input: ${e.message}`);
  if (typeof e.message !== 'string' || e.message.trim() === '') fail('empty error message');
  // The message becomes a gRPC status trailer (grpc-js percent-encodes it with encodeURI).
  if (loneSurrogate.test(e.message)) fail(`message is not valid Unicode: ${JSON.stringify(e.message.slice(0, 200))}`);
  const leaked = leak(e.message);
  if (leaked) fail(`message leaks a secret value (${leaked.slice(0, 14)}...): ${e.message.slice(0, 300)}`);
}

function afterEachCase(): void {
  if (unhandled.length > 0) fail(`unhandled rejection: ${String(unhandled[0])}`);
  if (leakedLogLines.length > 0) fail(`a log line holds a secret value: ${leakedLogLines[0]!.slice(0, 300)}`);
}

/** A Mount by shop/default of a class with these parameters, checked like every case. */
async function mountAsShop(parameters: Record<string, string>): Promise<Outcome> {
  const attributes = JSON.stringify({
    ...parameters,
    'csi.storage.k8s.io/pod.namespace': 'shop',
    'csi.storage.k8s.io/serviceAccount.name': 'default',
  });
  const outcome = await run({ attributes, secrets: 'null', permission: '420', targetPath: '/mnt' });
  check(outcome);
  afterEachCase();
  return outcome;
}

// ---------------------------------------------------------------------------------------------
// Generators.

const anyText = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.string({ unit: fc.constantFrom('.', '/', '\\', '\0', '%', '*', '{', '}', '$', '\ud800', '\udc00', 'a', ' '), maxLength: 12 }),
);

const safeElement = fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,12}$/);
const hostileElement = fc.constantFrom(
  '..', '.', '', '...', '..data', '..x', '.a', '%2e%2e', '%2E%2E', '\u2024\u2024', '\uff0e\uff0e', '\u2025', 'a\0b', 'a\\..\\b',
  '\ud800', '\udc00', '\ud83d\ude00', 'x'.repeat(255), 'x'.repeat(256), '\u20ac'.repeat(85), '\u20ac'.repeat(86), '\ud835\udcb3'.repeat(64),
  '__proto__', 'constructor', 'prototype', ' ', 'a b', '\n', 'CON', '~', '$HOME',
);
const element = fc.oneof({ weight: 4, arbitrary: safeElement }, { weight: 3, arbitrary: hostileElement }, { weight: 1, arbitrary: anyText });
const composedName = fc.array(element, { minLength: 1, maxLength: 4 }).map((parts) => parts.join('/'));
const knownBadName = fc.constantFrom(
  '..', '../x', 'a/../b', './a', 'a/./b', '//', 'a//b', 'a/', '/a', 'a\\..\\b', '%2e%2e/x', '\u2024\u2024/x', '\uff0e\uff0e/x',
  'a\0b', 'x'.repeat(4097), `a/${'y'.repeat(256)}`, '..data', '..x/y', '.', 'a/..', `${'d/'.repeat(2048)}e`, '\u20ac'.repeat(1400),
);
const objectName = fc.oneof({ weight: 5, arbitrary: safeElement }, { weight: 4, arbitrary: composedName }, { weight: 2, arbitrary: knownBadName }, { weight: 1, arbitrary: anyText });

const ref = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('shop/deep.json', 'shop/db.json', 'shop/flat.json', 'shop/password', 'shop/b64', 'shop/hex', 'shop/binary.bin', 'shop/list.json', 'shop/null.json', 'team-a/x', 'web/x') },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      '../outside/secret', 'shop/../../outside/secret', 'shop/../shop/password', '/etc/passwd', 'shop/escape', 'shop/dir', 'shop/missing',
      'shop\\..\\..\\outside\\secret', 'shop/%2e%2e', '%2e%2e/outside/secret', 'shop/\u2024\u2024/x', 'shop/password\0', '.', './shop/password',
      'shop//password', 'shop/password/', 'a', 'shop', '', '..', '__proto__', 'constructor', 'a',
    ),
  },
  { weight: 1, arbitrary: fc.constant('a') },
  { weight: 1, arbitrary: anyText },
);
const key = fc.oneof(
  fc.constantFrom('username', 'password', 'deep', 'list', 'n', 't', 'z', 'a', 'b.txt', '__proto__', 'constructor', 'toString', 'hasOwnProperty', 'a/b', '..', '', 'nope'),
  anyText,
);
const select = fc.oneof(
  fc.constantFrom(
    'deep.api.key', 'list', 'list[1]', 'username', '`1`', '@', '*', 'deep.*', 'length(list)', '[', 'foo..bar', '__proto__', 'constructor',
    'constructor.prototype', '"__proto__".polluted', 'keys(@)', 'values(@)', "to_number('x')", 'list[?@ > `0`]', '&@', 'deep | keys(@)', 'z',
    'n', 't', '`"x"`', "'lit'", 'abs(`-1`)', 'sum(list)', 'sort(list)', 'join(`,`, list)', '[*]', '{a: username}', 'a.b.c.d.e.f',
  ),
  anyText,
);
const mode = fc.oneof(
  fc.integer({ min: -10, max: 5000 }),
  fc.constantFrom('0400', '0644', '0o600', '777', '0777', '1000', '0x1ff', '', ' 0400 ', 'rw', '0888', '-1', '1e2', '0.5', '0o0777'),
  fc.double(),
  anyText,
);
const storeName = fc.constantFrom('files', 'cached', 'guarded', 'big', 'nope', '', 'FILES', '__proto__', '\ud800', 'constructor');
const jsonish = fc.oneof(fc.jsonValue({ maxDepth: 2 }), anyText);

/** One entry of `objects` as [field, value] pairs, so that `__proto__` and duplicate keys survive. */
const objectEntry = fc
  .record(
    {
      name: fc.oneof({ weight: 10, arbitrary: objectName }, { weight: 1, arbitrary: jsonish }),
      store: storeName,
      ref: fc.oneof({ weight: 10, arbitrary: ref }, { weight: 1, arbitrary: jsonish }),
      key,
      select,
      decode: fc.constantFrom<unknown>('base64', 'hex', 'utf8', 1, null, 'BASE64'),
      mode,
      optional: fc.constantFrom<unknown>(true, false, 'yes', 1, null),
      expand: fc.constantFrom<unknown>('keys', 'values', true, null),
      mount: fc.constantFrom<unknown>(true, false, 'false'),
      version: fc.oneof(fc.constantFrom<unknown>('1', 2, -1, 1.5, '', null), anyText),
      extra: fc.array(fc.tuple(fc.constantFrom('kind', 'foo', '__proto__', 'constructor', 'args', 'method', 'prototype', 'name', 'ref', 'toString'), jsonish), { maxLength: 2 }),
    },
    { requiredKeys: [] },
  )
  .map((r) => {
    const { extra, ...fields } = r;
    // Most entries keep name and ref so they get past the schema and reach the store.
    const pairs: Array<[string, unknown]> = Object.entries(fields);
    return [...pairs, ...(extra ?? [])];
  });
const wellFormedEntry = fc
  .record({ name: objectName, ref, store: fc.constantFrom('files', 'cached', 'guarded', 'files') }, { requiredKeys: ['name', 'ref'] })
  .chain((base) =>
    objectEntry
      .chain((more) => fc.subarray(more.filter(([k]) => !(k in base))))
      .map((keep) => [...Object.entries(base), ...keep] as Array<[string, unknown]>),
  );

/** Entries that mostly succeed, so that transforms, expand, modes and the volume guard see real data. */
const plausibleEntry = fc
  .record(
    {
      name: fc.oneof({ weight: 3, arbitrary: fc.array(safeElement, { minLength: 1, maxLength: 3 }).map((p) => p.join('/')) }, { weight: 1, arbitrary: composedName }),
      store: fc.constantFrom('files', 'cached', 'guarded'),
      how: fc.constantFrom(
        { ref: 'shop/password' },
        { ref: 'shop/binary.bin' },
        { ref: 'shop/db.json' },
        { ref: 'shop/db.json', key: 'password' },
        { ref: 'shop/db.json', key: 'deep' },
        { ref: 'shop/db.json', key: '__proto__' },
        { ref: 'shop/db.json', key: 'constructor' },
        { ref: 'shop/db.json', key: 'toString' },
        { ref: 'shop/db.json', select: 'deep.api.key' },
        { ref: 'shop/db.json', select: 'list' },
        { ref: 'shop/db.json', select: '"__proto__"' },
        { ref: 'shop/db.json', select: 'constructor.prototype' },
        { ref: 'shop/db.json', expand: 'keys' },
        { ref: 'shop/flat.json', expand: 'keys' },
        { ref: 'shop/flat.json', expand: 'keys', decode: 'hex' },
        { ref: 'shop/flat.json', select: 'constructor' },
        { ref: 'shop/flat.json', select: '__proto__.toString' },
        { ref: 'shop/flat.json', key: 'constructor' },
        { ref: 'shop/deep.json', select: '@' },
        { ref: 'shop/deep.json', key: 'a' },
        { ref: 'shop/list.json', select: '[0]' },
        { ref: 'shop/list.json', expand: 'keys' },
        { ref: 'shop/null.json', select: '@' },
        { ref: 'shop/b64', decode: 'base64' },
        { ref: 'shop/hex', decode: 'hex' },
        { ref: 'shop/hex', decode: 'base64' },
        { ref: 'shop/password', decode: 'hex' },
        { ref: 'shop/missing', optional: true },
        { ref: 'shop/password', mount: false },
        { ref: 'team-a/x' },
        { ref: 'a', store: 'big' },
      ),
      mode: fc.option(fc.constantFrom('0400', '0644', 400, 644, '0o600', '0', '0777'), { nil: undefined }),
    },
    { requiredKeys: ['name', 'store', 'how'] },
  )
  .map(({ how, ...rest }) => Object.entries({ ...rest, ...how }).filter(([, v]) => v !== undefined) as Array<[string, unknown]>);

function flowMapping(pairs: ReadonlyArray<[string, unknown]>): string {
  return `{${pairs.map(([k, v]) => `${JSON.stringify(k)}: ${JSON.stringify(v === undefined ? null : v)}`).join(', ')}}`;
}
function blockMapping(pairs: ReadonlyArray<[string, unknown]>): string {
  if (pairs.length === 0) return '- {}';
  return pairs.map(([k, v], i) => `${i === 0 ? '- ' : '  '}${JSON.stringify(k)}: ${JSON.stringify(v === undefined ? null : v)}`).join('\n');
}
const plausibleYaml = fc
  .array(plausibleEntry, { minLength: 1, maxLength: 4 })
  .chain((entries) => fc.constantFrom('flow', 'block').map((style) => entries.map((e) => (style === 'flow' ? `- ${flowMapping(e)}` : blockMapping(e))).join('\n')));
const objectsYaml = fc.oneof(
  plausibleYaml,
  fc.array(fc.oneof({ weight: 4, arbitrary: plausibleEntry }, { weight: 2, arbitrary: wellFormedEntry }, { weight: 1, arbitrary: objectEntry }), { minLength: 1, maxLength: 5 }).chain((entries) =>
    fc.constantFrom('flow', 'block', 'json').map((style) =>
      style === 'flow'
        ? entries.map((e) => `- ${flowMapping(e)}`).join('\n')
        : style === 'block'
          ? entries.map(blockMapping).join('\n')
          : `[${entries.map(flowMapping).join(', ')}]`,
    ),
  ),
);
/** Hostile YAML text: anchors, aliases, tags, documents, indentation games, raw noise. */
const hostileYaml = fc.oneof(
  anyText,
  fc.constantFrom(
    '- &a {name: x, ref: shop/password}\n- *a',
    '- {name: x, ref: shop/password, <<: {mode: "0400"}}',
    '- !!binary aGVsbG8=',
    '- !!js/function "function(){}"',
    '- {name: !!int 1, ref: shop/password}',
    '- {name: x, ref: shop/password}\n---\n- {name: y, ref: shop/password}',
    '{name: x, ref: shop/password}',
    '- {name: x, name: y, ref: shop/password}',
    '- {? [a, b] : c}',
    '- [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]',
    '- {name: x, ref: shop/password, __proto__: {polluted: yes}}',
    '- {"__proto__": {"polluted": 1}, name: x, ref: shop/password}',
    '- {name: x, ref: shop/password, constructor: {prototype: {polluted: 1}}}',
    '- name: x\n  ref: shop/password\n   mode: 0400',
    '\t- {name: x, ref: shop/password}',
    '- {name: "x\\u0000y", ref: shop/password}',
    '- {name: "\\ud800", ref: shop/password}',
    '- {name: x, ref: shop/password, store: "\\udc00"}',
    '- {name: x, ref: shop/password, mode: .inf}',
    '- {name: x, ref: shop/password, mode: 0o400}',
    '- {name: x, ref: shop/password, mode: 0x100}',
    '- {name: x, ref: shop/password, optional: yes}',
    '- {name: x, ref: shop/password, version: ~}',
    '~',
    '[]',
    '',
    '%YAML 1.1\n---\n- {name: x, ref: shop/password}',
  ),
  objectsYaml.chain((yaml) =>
    fc.tuple(fc.nat({ max: Math.max(0, yaml.length) }), fc.constantFrom('&a ', '*a', '!!str ', '\n', '"', "'", '{', '[', ': ', '- ', '#', '\t', '\0', '\ud800', '---\n')).map(
      ([at, insert]) => yaml.slice(0, at) + insert + yaml.slice(at),
    ),
  ),
);

const namespace = fc.oneof({ weight: 6, arbitrary: fc.constantFrom('shop', 'team-a', 'team-b', 'web') }, { weight: 1, arbitrary: fc.constantFrom('', 'Shop', 'a'.repeat(64), '../x', '*', 'team-*', '{namespace}', '-a', 'a.b') }, { weight: 1, arbitrary: anyText });
const serviceAccount = fc.oneof({ weight: 6, arbitrary: fc.constantFrom('default', 'app', 'intruder') }, { weight: 1, arbitrary: fc.constantFrom('', 'App', 'a.b', 'x'.repeat(254), '**', '{serviceAccount}') }, { weight: 1, arbitrary: anyText });

/** The tokens attribute: JSON inside JSON, well-formed or not. */
const tokensText: fc.Arbitrary<string> = fc.oneof(
  fc.constant(JSON.stringify({ '': { token: c.token, expirationTimestamp: '2099-01-01T00:00:00Z' } })),
  fc.constant(JSON.stringify({ vault: { token: c.token, expirationTimestamp: 'not a date' }, '': { token: c.token } })),
  fc.constant(`{"__proto__": {"token": ${JSON.stringify(c.token)}}}`),
  fc.constant(`{"constructor": {"token": ${JSON.stringify(c.token)}}, "": {"token": 5}}`),
  fc.constant(`{"": {"token": ${JSON.stringify(c.token)}`),
  fc.constant(`{"": ${JSON.stringify(c.token)}}`),
  fc.constant(JSON.stringify(c.token)),
  fc.constant(c.token),
  fc.constantFrom('null', '[]', ''),
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
  anyText,
);

const secretsText: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom('null', '', '{}', '[]', '"x"', '1', 'true', '{"a":1}', '{', 'nul', '{"a":null}', `{"password": ${JSON.stringify(c.nodeSecret)}}`),
  fc.constant(JSON.stringify({ 'csi.storage.k8s.io/serviceAccount.tokens': JSON.stringify({ '': { token: c.token } }) })),
  fc.constant(`{"__proto__": {"polluted": ${JSON.stringify(c.nodeSecret)}}, "constructor": ${JSON.stringify(c.nodeSecret)}}`),
  fc.constant(`{"password": ${JSON.stringify(c.nodeSecret)}, "password": "dup"}`),
  fc.constant(`{"csi.storage.k8s.io/serviceAccount.tokens": ${JSON.stringify(c.nodeSecret)}}`),
  fc.dictionary(anyText, fc.oneof(anyText, fc.constant(c.nodeSecret)), { maxKeys: 3 }).map((d) => JSON.stringify(d)),
  fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v)),
  anyText,
);

const permission = fc.oneof(
  fc.constantFrom('420', '', '0', '511', '512', '-1', '0644', '420.0', ' 420', '1e2', '0x1a4', '256', '0400', '00420', '\u0664\u0662\u0660'),
  fc.integer({ min: -1000, max: 1000 }).map(String),
  anyText,
);

/** Attributes as [key, JSON text of value] pairs, so non-string values, `__proto__` and duplicates survive. */
const attributesText = fc
  .record({
    objects: fc.oneof({ weight: 8, arbitrary: objectsYaml }, { weight: 2, arbitrary: hostileYaml }, { weight: 1, arbitrary: fc.constant(undefined) }),
    namespace,
    serviceAccount,
    podName: fc.option(anyText, { nil: undefined }),
    tokens: fc.option(tokensText, { nil: undefined }),
    role: fc.option(anyText, { nil: undefined }),
    className: fc.option(fc.constantFrom('test-class', '', '__proto__'), { nil: undefined }),
    extra: fc.array(
      fc.tuple(
        fc.constantFrom('__proto__', 'constructor', 'objectz', 'csi.storage.k8s.io/pod.namespace', 'csi.storage.k8s.io/other', 'secretProviderClass', 'objects', 'toString'),
        fc.oneof({ weight: 3, arbitrary: anyText.map((t) => JSON.stringify(t)) }, { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v)) }),
      ),
      { maxLength: 2 },
    ),
    driverKeysFirst: fc.boolean(),
  })
  .map((a): string => {
    const pairs: Array<[string, string]> = [];
    if (a.objects !== undefined) pairs.push(['objects', JSON.stringify(a.objects)]);
    if (a.role !== undefined) pairs.push(['role', JSON.stringify(a.role)]);
    const driverKeys: Array<[string, string]> = [
      ['csi.storage.k8s.io/pod.namespace', JSON.stringify(a.namespace)],
      ['csi.storage.k8s.io/serviceAccount.name', JSON.stringify(a.serviceAccount)],
      ['csi.storage.k8s.io/pod.uid', JSON.stringify('6f1c8a52-0000-4000-8000-000000000001')],
      ['csi.storage.k8s.io/ephemeral', JSON.stringify('true')],
    ];
    if (a.podName !== undefined) driverKeys.push(['csi.storage.k8s.io/pod.name', JSON.stringify(a.podName)]);
    if (a.className !== undefined) driverKeys.push(['secretProviderClass', JSON.stringify(a.className)]);
    if (a.tokens !== undefined) driverKeys.push(['csi.storage.k8s.io/serviceAccount.tokens', JSON.stringify(a.tokens)]);
    const all = a.driverKeysFirst ? [...driverKeys, ...pairs, ...a.extra] : [...pairs, ...a.extra, ...driverKeys];
    return `{${all.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`;
  });

/** Liquid pieces that render: reads of every kind of object, loops, filters, prototype names as plain variables. */
const renderingFragment = fc.constantFrom(
  '{{ objects.p }}', '{{ objects["p"] }}', '{{ objects.b | base64 }}', '{{ objects["f/a"] }}', '{{ objects.f.a }}',
  '{{ objects["f/b.txt"] | upcase }}', '{{ objects.m | default: "none" }}', '{% if objects.m %}m{% endif %}', '{{ objects.f | json }}',
  '{% for kv in objects.f %}{{ kv[0] }}={{ kv[1] }};{% endfor %}', '{% for o in objects %}{{ o[0] }}{% endfor %}',
  '{% assign x = objects.p | split: "" %}{{ x | size }}', '{% capture c %}{{ objects.d }}{% endcapture %}{{ c | size }}',
  '{{ objects.p | base64 | base64_decode }}', '{% for i in (1..3) %}{{ i }}{% endfor %}', '{% raw %}{{ x }}{% endraw %}',
  '{% comment %}x{% endcomment %}', '{{ "a" | append: objects.p | prepend: objects.d }}', '{{ objects.p | date: "%Y" }}',
  '{% assign __proto__ = objects.p %}{{ __proto__ }}', '{% assign constructor = 1 %}{% increment polluted %}', '{% cycle "a", objects.p %}',
  '{% tablerow i in (1..2) %}{{ i }}{% endtablerow %}', '{% liquid\necho objects.p %}', '\n', 'text ', '{{ objects.p | slice: 1, 3 }}',
  '{{ objects.d | truncate: 5 }}', '{{ objects.p | split: "" | sort | first }}', '{{ objects.p | plus: 1 }}',
);
/** Liquid pieces that must fail cleanly: binary as text, skipped objects, computed names, sandbox escapes, syntax errors. */
const failingFragment = fc.constantFrom(
  '{{ objects.b }}', '{{ objects.f }}', '{{ objects.m }}', '{{ objects["m/x"] }}', '{{ objects["f/zz"] }}', '{{ objects[objects.p] }}',
  '{{ objects[objects.d] }}', '{{ objects.constructor }}', '{{ objects.__proto__ }}', '{% assign o = objects %}{{ o.p.constructor }}{{ o[o.d] }}',
  '{{ objects.b | base64 | base64_decode }}', '{{ objects.p | base64_decode }}', '{% include "x" %}', '{% render objects.p %}', '{% layout "x" %}',
  '{{ nope }}', '{{ objects.nope }}', '{% if %}', '{{', '{%', '}}', '%}', '{% endfor %}', '{{ objects.p | nofilter }}', '{% increment objects %}{{ objects.p }}',
);
const templateText = fc
  .array(fc.oneof({ weight: 12, arbitrary: renderingFragment }, { weight: 1, arbitrary: failingFragment }, { weight: 1, arbitrary: anyText }), { minLength: 1, maxLength: 6 })
  .map((parts) => parts.join(''));
/** Usually one of its kind; `rare` gives the odd hostile value. */
const mostly = <T, U>(usual: fc.Arbitrary<T>, rare: fc.Arbitrary<U>) => fc.oneof({ weight: 6, arbitrary: usual }, { weight: 1, arbitrary: rare });
const templateEntry = fc
  .record({
    name: mostly(fc.constantFrom('app.env', 't', 'conf/app.ini'), fc.oneof(fc.constantFrom('p', 'f/a', 'f', 'p/x', 'b', 'm'), objectName)),
    template: mostly(templateText, jsonish),
    mode: mostly(fc.constantFrom(undefined, '0400', 420), mode),
    extra: mostly(fc.constant(undefined), fc.tuple(fc.constantFrom('colour', '__proto__', 'store', 'ref'), jsonish)),
  })
  .map(({ extra, ...fields }) => [...Object.entries(fields).filter(([, v]) => v !== undefined), ...(extra ? [extra] : [])] as Array<[string, unknown]>);
const templatesYaml = fc.oneof(
  { weight: 8, arbitrary: fc.array(templateEntry, { minLength: 1, maxLength: 3 }).map((entries) => entries.map(blockMapping).join('\n')) },
  { weight: 1, arbitrary: hostileYaml },
);
/** Objects the templates read: text, binary, expanded, optional and missing, unmounted. */
const templateObjects = `
- {name: p, ref: shop/password}
- {name: b, ref: shop/binary.bin, mount: false}
- {name: f, ref: shop/flat.json, expand: keys}
- {name: m, ref: shop/missing, optional: true}
- {name: d, ref: shop/db.json, key: password, mount: false}
`;

const targetPath = fc.oneof(fc.constant('/var/lib/kubelet/pods/x/volumes/kubernetes.io~csi/v/mount'), anyText);

// ---------------------------------------------------------------------------------------------

describe('Mount fuzzing (in process, real file store)', { timeout: 120_000 }, () => {
  it('raw request strings: arbitrary text in every field', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(anyText, fc.json({ maxDepth: 3 })), fc.oneof(anyText, fc.json({ maxDepth: 2 })), permission, targetPath, async (attributes, secrets, perm, target) => {
        const outcome = await run({ attributes, secrets, permission: perm, targetPath: target });
        check(outcome);
        afterEachCase();
      }),
      params(1500),
    );
  });

  it('structured but hostile attributes, tokens, secrets and permission', async () => {
    await fc.assert(
      // One case in twenty arrives with its call already cancelled.
      fc.asyncProperty(attributesText, secretsText, permission, targetPath, fc.nat({ max: 19 }), async (attributes, secrets, perm, target, roll) => {
        const outcome = await run({ attributes, secrets, permission: perm, targetPath: target }, roll === 0);
        check(outcome);
        afterEachCase();
      }),
      params(3000),
    );
  });

  it('objects YAML: names, refs, modes, keys, select, decode, expand, unknown fields', async () => {
    const pod = fc.record({
      namespace: fc.constantFrom('shop', 'shop', 'team-a', 'web'),
      serviceAccount: fc.constantFrom('default', 'app', 'intruder'),
      permission: fc.constantFrom('420', '420', '256', '0', '511'),
      secrets: fc.constantFrom('null', '{}', `{"password": ${JSON.stringify(c.nodeSecret)}}`),
    });
    await fc.assert(
      fc.asyncProperty(objectsYaml, pod, async (objects, p) => {
        const attributes = JSON.stringify({
          objects,
          secretProviderClass: 'fuzz',
          'csi.storage.k8s.io/pod.name': 'app-0',
          'csi.storage.k8s.io/pod.namespace': p.namespace,
          'csi.storage.k8s.io/serviceAccount.name': p.serviceAccount,
          'csi.storage.k8s.io/ephemeral': 'true',
        });
        const outcome = await run({ attributes, secrets: p.secrets, permission: p.permission, targetPath: '/mnt' });
        check(outcome);
        afterEachCase();
      }),
      params(5000),
    );
  });

  it('hostile objects YAML text', async () => {
    await fc.assert(
      fc.asyncProperty(hostileYaml, async (objects) => {
        await mountAsShop({ objects });
      }),
      params(1000),
    );
  });

  it('templates: hostile Liquid over text, binary, expanded, optional and unmounted objects', async () => {
    let rendered = 0;
    await fc.assert(
      fc.asyncProperty(templatesYaml, async (templates) => {
        const outcome = await mountAsShop({ objects: templateObjects, templates });
        if (outcome.ok && outcome.result.objectVersions.length > 2) rendered += 1;
      }),
      params(600),
    );
    console.log(`mount fuzz: ${rendered} of ${runs(600)} template Mounts rendered`);
    expect(rendered).toBeGreaterThan(runs(600) / 10);
  });

  it('the generators reach the stores: some cases succeed, and with files', async () => {
    // Guards against generators that only ever produce parse errors (a fuzzer that tests nothing).
    let ok = 0;
    let files = 0;
    const codes = new Set<string>();
    await fc.assert(
      fc.asyncProperty(plausibleYaml, async (objects) => {
        const outcome = await mountAsShop({ objects });
        if (outcome.ok) {
          ok += 1;
          files += outcome.result.files.length;
        } else codes.add((outcome.error as ProviderError).code);
      }),
      params(500),
    );
    console.log(`mount fuzz: ${ok} of ${runs(500)} plausible Mounts succeeded with ${files} files; codes ${[...codes].join(', ')}`);
    expect(ok).toBeGreaterThan(runs(500) / 10);
    expect(files).toBeGreaterThan(0);
    expect(codes).toContain('InvalidArgument');
    expect(codes).toContain('NotFound');
    expect(codes).toContain('PermissionDenied');
  });

  it('ran at least 10,000 Mounts, and no rejection went unhandled', () => {
    expect(unhandled).toEqual([]);
    expect(leakedLogLines).toEqual([]);
    expect(cases).toBeGreaterThanOrEqual(Math.min(10_000, runs(10_000)));
  });
});
