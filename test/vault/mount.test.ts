/**
 * The Vault store through the Mount socket: real gRPC on a Unix socket into the real provider,
 * real HTTPS from the provider to the protocol-faithful Vault test server, its CA verified.
 * The provider and the server share one clock, which tests move to let token and lease
 * lifetimes pass instead of sleeping.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCanaries } from '../helpers/canary.js';
import { driverRequest, fileMap, type MountReply, type PodOptions } from '../helpers/driver-client.js';
import { startTestProvider, type TestProvider } from '../helpers/provider.js';
import { createTestCa } from '../servers/tls.js';
import { startVaultTestServer, type VaultTestServer } from '../servers/vault.js';

const canaries = createCanaries();

/** The shared clock: starts at the real time and moves only when a test says so. */
const clock = {
  t: Date.now(),
  now: (): number => clock.t,
  advance(ms: number): void {
    clock.t += ms;
  },
};
const errors: string[] = [];

let vault: VaultTestServer;
let p: TestProvider;

/** Service accounts bound to role `app`; each test that counts logins uses its own. */
const appAccounts = ['app', 'kv-reader', 'counter-a', 'counter-b', 'denied', 'pki', 'db-a', 'db-b', 'sealed', 'sealed-login'];

// --- secret values: every one a unique marker -------------------------------------------------
const v2First = { password: canaries.next('v2-first') };
const v2Second = { password: canaries.next('v2-second') };
const v1Value = { token: canaries.next('v1-token'), note: canaries.next('v1-note') };
const nested = {
  username: canaries.next('user'),
  password: canaries.next('password'),
  config: {
    db: { host: canaries.next('host'), port: 5432 },
    list: [canaries.next('list0'), canaries.next('list1')],
  },
};
const forbidden = { password: canaries.next('forbidden') };

function providerConfig(url: string): string {
  // cache.ttl 0: these tests observe the backend's own token and lease reuse, not a result cache.
  // The breaker would open during the sealed and wrong-CA tests and fail later ones fast; it has tests of its own.
  return `
defaultStore: vault
versionKey: test-version-key-0123456789
stores:
  - name: vault
    backend: vault
    address: ${url}
    tls: {caFile: ../ca.pem}
    auth: {method: kubernetes, mount: kubernetes, audience: vault}
    cache: {ttl: 0s}
    breaker: {failures: 1000}
  - name: vault-with-role
    backend: vault
    address: ${url}
    tls: {caFile: ../ca.pem}
    auth: {method: kubernetes, role: app}
    cache: {ttl: 0s}
    breaker: {failures: 1000}
  - name: wrong-ca
    backend: vault
    address: ${url}
    tls: {caFile: ../other-ca.pem}
    auth: {method: kubernetes, role: app}
    cache: {ttl: 0s}
    breaker: {failures: 1000}
`;
}

beforeAll(async () => {
  vault = await startVaultTestServer({ now: clock.now });
  const otherCa = await createTestCa('some other CA');
  seed(vault);
  p = await startTestProvider({
    config: providerConfig(vault.url),
    files: { 'ca.pem': vault.ca.cert, 'other-ca.pem': otherCa.cert },
    now: clock.now,
  });
}, 60_000);

afterAll(async () => {
  const metrics = p ? await p.metrics.registry.metrics() : '';
  await p?.stop();
  await vault?.close();
  canaries.add(...(vault?.issuedTokens ?? []));
  canaries.expectNoneIn(p?.logs ?? [], 'provider logs');
  canaries.expectNoneIn(errors, 'gRPC error details');
  canaries.expectNoneIn([metrics], 'metrics');
});

function seed(v: VaultTestServer): void {
  v.enableKv('secret', 2);
  v.enableKv('kv', 1);
  v.enableDatabase();
  v.defineDatabaseRole('app', { ttlSeconds: 6 });
  v.enablePki();
  v.definePkiRole('shop', { ttlSeconds: 3600, allowedDomains: ['shop.svc'] });
  v.writeKv('secret', 'shop/db', v2First);
  v.writeKv('secret', 'shop/db', v2Second);
  v.writeKv('secret', 'shop/config', nested);
  v.writeKv('secret', 'shop/forbidden', forbidden);
  v.writeKv('kv', 'shop/api', v1Value);
  v.definePolicy('app', {
    'secret/data/shop/*': ['read'],
    'secret/data/shop/forbidden': ['deny'],
    'kv/shop/*': ['read'],
    'database/creds/app': ['read'],
    'pki/issue/shop': ['update'],
  });
  v.defineRole({ name: 'app', boundServiceAccountNames: appAccounts, boundNamespaces: ['shop'], policies: ['app'] });
  // Short-lived, not renewable: the provider must log in again once it nears its end.
  v.defineRole({ name: 'short', boundServiceAccountNames: ['expiring'], boundNamespaces: ['shop'], policies: ['app'], ttlSeconds: 2, renewable: false });
}

