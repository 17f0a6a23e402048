import { randomBytes, randomUUID, X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { vaultBackend, vaultObjectFields, type VaultObjectSpec, type VaultStoreOptions } from '../../src/backends/vault/index.js';
import type { FetchContext, FetchResult, StoreBackend } from '../../src/backends/types.js';
import { ProviderError } from '../../src/errors.js';
import { createTokenSource, type PodToken } from '../../src/identity.js';
import { parseOrThrow, parseWith } from '../../src/schema.js';
import { Secret } from '../../src/secret.js';
import { createTestCa, type TestCa } from '../servers/tls.js';
import { startVaultTestServer, type VaultTestServer } from '../servers/vault.js';

const logger = pino({ level: 'silent' });

/** One clock for the server and the backend, moved by tests instead of sleeping. */
class Clock {
  t = Date.now();
  readonly now = () => this.t;
  advance(seconds: number) {
    this.t += seconds * 1000;
  }
}

/** Every secret value is a unique marker, so a leak into an error message is detectable. */
const markers = new Set<string>();
function marker(label = 'secret'): string {
  const value = `${label}-${randomBytes(12).toString('hex')}`;
  markers.add(value);
  return value;
}

const podTokens = new Set<string>();

interface Env {
  vault: VaultTestServer;
  clock: Clock;
  dir: string;
  stores: StoreBackend<VaultObjectSpec>[];
}

async function startEnv(): Promise<Env> {
  const clock = new Clock();
  const vault = await startVaultTestServer({ now: clock.now });
  const dir = await mkdtemp(join(tmpdir(), 'usp-vault-'));
  await writeFile(join(dir, 'vault-ca.pem'), vault.ca.cert);
  return { vault, clock, dir, stores: [] };
}

async function stopEnv(env: Env): Promise<void> {
  await Promise.all(env.stores.map((s) => s.close()));
  await env.vault.close();
  await rm(env.dir, { recursive: true, force: true });
}

async function createStore(env: Env, overrides: Partial<Record<keyof VaultStoreOptions, unknown>> = {}): Promise<StoreBackend<VaultObjectSpec>> {
  const definition = vaultBackend;
  const raw = { address: env.vault.url, tls: { caFile: 'vault-ca.pem' }, auth: { method: 'kubernetes', role: 'app' }, ...overrides };
  const parsed = parseWith(definition.options, raw, 'stores[0]');
  if (!parsed.ok) throw new Error(parsed.problems.join('; '));
  const store = (await definition.create(
    { name: 'vault', options: parsed.value, restrictsNamespaces: false },
    { logger, baseDir: env.dir, now: env.clock.now },
  )) as StoreBackend<VaultObjectSpec>;
  env.stores.push(store);
  return store;
}

interface Pod {
  namespace: string;
  serviceAccount: string;
  role?: string;
  audiences?: string[];
  secrets?: Record<string, string>;
  signal?: AbortSignal;
}

function podContext(env: Env, pod: Pod): FetchContext {
  const tokens = new Map<string, PodToken>();
  for (const audience of pod.audiences ?? ['vault']) {
    const issued = env.vault.issuePodToken({ namespace: pod.namespace, serviceAccount: pod.serviceAccount, audience });
    podTokens.add(issued.token);
    tokens.set(audience, { token: new Secret(issued.token), expiresAt: issued.expiresAt });
  }
  const source = createTokenSource(tokens, env.clock.now);
  return {
    tokenFor: (audience) => source.tokenFor(audience),
    identity: { namespace: pod.namespace, serviceAccount: pod.serviceAccount, podName: `${pod.serviceAccount}-0`, podUid: randomUUID() },
    parameters: pod.role === undefined ? {} : { role: pod.role },
    secrets: new Map(Object.entries(pod.secrets ?? {}).map(([k, v]) => [k, new Secret(v)])),
    signal: pod.signal ?? new AbortController().signal,
  };
}

function spec(store: StoreBackend<VaultObjectSpec>, fields: Record<string, unknown> = {}): VaultObjectSpec {
  return parseOrThrow(vaultObjectFields, fields, 'objects[0]');
}

function fieldsOf(result: FetchResult): Record<string, unknown> {
  const content = result.content.reveal();
  if (content.kind !== 'fields') throw new Error('expected fields content');
  return content.fields as Record<string, unknown>;
}

/** Fetches expecting a ProviderError, and checks its message carries no secret or token. */
async function fetchError(env: Env, promise: Promise<unknown>): Promise<ProviderError> {
  const err = await promise.then(
    () => {
      throw new Error('expected the fetch to fail');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ProviderError);
  expectNoSecrets(env, (err as ProviderError).message);
  return err as ProviderError;
}

function expectNoSecrets(env: Env, text: string): void {
  for (const m of markers) expect(text).not.toContain(m);
  for (const t of podTokens) expect(text).not.toContain(t);
  for (const t of env.vault.issuedTokens) expect(text).not.toContain(t);
}

const shop = { namespace: 'shop', serviceAccount: 'app' } as const;

/** A KV v2 mount `secret`, a KV v1 mount `kv`, database and PKI engines, and role `app` for shop/app. */
function seedVault(vault: VaultTestServer, roleOverrides: { ttlSeconds?: number; renewable?: boolean; maxTtlSeconds?: number } = {}) {
  vault.enableKv('secret', 2);
  vault.enableKv('kv', 1);
  vault.enableDatabase();
  vault.enablePki();
  vault.definePolicy('app', {
    'secret/data/shop/*': ['read'],
    'kv/shop/*': ['read'],
    'database/creds/app': ['read'],
    'pki/issue/shop': ['update'],
    'secret/data/shop/forbidden': ['deny'],
  });
  vault.defineRole({ name: 'app', boundServiceAccountNames: ['app', 'worker'], boundNamespaces: ['shop'], policies: ['app'], ...roleOverrides });
}

describe('vault backend: KV', () => {
  let env: Env;
  beforeAll(async () => {
    env = await startEnv();
    seedVault(env.vault);
  });
  afterAll(() => stopEnv(env));

  it('reads KV v2 data (not the envelope) with its version, in both ref forms', async () => {
    const first = { password: marker(), nested: { api: { key: marker() }, list: [marker(), 2] } };
    const second = { password: marker(), nested: { api: { key: marker() } } };
    env.vault.writeKv('secret', 'shop/db', first);
    env.vault.writeKv('secret', 'shop/db', second);
    const store = await createStore(env);
    const ctx = podContext(env, shop);

    const latest = await store.fetch({ ref: 'secret/data/shop/db', spec: spec(store) }, ctx);
    expect(fieldsOf(latest)).toEqual(second);
    expect(latest.version).toBe('2');

    const short = await store.fetch({ ref: 'secret/shop/db', spec: spec(store) }, ctx);
    expect(fieldsOf(short)).toEqual(second);

    const pinned = await store.fetch({ ref: 'secret/shop/db', version: '1', spec: spec(store) }, ctx);
    expect(fieldsOf(pinned)).toEqual(first);
    expect(pinned.version).toBe('1');
    expect(env.vault.requests.some((r) => r.path === '/v1/secret/data/shop/db')).toBe(true);
  });

  it('reads KV v1 data without a version and refuses version pins there', async () => {
    const value = { token: marker(), deep: { a: marker() } };
    env.vault.writeKv('kv', 'shop/api', value);
    const store = await createStore(env);
    const ctx = podContext(env, shop);
    const result = await store.fetch({ ref: 'kv/shop/api', spec: spec(store) }, ctx);
    expect(fieldsOf(result)).toEqual(value);
    expect(result.version).toBeUndefined();
    const err = await fetchError(env, store.fetch({ ref: 'kv/shop/api', version: '1', spec: spec(store) }, ctx));
    expect(err.code).toBe('InvalidArgument');
  });

  it('never caches KV v1 answers, whose lease_duration is only a refresh hint', async () => {
    env.vault.writeKv('kv', 'shop/rotating', { v: marker() });
    const store = await createStore(env);
    const ctx = podContext(env, shop);
    await store.fetch({ ref: 'kv/shop/rotating', spec: spec(store) }, ctx);
    const updated = { v: marker() };
    env.vault.writeKv('kv', 'shop/rotating', updated);
    expect(fieldsOf(await store.fetch({ ref: 'kv/shop/rotating', spec: spec(store) }, ctx))).toEqual(updated);
  });

  it('detects the KV version once per mount', async () => {
    env.vault.writeKv('secret', 'shop/a', { v: marker() });
    env.vault.writeKv('secret', 'shop/b', { v: marker() });
    const store = await createStore(env);
    const ctx = podContext(env, shop);
    const before = env.vault.counters.preflights;
    await store.fetch({ ref: 'secret/data/shop/a', spec: spec(store) }, ctx);
    await store.fetch({ ref: 'secret/data/shop/b', spec: spec(store) }, ctx);
    await store.fetch({ ref: 'secret/shop/a', spec: spec(store) }, ctx);
    expect(env.vault.counters.preflights - before).toBe(1);
  });

  it('uses a fixed kvVersion without asking Vault', async () => {
    env.vault.writeKv('secret', 'shop/fixed', { v: marker() });
    const store = await createStore(env, { kvVersion: 2 });
    const before = env.vault.counters.preflights;
    const result = await store.fetch({ ref: 'secret/shop/fixed', spec: spec(store) }, podContext(env, shop));
    expect(result.version).toBe('1');
    expect(env.vault.counters.preflights).toBe(before);
  });

  it('reports missing secrets and deleted or destroyed versions as NotFound', async () => {
    env.vault.writeKv('secret', 'shop/rotated', { v: marker() });
    env.vault.writeKv('secret', 'shop/rotated', { v: marker() });
    env.vault.writeKv('secret', 'shop/rotated', { v: marker() });
    env.vault.deleteKvVersion('secret', 'shop/rotated', 1);
    env.vault.destroyKvVersion('secret', 'shop/rotated', 3);
    const store = await createStore(env);
    const ctx = podContext(env, shop);
    const missing = await fetchError(env, store.fetch({ ref: 'secret/data/shop/none', spec: spec(store) }, ctx));
    expect(missing.code).toBe('NotFound');
    const deleted = await fetchError(env, store.fetch({ ref: 'secret/shop/rotated', version: '1', spec: spec(store) }, ctx));
    expect(deleted.code).toBe('NotFound');
    expect(deleted.message).toContain('deleted');
    const destroyed = await fetchError(env, store.fetch({ ref: 'secret/shop/rotated', spec: spec(store) }, ctx));
    expect(destroyed.code).toBe('NotFound');
    expect(destroyed.message).toContain('destroyed');
    expect((await store.fetch({ ref: 'secret/shop/rotated', version: '2', spec: spec(store) }, ctx)).version).toBe('2');
  });

  it('reports a 2xx JSON object of the wrong shape as a retryable Unavailable naming the path, never as NotFound', async () => {
    const store = await createStore(env);
    const ctx = podContext(env, shop);
    const cases: Array<{ path: string; ref: string; body: unknown; field: string; shape: string; fresh?: boolean }> = [
      { path: 'secret/data/shop/odd', ref: 'secret/data/shop/odd', body: { foo: marker() }, field: '"data"', shape: 'missing' },
      { path: 'secret/data/shop/odd', ref: 'secret/shop/odd', body: { data: null, warnings: [marker()] }, field: '"data"', shape: 'null' },
      { path: 'secret/data/shop/odd', ref: 'secret/data/shop/odd', body: { data: marker() }, field: '"data"', shape: 'a string' },
      { path: 'secret/data/shop/odd', ref: 'secret/data/shop/odd', body: { data: [marker(), 2] }, field: '"data"', shape: 'a list' },
      { path: 'secret/data/shop/odd', ref: 'secret/data/shop/odd', body: { data: { data: marker() } }, field: '"data.data"', shape: 'a string' },
      { path: 'secret/data/shop/odd', ref: 'secret/data/shop/odd', body: { data: { data: [marker()], metadata: { version: 1 } } }, field: '"data.data"', shape: 'a list' },
      { path: 'secret/data/shop/odd', ref: 'secret/data/shop/odd', body: { data: { metadata: { version: 3, deletion_time: '', destroyed: false } } }, field: '"data.data"', shape: 'missing' },
      { path: 'kv/shop/odd', ref: 'kv/shop/odd', body: { data: marker(), lease_duration: 60 }, field: '"data"', shape: 'a string' },
      { path: 'kv/shop/odd', ref: 'kv/shop/odd', body: { data: 42 }, field: '"data"', shape: 'a number' },
      { path: 'database/creds/app', ref: 'database/creds/app', body: { lease_id: 'database/creds/app/x', lease_duration: 60, data: [marker()] }, field: '"data"', shape: 'a list' },
      // The KV mount lookup (a new store has none cached): read as a plain path, a KV v2 answer would mount its envelope.
      { path: 'sys/internal/ui/mounts/secret/shop/pre', ref: 'secret/shop/pre', body: { data: marker() }, field: '"data"', shape: 'a string', fresh: true },
    ];
    for (const c of cases) {
      env.vault.setAnswer(c.path, { status: 200, body: c.body });
      const reader = c.fresh ? await createStore(env) : store;
      const err = await fetchError(env, reader.fetch({ ref: c.ref, spec: spec(reader) }, ctx));
      env.vault.setAnswer(c.path, undefined);
      expect({ path: c.path, body: c.body, code: err.code, transient: err.transient }).toEqual({ path: c.path, body: c.body, code: 'Unavailable', transient: true });
      expect(err.message).toBe(`Vault answered "${c.path}" with an unexpected response shape (${c.field} is ${c.shape}, not an object)`);
    }
    // A body that is not a JSON object at all keeps its own message.
    env.vault.setAnswer('secret/data/shop/odd', { status: 200, body: [marker(), 'not', 'an', 'object'] });
    const list = await fetchError(env, store.fetch({ ref: 'secret/data/shop/odd', spec: spec(store) }, ctx));
    env.vault.setAnswer('secret/data/shop/odd', undefined);
    expect({ code: list.code, transient: list.transient, message: list.message }).toEqual({
      code: 'Unavailable',
      transient: true,
      message: 'Vault answered 200 with a body that is not a JSON object',
    });
    // The store still reads the path once Vault answers properly.
    const value = { v: marker() };
    env.vault.writeKv('secret', 'shop/odd', value);
    expect(fieldsOf(await store.fetch({ ref: 'secret/data/shop/odd', spec: spec(store) }, ctx))).toEqual(value);
  });

  it('keeps NotFound for a 204 and for deleted or destroyed versions, whatever the status', async () => {
    const store = await createStore(env);
    const ctx = podContext(env, shop);
    const cases: Array<{ status: number; body: unknown; message: string }> = [
      { status: 204, body: undefined, message: 'Vault returned no data for "secret/data/shop/gone"' },
      {
        status: 200,
        body: { data: { data: null, metadata: { version: 2, deletion_time: '2024-01-01T00:00:00Z', destroyed: false } } },
        message: 'the current version of "secret/data/shop/gone" was deleted',
      },
      { status: 200, body: { data: { metadata: { version: 2, deletion_time: '', destroyed: true } } }, message: 'the current version of "secret/data/shop/gone" was destroyed' },
      { status: 404, body: { data: { data: null, metadata: { version: 2, deletion_time: '', destroyed: true } } }, message: 'the current version of "secret/data/shop/gone" was destroyed' },
      { status: 404, body: { errors: [] }, message: 'no secret at "secret/data/shop/gone"' },
    ];
    for (const c of cases) {
      env.vault.setAnswer('secret/data/shop/gone', { status: c.status, body: c.body });
      const err = await fetchError(env, store.fetch({ ref: 'secret/shop/gone', spec: spec(store) }, ctx));
      expect({ status: c.status, code: err.code, message: err.message }).toEqual({ status: c.status, code: 'NotFound', message: c.message });
    }
    env.vault.setAnswer('secret/data/shop/gone', undefined);
  });

  it('rejects bad refs and version pins before calling Vault', async () => {
    const store = await createStore(env);
    const ctx = podContext(env, shop);
    // A lone surrogate cannot be URL-encoded (URIError, reported as Internal before; found by fuzzing).
    for (const ref of ['secret/../sys/x', 'secret//x', 'secret', 'secret/x?version=1', 'secret/\udc00x', '}/\udc00']) {
      expect((await fetchError(env, store.fetch({ ref, spec: spec(store) }, ctx))).code).toBe('InvalidArgument');
    }
    const pin = await fetchError(env, store.fetch({ ref: 'secret/shop/x', version: 'latest', spec: spec(store) }, ctx));
    expect(pin.code).toBe('InvalidArgument');
  });
});

describe('vault backend: login as the pod', () => {
  let env: Env;
  afterEach(() => stopEnv(env));

  async function seeded(roleOverrides: Parameters<typeof seedVault>[1] = {}) {
    env = await startEnv();
    seedVault(env.vault, roleOverrides);
    env.vault.writeKv('secret', 'shop/db', { password: marker() });
    env.vault.writeKv('secret', 'shop/other', { password: marker() });
  }

  it('logs in once for many fetches of one identity, separately per service account', async () => {
    await seeded();
    const store = await createStore(env);
    for (let i = 0; i < 5; i += 1) {
      await store.fetch({ ref: 'secret/data/shop/db', spec: spec(store) }, podContext(env, shop));
      await store.fetch({ ref: 'secret/data/shop/other', spec: spec(store) }, podContext(env, shop));
    }
    expect(env.vault.counters.logins).toBe(1);
    await store.fetch({ ref: 'secret/data/shop/db', spec: spec(store) }, podContext(env, { namespace: 'shop', serviceAccount: 'worker' }));
    expect(env.vault.counters.logins).toBe(2);
  });

  it('shares one login between concurrent fetches', async () => {
    await seeded();
    const store = await createStore(env);
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) => store.fetch({ ref: `secret/data/shop/${i % 2 ? 'db' : 'other'}`, spec: spec(store) }, podContext(env, shop))),
    );
    expect(results).toHaveLength(12);
    expect(env.vault.counters.logins).toBe(1);
  });

  it('logs in again when the Vault token nears its TTL', async () => {
    await seeded({ ttlSeconds: 600, renewable: false });
    const store = await createStore(env);
    const read = () => store.fetch({ ref: 'secret/data/shop/db', spec: spec(store) }, podContext(env, shop));
    await read();
    env.clock.advance(500);
    await read();
    expect(env.vault.counters.logins).toBe(1);
    env.clock.advance(100);
    await read();
    expect(env.vault.counters.logins).toBe(2);
  });

  it('renews a renewable token past half its TTL instead of logging in again', async () => {
    await seeded({ ttlSeconds: 600, renewable: true, maxTtlSeconds: 7200 });
    const store = await createStore(env);
    const read = () => store.fetch({ ref: 'secret/data/shop/db', spec: spec(store) }, podContext(env, shop));
    await read();
    env.clock.advance(320);
    await read();
    expect(env.vault.counters.tokenRenewals).toBe(1);
    env.clock.advance(500);
    await read();
    expect(env.vault.counters.logins).toBe(1);
    expect(env.vault.counters.tokenRenewals).toBe(2);
  });

  it('evicts a revoked token on 403 and logs in again once', async () => {
    await seeded();
    const store = await createStore(env);
    const read = () => store.fetch({ ref: 'secret/data/shop/db', spec: spec(store) }, podContext(env, shop));
    await read();
    env.vault.revokeAllTokens();
    const again = await read();
    expect(fieldsOf(again)['password']).toBeDefined();
    expect(env.vault.counters.logins).toBe(2);
  });

  it('reports a denied path as PermissionDenied naming role, path and auth mount', async () => {
    await seeded();
    env.vault.writeKv('secret', 'shop/forbidden', { password: marker() });
    env.vault.writeKv('secret', 'billing/db', { password: marker() });
    const store = await createStore(env);
    const ctx = podContext(env, shop);
    for (const ref of ['secret/data/shop/forbidden', 'secret/data/billing/db']) {
      const err = await fetchError(env, store.fetch({ ref, spec: spec(store) }, ctx));
      expect(err.code).toBe('PermissionDenied');
      expect(err.message).toContain('role "app"');
      expect(err.message).toContain(ref);
      expect(err.message).toContain('auth mount "kubernetes"');
    }
    // A fresh login gets the same answer: one login for the first denial, one retry for the cached token.
    expect(env.vault.counters.logins).toBe(2);
  });

  it('takes the role from the class, the store default or a template', async () => {
    await seeded();
    env.vault.defineRole({ name: 'shop-app', boundServiceAccountNames: ['app'], boundNamespaces: ['shop'], policies: ['app'] });
    const noDefault = await createStore(env, { auth: { method: 'kubernetes' } });
    const missing = await fetchError(env, noDefault.fetch({ ref: 'secret/data/shop/db', spec: spec(noDefault) }, podContext(env, shop)));
    expect(missing.code).toBe('InvalidArgument');
    expect(missing.message).toContain('role');
    await noDefault.fetch({ ref: 'secret/data/shop/db', spec: spec(noDefault) }, podContext(env, { ...shop, role: 'shop-app' }));

    const templated = await createStore(env, { auth: { method: 'kubernetes', roleTemplate: '{namespace}-{serviceAccount}' } });
    await templated.fetch({ ref: 'secret/data/shop/db', spec: spec(templated) }, podContext(env, shop));
    await templated.fetch({ ref: 'secret/data/shop/db', spec: spec(templated) }, podContext(env, { ...shop, role: 'shop-app' }));
    const other = await fetchError(env, templated.fetch({ ref: 'secret/data/shop/db', spec: spec(templated) }, podContext(env, { ...shop, role: 'app' })));
    expect(other.code).toBe('InvalidArgument');
    expect(other.message).toContain('shop-app');
  });

  it('refuses a login whose role does not bind the service account, or an unknown role', async () => {
    await seeded();
    const store = await createStore(env);
    const stranger = await fetchError(env, store.fetch({ ref: 'secret/data/shop/db', spec: spec(store) }, podContext(env, { namespace: 'billing', serviceAccount: 'app' })));
    expect(stranger.code).toBe('PermissionDenied');
    expect(stranger.message).toContain('namespace not authorized');
    expect(stranger.message).toContain('role "app"');
    const unknown = await fetchError(env, store.fetch({ ref: 'secret/data/shop/db', spec: spec(store) }, podContext(env, { ...shop, role: 'nope' })));
    expect(unknown.code).toBe('InvalidArgument');
    expect(unknown.message).toContain('auth mount "kubernetes"');
  });

  it('presents the token for the store audience and uses the jwt mount', async () => {
    await seeded();
    env.vault.defineRole({ name: 'app', mount: 'jwt', audience: 'vault.example', boundServiceAccountNames: ['app'], boundNamespaces: ['shop'], policies: ['app'] });
    const store = await createStore(env, { auth: { method: 'jwt', audience: 'vault.example', role: 'app' } });
    const result = await store.fetch({ ref: 'secret/data/shop/db', spec: spec(store) }, podContext(env, { ...shop, audiences: ['vault.example'] }));
    expect(fieldsOf(result)['password']).toBeDefined();
    expect(env.vault.requests.some((r) => r.path === '/v1/auth/jwt/login' && r.status === 200)).toBe(true);

    const noToken = await fetchError(env, store.fetch({ ref: 'secret/data/shop/db', spec: spec(store) }, podContext(env, shop)));
    expect(noToken.code).toBe('PermissionDenied');
    expect(noToken.message).toContain('vault.example');

    const wrongAudience = await createStore(env, { auth: { method: 'jwt', role: 'app' } });
    const refused = await fetchError(env, wrongAudience.fetch({ ref: 'secret/data/shop/db', spec: spec(wrongAudience) }, podContext(env, shop)));
    expect(refused.code).toBe('PermissionDenied');
  });

  it('uses a token from nodePublishSecretRef only where the store allows it', async () => {
    await seeded();
    const token = env.vault.createToken({ policies: ['app'] });
    const definition = vaultBackend;
    const denied = parseWith(definition.options, { address: env.vault.url, auth: { method: 'token' } }, 'stores[0]');
    expect(denied.ok && definition.checkStore?.({ name: 'v', options: denied.value, restrictsNamespaces: false })).toEqual([
      expect.stringContaining('auth.allowTokenFromSecret'),
    ]);
    const store = await createStore(env, { auth: { method: 'token', allowTokenFromSecret: true } });
    const result = await store.fetch({ ref: 'secret/data/shop/db', spec: spec(store) }, podContext(env, { ...shop, secrets: { token } }));
    expect(fieldsOf(result)['password']).toBeDefined();
    expect(env.vault.counters.logins).toBe(0);
    const missing = await fetchError(env, store.fetch({ ref: 'secret/data/shop/db', spec: spec(store) }, podContext(env, shop)));
    expect(missing.code).toBe('InvalidArgument');
    const forbidden = await fetchError(env, store.fetch({ ref: 'secret/data/billing/x', spec: spec(store) }, podContext(env, { ...shop, secrets: { token } })));
    expect(forbidden.code).toBe('PermissionDenied');
  });
});

describe('vault backend: dynamic secrets', () => {
  let env: Env;
  afterEach(() => stopEnv(env));

  async function seeded() {
    env = await startEnv();
    seedVault(env.vault);
  }

  it('issues a PKI certificate with key and CA in one call and reuses it until two-thirds of its life', async () => {
    await seeded();
    env.vault.definePkiRole('shop', { ttlSeconds: 3600, allowedDomains: ['shop.svc'] });
    const store = await createStore(env);
    const pki = spec(store, { method: 'POST', args: { common_name: 'api.shop.svc', ttl: '1h' } });
    const first = fieldsOf(await store.fetch({ ref: 'pki/issue/shop', spec: pki }, podContext(env, shop)));
    expect(env.vault.counters.issues).toBe(1);

    const cert = new X509Certificate(first['certificate'] as string);
    const ca = new X509Certificate(env.vault.ca.cert);
    expect(cert.checkIssued(ca)).toBe(true);
    expect(cert.verify(ca.publicKey)).toBe(true);
    expect(cert.checkPrivateKey(createPrivateKey(first['private_key'] as string))).toBe(true);
    expect(first['issuing_ca']).toBe(env.vault.ca.cert);
    expect(first['ca_chain']).toEqual([env.vault.ca.cert]);
    expect(Math.floor(new Date(cert.validTo).getTime() / 1000)).toBe(first['expiration']);

    env.clock.advance(2300);
    const reused = fieldsOf(await store.fetch({ ref: 'pki/issue/shop', spec: pki }, podContext(env, shop)));
    expect(reused['serial_number']).toBe(first['serial_number']);
    expect(env.vault.counters.issues).toBe(1);

    env.clock.advance(150);
    const renewed = fieldsOf(await store.fetch({ ref: 'pki/issue/shop', spec: pki }, podContext(env, shop)));
    expect(renewed['serial_number']).not.toBe(first['serial_number']);
    expect(env.vault.counters.issues).toBe(2);
  });

  it('reuses database credentials across Mounts of one identity until two-thirds of the lease, then issues new ones', async () => {
    await seeded();
    env.vault.defineDatabaseRole('app', { ttlSeconds: 3600 });
    const store = await createStore(env);
    const fetchCreds = (pod: Pod = shop) => store.fetch({ ref: 'database/creds/app', spec: spec(store) }, podContext(env, pod));
    const first = await fetchCreds();
    expect(first.version).toBeUndefined();
    expect(Object.keys(fieldsOf(first)).sort()).toEqual(['password', 'username']);
    env.clock.advance(2000);
    expect(fieldsOf(await fetchCreds())).toEqual(fieldsOf(first));
    env.clock.advance(350);
    expect(fieldsOf(await fetchCreds())).toEqual(fieldsOf(first));
    expect(env.vault.counters.issues).toBe(1);

    const worker = await fetchCreds({ namespace: 'shop', serviceAccount: 'worker' });
    expect(fieldsOf(worker)['username']).not.toBe(fieldsOf(first)['username']);
    expect(env.vault.counters.issues).toBe(2);

    env.clock.advance(60);
    const rotated = await fetchCreds();
    expect(fieldsOf(rotated)['username']).not.toBe(fieldsOf(first)['username']);
    expect(env.vault.counters.issues).toBe(3);
  });

  it('renews a renewable lease at two-thirds and issues anew when the max TTL is near', async () => {
    await seeded();
    env.vault.defineDatabaseRole('app', { ttlSeconds: 600, maxTtlSeconds: 1000, renewable: true });
    const store = await createStore(env);
    const fetchCreds = () => store.fetch({ ref: 'database/creds/app', spec: spec(store) }, podContext(env, shop));
    const first = fieldsOf(await fetchCreds());
    env.clock.advance(401);
    expect(fieldsOf(await fetchCreds())).toEqual(first);
    expect(env.vault.counters.leaseRenewals).toBe(1);
    expect(env.vault.counters.issues).toBe(1);
    env.clock.advance(400);
    const next = fieldsOf(await fetchCreds());
    expect(next['username']).not.toBe(first['username']);
    expect(env.vault.counters.leaseRenewals).toBe(2);
    expect(env.vault.counters.issues).toBe(2);
  });

  it('keeps serving a still-valid credential while Vault cannot issue a new one', async () => {
    await seeded();
    env.vault.defineDatabaseRole('app', { ttlSeconds: 3600 });
    const store = await createStore(env);
    const fetchCreds = () => store.fetch({ ref: 'database/creds/app', spec: spec(store) }, podContext(env, shop));
    const first = fieldsOf(await fetchCreds());
    env.clock.advance(2500);
    env.vault.seal();
    expect(fieldsOf(await fetchCreds())).toEqual(first);
    env.clock.advance(900);
    const err = await fetchError(env, fetchCreds());
    expect(err.code).toBe('Unavailable');
    env.vault.unseal();
    expect(fieldsOf(await fetchCreds())['username']).not.toBe(first['username']);
  });

  it('shares one issue between concurrent Mounts of one identity', async () => {
    await seeded();
    env.vault.defineDatabaseRole('app', { ttlSeconds: 3600 });
    const store = await createStore(env);
    const all = await Promise.all(
      Array.from({ length: 6 }, () => store.fetch({ ref: 'database/creds/app', spec: spec(store) }, podContext(env, shop))),
    );
    expect(new Set(all.map((r) => fieldsOf(r)['username'])).size).toBe(1);
    expect(env.vault.counters.issues).toBe(1);
  });

  it('passes Vault 400 answers as InvalidArgument with Vault\'s reason, never the request body', async () => {
    await seeded();
    env.vault.definePkiRole('shop', { ttlSeconds: 3600, allowedDomains: ['shop.svc'] });
    const store = await createStore(env);
    const ctx = podContext(env, shop);
    const secretName = marker('cn');
    const bad = await fetchError(env, store.fetch({ ref: 'pki/issue/shop', spec: spec(store, { method: 'POST', args: { ttl: '1h', note: secretName } }) }, ctx));
    expect(bad.code).toBe('InvalidArgument');
    expect(bad.message).toContain('common_name');
    // Vault checks the ACL before the operation: a GET on an update-only path is denied, as in Vault.
    const wrongMethod = await fetchError(env, store.fetch({ ref: 'pki/issue/shop', spec: spec(store) }, ctx));
    expect(wrongMethod.code).toBe('PermissionDenied');
  });
});