/** A Mount request as the driver sends it, with a fresh pod token for audience `vault`. */
function request(objects: string, serviceAccount: string, options: { role?: string | null; audience?: string | null } = {}) {
  const pod: PodOptions = { namespace: 'shop', serviceAccount };
  const role = options.role === undefined ? 'app' : options.role;
  if (role !== null) pod.parameters = { role };
  if (options.audience !== null) {
    const issued = vault.issuePodToken({ namespace: 'shop', serviceAccount, audience: options.audience ?? 'vault' });
    canaries.add(issued.token);
    pod.tokens = { [options.audience ?? 'vault']: { token: issued.token, expirationTimestamp: new Date(issued.expiresAt).toISOString() } };
  }
  return driverRequest(objects, pod);
}

async function mount(objects: string, serviceAccount: string, options: Parameters<typeof request>[2] = {}): Promise<MountReply> {
  return p.client.mount(request(objects, serviceAccount, options));
}

async function failMount(objects: string, serviceAccount: string, options: Parameters<typeof request>[2] = {}) {
  const err = await p.client.mountError(request(objects, serviceAccount, options));
  errors.push(err.details);
  return err;
}

function text(reply: MountReply, path: string): string {
  const file = fileMap(reply).get(path);
  if (!file) throw new Error(`no file ${path} in the reply (got ${reply.files.map((f) => f.path).join(', ')})`);
  return file.contents.toString('utf8');
}

function versionOf(reply: MountReply, id: string): string | undefined {
  return reply.objectVersion.find((v) => v.id === id)?.version;
}

describe('vault store through the Mount socket: reading KV', () => {
  it('reads KV v2 latest and pinned versions, reporting the version number', async () => {
    const reply = await mount(
      `
- {name: latest, ref: secret/data/shop/db, key: password}
- {name: short-form, ref: secret/shop/db, key: password}
- {name: pinned, ref: secret/shop/db, key: password, version: 1}
- {name: pinned-str, ref: secret/data/shop/db, key: password, version: "2"}
`,
      'kv-reader',
    );
    expect(text(reply, 'latest')).toBe(v2Second.password);
    expect(text(reply, 'short-form')).toBe(v2Second.password);
    expect(text(reply, 'pinned')).toBe(v2First.password);
    expect(text(reply, 'pinned-str')).toBe(v2Second.password);
    expect(versionOf(reply, 'latest')).toBe('2');
    expect(versionOf(reply, 'pinned')).toBe('1');
    expect(reply.error).toBeNull();
  });

  it('reads KV v1 with an HMAC version, and refuses a version pin there', async () => {
    const reply = await mount('- {name: api/token, ref: kv/shop/api, key: token}', 'kv-reader');
    expect(text(reply, 'api/token')).toBe(v1Value.token);
    expect(versionOf(reply, 'api/token')).toMatch(/^hmac-/);

    const err = await failMount('- {name: api/token, ref: kv/shop/api, key: token, version: 1}', 'kv-reader');
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toContain('KV v2');
  });

  it('applies key and select to the secret data, nested JSON included, never to the envelope', async () => {
    const reply = await mount(
      `
- {name: password, ref: secret/shop/config, key: password}
- {name: host, ref: secret/shop/config, select: config.db.host}
- {name: port, ref: secret/shop/config, select: config.db.port}
- {name: db.json, ref: secret/shop/config, select: config.db}
- {name: config.json, ref: secret/shop/config, key: config}
- {name: second, ref: secret/shop/config, select: "config.list[1]"}
- {name: all.json, ref: secret/shop/config}
`,
      'kv-reader',
    );
    expect(text(reply, 'password')).toBe(nested.password);
    expect(text(reply, 'host')).toBe(nested.config.db.host);
    expect(text(reply, 'port')).toBe('5432');
    expect(JSON.parse(text(reply, 'db.json'))).toEqual(nested.config.db);
    expect(JSON.parse(text(reply, 'config.json'))).toEqual(nested.config);
    expect(text(reply, 'second')).toBe(nested.config.list[1]);
    // Without key or select: the secret's data, not Vault's response (no metadata, lease, auth).
    expect(JSON.parse(text(reply, 'all.json'))).toEqual(nested);
  });
});