describe('vault backend: availability, TLS and namespaces', () => {
  let env: Env;
  afterEach(() => stopEnv(env));

  it('reports a sealed Vault, rate limits and server errors as Unavailable', async () => {
    env = await startEnv();
    seedVault(env.vault);
    env.vault.writeKv('secret', 'shop/db', { password: marker() });
    const store = await createStore(env);
    const read = () => store.fetch({ ref: 'secret/data/shop/db', spec: spec(store) }, podContext(env, shop));
    env.vault.seal();
    const sealed = await fetchError(env, read());
    expect(sealed.code).toBe('Unavailable');
    expect(sealed.message).toContain('sealed');
    env.vault.unseal();
    await read();
    env.vault.failNext(1, 429, ['rate limit quota exceeded'], 7);
    const limited = await fetchError(env, read());
    expect(limited.code).toBe('Unavailable');
    expect(limited.retryAfterSeconds).toBe(7);
    env.vault.failNext(1, 500, ['1 error occurred:\n\t* internal error\n\n']);
    expect((await fetchError(env, read())).code).toBe('Unavailable');
    env.vault.failNext(1, 412, ['required index state not present']);
    expect((await fetchError(env, read())).code).toBe('Unavailable');
  });

  it('verifies TLS against the configured CA and refuses another CA', async () => {
    env = await startEnv();
    seedVault(env.vault);
    env.vault.writeKv('secret', 'shop/db', { password: marker() });
    const good = await createStore(env);
    await good.fetch({ ref: 'secret/data/shop/db', spec: spec(good) }, podContext(env, shop));

    const other = await createTestCa('someone else');
    await writeFile(join(env.dir, 'other-ca.pem'), other.cert);
    const wrong = await createStore(env, { tls: { caFile: 'other-ca.pem' } });
    const refused = await fetchError(env, wrong.fetch({ ref: 'secret/data/shop/db', spec: spec(wrong) }, podContext(env, shop)));
    expect(refused.code).toBe('Unavailable');
    expect(refused.message).toMatch(/TLS certificate/);
    expect(refused.message).toContain('tls.caFile');
    expect(refused.transient).toBe(false);

    const noCa = await createStore(env, { tls: undefined });
    expect((await fetchError(env, noCa.fetch({ ref: 'secret/data/shop/db', spec: spec(noCa) }, podContext(env, shop)))).code).toBe('Unavailable');

    const misnamed = await createStore(env, { tls: { caFile: 'vault-ca.pem', serverName: 'elsewhere.example' } });
    expect((await fetchError(env, misnamed.fetch({ ref: 'secret/data/shop/db', spec: spec(misnamed) }, podContext(env, shop)))).code).toBe('Unavailable');

    await expect(createStore(env, { tls: { caFile: 'missing.pem' } })).rejects.toThrow(/tls\.caFile/);
  });

  it('checks the server name given in tls.serverName and presents a client certificate', async () => {
    const clock = new Clock();
    const ca: TestCa = await createTestCa('vault mtls CA');
    const vault = await startVaultTestServer({ now: clock.now, ca, dnsNames: ['vault.internal'], requireClientCert: true });
    const dir = await mkdtemp(join(tmpdir(), 'usp-vault-'));
    env = { vault, clock, dir, stores: [] };
    seedVault(vault);
    vault.writeKv('secret', 'shop/db', { password: marker() });
    const client = await ca.issue({ commonName: 'usp', client: true });
    await writeFile(join(dir, 'ca.pem'), ca.cert);
    await writeFile(join(dir, 'client.pem'), client.cert);
    await writeFile(join(dir, 'client-key.pem'), client.key);
    const url = vault.url.replace('127.0.0.1', 'localhost');
    const tls = { caFile: 'ca.pem', serverName: 'vault.internal', certFile: 'client.pem', keyFile: 'client-key.pem' };
    const store = await createStore(env, { address: url, tls });
    const result = await store.fetch({ ref: 'secret/data/shop/db', spec: spec(store) }, podContext(env, shop));
    expect(fieldsOf(result)['password']).toBeDefined();

    const noClientCert = await createStore(env, { address: url, tls: { caFile: 'ca.pem', serverName: 'vault.internal' } });
    expect((await fetchError(env, noClientCert.fetch({ ref: 'secret/data/shop/db', spec: spec(noClientCert) }, podContext(env, shop)))).code).toBe('Unavailable');
  });

  it('sends X-Vault-Namespace on every call', async () => {
    env = await startEnv();
    const namespace = 'team-a';
    env.vault.enableKv('secret', 2, { namespace });
    env.vault.definePolicy('app', { 'secret/data/*': ['read'] }, { namespace });
    env.vault.defineRole({ namespace, name: 'app', boundServiceAccountNames: ['app'], boundNamespaces: ['shop'], policies: ['app'] });
    const value = { password: marker() };
    env.vault.writeKv('secret', 'db', value, { namespace });

    const store = await createStore(env, { namespace });
    expect(fieldsOf(await store.fetch({ ref: 'secret/db', spec: spec(store) }, podContext(env, shop)))).toEqual(value);
    expect(env.vault.requests.length).toBeGreaterThan(0);
    expect(env.vault.requests.every((r) => r.namespace === namespace)).toBe(true);

    const root = await createStore(env);
    expect((await fetchError(env, root.fetch({ ref: 'secret/db', spec: spec(root) }, podContext(env, shop)))).code).toBe('InvalidArgument');
  });

  it('maps timeouts, cancellation and unreachable addresses', async () => {
    env = await startEnv();
    seedVault(env.vault);
    env.vault.writeKv('secret', 'shop/db', { password: marker() });
    const slow = await createStore(env, { timeout: '200ms' });
    env.vault.setDelay(1000);
    const timedOut = await fetchError(env, slow.fetch({ ref: 'secret/data/shop/db', spec: spec(slow) }, podContext(env, shop)));
    expect(timedOut.code).toBe('DeadlineExceeded');

    const controller = new AbortController();
    const pending = slow.fetch({ ref: 'secret/data/shop/db', spec: spec(slow) }, podContext(env, { ...shop, signal: controller.signal }));
    controller.abort();
    expect((await fetchError(env, pending)).code).toBe('DeadlineExceeded');
    env.vault.setDelay(0);

    const closed = await createStore(env, { address: 'https://127.0.0.1:1' });
    const unreachable = await fetchError(env, closed.fetch({ ref: 'secret/data/shop/db', spec: spec(closed) }, podContext(env, shop)));
    expect(unreachable.code).toBe('Unavailable');
    expect(unreachable.message).toContain('ECONNREFUSED');
  });
});

describe('vault backend: options and object fields', () => {
  const definition = vaultBackend;
  const parse = (raw: unknown) => parseWith(definition.options, raw, 'stores[1]');

  it('accepts a full store config and applies defaults', () => {
    const parsed = parse({
      address: 'https://vault.vault.svc:8200',
      namespace: 'team-a',
      tls: { caFile: '/etc/usp/ca.pem', serverName: 'vault.vault.svc' },
      auth: { method: 'kubernetes', roleTemplate: '{namespace}-{serviceAccount}' },
      timeout: '5s',
    });
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    expect(parsed.value.kvVersion).toBe('auto');
    expect(parsed.value.timeout).toBe(5000);
    expect(parsed.value.auth).toMatchObject({ method: 'kubernetes', audience: 'vault' });
  });

  it('checks combinations the schema cannot', () => {
    const check = (raw: unknown) => {
      const parsed = parse(raw);
      if (!parsed.ok) throw new Error(parsed.problems.join('; '));
      return definition.checkStore?.({ name: 'v', options: parsed.value, restrictsNamespaces: false }) ?? [];
    };
    expect(check({ address: 'https://vault:8200', auth: { method: 'kubernetes', role: 'a' } })).toEqual([]);
    expect(check({ address: 'https://vault:8200', auth: { method: 'kubernetes', role: 'a', roleTemplate: '{namespace}' } })).toEqual([
      expect.stringContaining('auth.roleTemplate'),
    ]);
    expect(check({ address: 'http://vault:8200', tls: { caFile: 'ca.pem' }, auth: { method: 'jwt', role: 'a' } })).toEqual([
      expect.stringContaining('tls'),
    ]);
  });

  it('names the field of every problem', () => {
    const parsed = parse({
      address: 'ftp://vault',
      auth: { method: 'kubernetes', roleTemplate: '{pod}', extra: 1 },
      tls: { certFile: 'a.pem' },
      kvVersion: 3,
    });
    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    const text = parsed.problems.join('\n');
    expect(text).toContain('stores[1].address');
    expect(text).toContain('stores[1].auth.roleTemplate');
    expect(text).toContain('stores[1].auth.extra: unknown field');
    expect(text).toContain('stores[1].tls.certFile');
    expect(text).toContain('stores[1].kvVersion');
  });

  it('validates object fields strictly', async () => {
    const env = await startEnv();
    try {
      const store = await createStore(env);
      expect(parseOrThrow(vaultObjectFields, {}, 'objects[0]')).toEqual({ method: 'GET' });
      expect(parseOrThrow(vaultObjectFields, { method: 'PUT', args: { common_name: 'a' } }, 'objects[0]')).toEqual({ method: 'PUT', args: { common_name: 'a' } });
      expect(() => parseOrThrow(vaultObjectFields, { secretArgs: {} }, 'objects[2]')).toThrow(/objects\[2\]\.secretArgs: unknown field/);
      expect(() => parseOrThrow(vaultObjectFields, { args: { a: 1 } }, 'objects[3]')).toThrow(/objects\[3\]\.args/);
      expect(() => parseOrThrow(vaultObjectFields, { method: 'DELETE' }, 'objects[4]')).toThrow(/objects\[4\]\.method/);
    } finally {
      await stopEnv(env);
    }
  });
});