describe('vault store through the Mount socket: login as the pod', () => {
  it('logs in once for many Mounts of one identity, and separately for another service account', async () => {
    const objects = '- {name: pw, ref: secret/shop/db, key: password}';
    const before = vault.counters.logins;
    for (let i = 0; i < 5; i += 1) {
      expect(text(await mount(objects, 'counter-a'), 'pw')).toBe(v2Second.password);
    }
    expect(vault.counters.logins - before).toBe(1);

    await Promise.all([mount(objects, 'counter-b'), mount(objects, 'counter-b'), mount(objects, 'counter-b')]);
    await mount(objects, 'counter-a');
    expect(vault.counters.logins - before).toBe(2);
  });

  it('logs in again when the Vault token reaches the end of its TTL', async () => {
    const objects = '- {name: pw, ref: secret/shop/db, key: password}';
    const before = vault.counters.logins;
    await mount(objects, 'expiring', { role: 'short' });
    await mount(objects, 'expiring', { role: 'short' });
    expect(vault.counters.logins - before).toBe(1);
    // The role's tokens live 2 s and are not renewable.
    clock.advance(2_100);
    expect(text(await mount(objects, 'expiring', { role: 'short' }), 'pw')).toBe(v2Second.password);
    expect(vault.counters.logins - before).toBe(2);
  });

  it('answers PERMISSION_DENIED naming role, path and auth mount for a path the policy denies', async () => {
    // First Mount of this store and identity: a fresh login, then the denied read.
    const err = await failMount('- {name: nope, store: vault-with-role, ref: secret/shop/forbidden, key: password}', 'denied', { role: null });
    expect(err.code).toBe(status.PERMISSION_DENIED);
    expect(err.details).toContain('role "app"');
    expect(err.details).toContain('auth mount "kubernetes"');
    expect(err.details).toMatch(/secret\/(data\/)?shop\/forbidden/);
    expect(err.details).toContain('"nope"');
    expect(err.details).toContain('vault-with-role');

    // With a cached token, the 403 first evicts it and logs in again once; still denied.
    await mount('- {name: ok, ref: secret/shop/db, key: password}', 'denied');
    const logins = vault.counters.logins;
    const again = await failMount('- {name: nope, ref: secret/shop/forbidden, key: password}', 'denied');
    expect(vault.counters.logins - logins).toBe(1);
    expect(again.code).toBe(status.PERMISSION_DENIED);
    expect(again.details).toContain('role "app"');
    expect(again.details).toContain('auth mount "kubernetes"');
    expect(again.details).toContain('secret/data/shop/forbidden');
  });

  it('uses the store default role, and answers INVALID_ARGUMENT when neither class nor store names one', async () => {
    const withDefault = await mount('- {name: pw, store: vault-with-role, ref: secret/shop/db, key: password}', 'app', { role: null });
    expect(text(withDefault, 'pw')).toBe(v2Second.password);

    const err = await failMount('- {name: pw, ref: secret/shop/db, key: password}', 'app', { role: null });
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toContain('role');
  });

  it('answers PERMISSION_DENIED naming the audience when the pod has no token for it', async () => {
    const before = vault.counters.requests;
    const err = await failMount('- {name: pw, ref: secret/shop/db, key: password}', 'app', { audience: null });
    expect(err.code).toBe(status.PERMISSION_DENIED);
    expect(err.details).toContain('"vault"');
    expect(err.details).toContain('tokenRequests');
    expect(vault.counters.requests).toBe(before);
  });

  it('answers PERMISSION_DENIED when Vault refuses the pod token (minted for another audience)', async () => {
    const issued = vault.issuePodToken({ namespace: 'shop', serviceAccount: 'app', audience: 'api' });
    canaries.add(issued.token);
    const req = driverRequest('- {name: pw, ref: secret/shop/db, key: password}', {
      namespace: 'shop',
      serviceAccount: 'app',
      parameters: { role: 'app' },
      tokens: { vault: { token: issued.token, expirationTimestamp: new Date(issued.expiresAt).toISOString() } },
    });
    const err = await p.client.mountError(req);
    errors.push(err.details);
    expect(err.code).toBe(status.PERMISSION_DENIED);
    expect(err.details).toContain('login failed');
    expect(err.details).toContain('audience');
  });
});

describe('vault store through the Mount socket: dynamic secrets', () => {
  it('writes certificate, private key and CA from one PKI issue call, and reuses it on rotation', async () => {
    const objects = `
- name: tls.crt
  ref: pki/issue/shop
  method: POST
  args: {common_name: web.shop.svc, ttl: 1h}
  key: certificate
- name: tls.key
  ref: pki/issue/shop
  method: POST
  args: {common_name: web.shop.svc, ttl: 1h}
  key: private_key
  mode: "0400"
- name: ca.crt
  ref: pki/issue/shop
  method: POST
  args: {common_name: web.shop.svc, ttl: 1h}
  key: issuing_ca
`;
    const before = vault.counters.issues;
    const reply = await mount(objects, 'pki');
    expect(vault.counters.issues - before).toBe(1);
    const certPem = text(reply, 'tls.crt');
    const keyPem = text(reply, 'tls.key');
    canaries.add(keyPem.replace(/-----[^-]+-----|\s/g, ''));
    expect(fileMap(reply).get('tls.key')?.mode).toBe(0o400);

    const cert = new X509Certificate(certPem);
    expect(cert.subject).toContain('CN=web.shop.svc');
    expect(cert.checkPrivateKey(createPrivateKey(keyPem))).toBe(true);
    const ca = new X509Certificate(text(reply, 'ca.crt'));
    expect(text(reply, 'ca.crt')).toBe(vault.ca.cert);
    expect(cert.checkIssued(ca)).toBe(true);
    expect(cert.verify(ca.publicKey)).toBe(true);

    // A rotation poll well within two-thirds of the hour: same certificate, no new issue.
    const rotated = await mount(objects, 'pki');
    expect(text(rotated, 'tls.crt')).toBe(certPem);
    expect(text(rotated, 'tls.key')).toBe(keyPem);
    expect(vault.counters.issues - before).toBe(1);
  });

  it('reuses database credentials across rotation Mounts until two-thirds of the lease, then issues new ones', async () => {
    const objects = `
- {name: db/username, ref: database/creds/app, key: username}
- {name: db/password, ref: database/creds/app, key: password}
`;
    const before = vault.counters.issues;
    // Lease of 6 s: reused until 4 s after it was issued, then issued anew.
    const first = await mount(objects, 'db-a');
    const issuedAt = clock.now();
    const creds = { username: text(first, 'db/username'), password: text(first, 'db/password') };
    canaries.add(creds.password);
    expect(creds.username).toMatch(/^v-app-/);
    expect(vault.counters.issues - before).toBe(1);

    clock.advance(3_900);
    const reused = await mount(objects, 'db-a');
    expect(text(reused, 'db/username')).toBe(creds.username);
    expect(text(reused, 'db/password')).toBe(creds.password);
    expect(vault.counters.issues - before).toBe(1);

    // Another identity never receives this pod's credentials.
    const other = await mount(objects, 'db-b');
    canaries.add(text(other, 'db/password'));
    expect(text(other, 'db/username')).not.toBe(creds.username);
    expect(vault.counters.issues - before).toBe(2);

    clock.advance(issuedAt + 4_100 - clock.now());
    const renewed = await mount(objects, 'db-a');
    canaries.add(text(renewed, 'db/password'));
    expect(text(renewed, 'db/username')).not.toBe(creds.username);
    expect(text(renewed, 'db/password')).not.toBe(creds.password);
    expect(vault.counters.issues - before).toBe(3);
  });
});

describe('vault store through the Mount socket: availability and TLS', () => {
  it('answers UNAVAILABLE while Vault is sealed, for a login and for a read, and recovers when unsealed', async () => {
    const objects = '- {name: pw, ref: secret/shop/db, key: password}';
    await mount(objects, 'sealed');
    vault.seal();
    try {
      const read = await failMount(objects, 'sealed');
      expect(read.code).toBe(status.UNAVAILABLE);
      expect(read.details).toContain('sealed');
      const login = await failMount(objects, 'sealed-login');
      expect(login.code).toBe(status.UNAVAILABLE);
      expect(login.details).toContain('sealed');
    } finally {
      vault.unseal();
    }
    expect(text(await mount(objects, 'sealed'), 'pw')).toBe(v2Second.password);
  });

  it('verifies Vault with the configured CA (every other test) and refuses a certificate from another CA', async () => {
    const before = vault.counters.requests;
    const err = await failMount('- {name: pw, store: wrong-ca, ref: secret/shop/db, key: password}', 'app');
    expect(err.code).toBe(status.UNAVAILABLE);
    expect(err.details).toContain('TLS');
    expect(err.details).toContain('wrong-ca');
    // The handshake failed, so no request reached Vault.
    expect(vault.counters.requests).toBe(before);
    expect(text(await mount('- {name: pw, ref: secret/shop/db, key: password}', 'app'), 'pw')).toBe(v2Second.password);
  });
});