describe('vault test server', () => {
  it('speaks Vault\'s login, lookup-self, renew-self and error shapes (plain HTTP mode)', async () => {
    const clock = new Clock();
    const vault = await startVaultTestServer({ http: true, now: clock.now });
    try {
      vault.definePolicy('p', {});
      vault.defineRole({ name: 'r', boundServiceAccountNames: ['app'], boundNamespaces: ['shop'], policies: ['p'], ttlSeconds: 60, maxTtlSeconds: 90 });
      const call = async (method: string, path: string, body?: unknown, token?: string) => {
        const res = await fetch(`${vault.url}/v1/${path}`, {
          method,
          headers: { 'content-type': 'application/json', ...(token ? { 'x-vault-token': token } : {}) },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        });
        return { status: res.status, body: (await res.json()) as Record<string, any> };
      };
      const jwt = vault.issuePodToken({ namespace: 'shop', serviceAccount: 'app' }).token;
      const login = await call('POST', 'auth/kubernetes/login', { role: 'r', jwt });
      expect(login.status).toBe(200);
      expect(login.body.auth).toMatchObject({ policies: ['default', 'p'], lease_duration: 60, renewable: true });
      const token = login.body.auth.client_token as string;
      const self = await call('GET', 'auth/token/lookup-self', undefined, token);
      expect(self.body.data).toMatchObject({ ttl: 60, policies: ['default', 'p'], renewable: true });
      clock.advance(50);
      const renewed = await call('POST', 'auth/token/renew-self', {}, token);
      expect(renewed.body.auth.lease_duration).toBe(40);
      expect((await call('GET', 'secret/data/x', undefined, token)).status).toBe(403);
      expect((await call('GET', 'secret/data/x')).body).toEqual({ errors: ['1 error occurred:\n\t* permission denied\n\n'] });
      expect((await call('POST', 'auth/kubernetes/login', { role: 'nope', jwt })).body).toEqual({ errors: ['invalid role name "nope"'] });
      const forged = `${jwt.slice(0, jwt.lastIndexOf('.'))}.${Buffer.from('forged').toString('base64url')}`;
      expect((await call('POST', 'auth/kubernetes/login', { role: 'r', jwt: forged })).status).toBe(403);
      clock.advance(3600);
      expect((await call('POST', 'auth/kubernetes/login', { role: 'r', jwt })).status).toBe(403);
      expect(vault.counters.logins).toBe(4);
    } finally {
      await vault.close();
    }
  });
});
