import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubernetesBackend, kubernetesObjectFields } from '../../src/backends/kubernetes/index.js';
import { parseOrThrow } from '../../src/schema.js';
import type { Content, FetchContext, FetchResult, StoreBackend } from '../../src/backends/types.js';
import { ProviderError, type ErrorCode } from '../../src/errors.js';
import { createTokenSource, type PodToken } from '../../src/identity.js';
import { Secret } from '../../src/secret.js';
import { createTestCa } from '../servers/tls.js';
import { execPluginKubeconfig } from './exec-plugin.js';
import { serviceAccountUser, startKubernetesTestServer, type KubernetesTestServer } from '../servers/kubernetes.js';

const logger = pino({ level: 'silent' });
const secretsSeen: string[] = [];

/** A unique value that must never show up in an error message. */
function marker(): string {
  const value = `marker-${randomUUID()}`;
  secretsSeen.push(value);
  return value;
}

let api: KubernetesTestServer;
let dir: string;
const stores: StoreBackend[] = [];

async function createStore(options: Record<string, unknown>, restrictsNamespaces = false, storeLogger = logger): Promise<StoreBackend<unknown>> {
  const settings = { name: 'cluster', options: kubernetesBackend.options.parse(options), restrictsNamespaces };
  const store = await kubernetesBackend.create(settings, { logger: storeLogger, baseDir: dir, now: Date.now });
  stores.push(store);
  return store;
}

interface PodOptions {
  namespace?: string;
  serviceAccount?: string;
  /** Audience -> token; by default one server-issued token for the "" audience. */
  tokens?: Map<string, PodToken>;
  signal?: AbortSignal;
}

function podContext({ namespace = 'shop', serviceAccount = 'app', tokens, signal }: PodOptions = {}): FetchContext {
  const source = createTokenSource(tokens ?? new Map([['', issue(namespace, serviceAccount)]]), Date.now);
  return {
    identity: { namespace, serviceAccount, podName: 'app-0', podUid: randomUUID() },
    parameters: {},
    secrets: new Map(),
    signal: signal ?? new AbortController().signal,
    tokenFor: (audience) => source.tokenFor(audience),
  };
}

function issue(namespace: string, serviceAccount: string, expiresInSeconds = 600): PodToken {
  const { token, expiresAt } = api.issueToken({ namespace, serviceAccount, expiresInSeconds });
  secretsSeen.push(token);
  return { token: new Secret(token), expiresAt };
}

function fields(result: FetchResult): Record<string, unknown> {
  const content: Content = result.content.reveal();
  if (content.kind !== 'fields') throw new Error('expected fields content');
  return { ...content.fields };
}

async function expectFailure(promise: Promise<unknown>, code: ErrorCode): Promise<ProviderError> {
  const err = await promise.then(
    () => {
      throw new Error('expected a failure');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ProviderError);
  const failure = err as ProviderError;
  expect(failure.code, failure.message).toBe(code);
  for (const secret of secretsSeen) expect(failure.message).not.toContain(secret);
  return failure;
}

function requestCount(): number {
  return api.requests.length;
}

let podStore: StoreBackend<unknown>;
const spec = (kind: 'secret' | 'configmap' = 'secret') => ({ kind });

beforeAll(async () => {
  api = await startKubernetesTestServer();
  dir = await mkdtemp(join(tmpdir(), 'usp-k8s-'));
  await api.addUser('usp-provider', 'token');
  await api.addUser('cluster-admin', 'certificate');
  await api.writeKubeconfig(join(dir, 'anonymous.kubeconfig'));
  await api.writeKubeconfig(join(dir, 'provider.kubeconfig'), { user: 'usp-provider', context: 'remote' });
  await api.writeKubeconfig(join(dir, 'admin-cert.kubeconfig'), { user: 'cluster-admin' });
  const otherCa = await createTestCa('some other CA');
  await api.writeKubeconfig(join(dir, 'wrong-ca.kubeconfig'), { caPem: otherCa.cert });
  podStore = await createStore({ kubeconfig: 'anonymous.kubeconfig' });
});

afterAll(async () => {
  await Promise.all(stores.map((s) => s.close()));
  await api?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('kubernetes backend: reads as the pod', () => {
  it('reads a Secret in the pod namespace, with its resourceVersion as version', async () => {
    const [user, password] = [marker(), marker()];
    const version = api.putSecret({ namespace: 'shop', name: 'db', data: { user, password } });
    api.allow({ subject: serviceAccountUser('shop', 'app'), namespace: 'shop', resource: 'secrets', names: ['db'] });

    const result = await podStore.fetch({ ref: 'db', spec: spec() }, podContext());

    expect(fields(result)).toEqual({ user: Buffer.from(user), password: Buffer.from(password) });
    expect(result.version).toBe(version);
    expect(api.requests.at(-1)).toMatchObject({ path: '/api/v1/namespaces/shop/secrets/db', user: serviceAccountUser('shop', 'app'), status: 200 });
  });

  it('reads a Secret in another namespace the pod may read, and sees a new version after a write', async () => {
    const token = marker();
    api.putSecret({ namespace: 'platform', name: 'shared', data: { token: marker() } });
    const version = api.putSecret({ namespace: 'platform', name: 'shared', data: { token } });
    api.allow({ subject: serviceAccountUser('shop', 'app'), namespace: 'platform', resource: 'secrets', names: ['shared'] });

    const result = await podStore.fetch({ ref: 'platform/shared', spec: spec() }, podContext());

    expect(fields(result)).toEqual({ token: Buffer.from(token) });
    expect(result.version).toBe(version);
  });

  it('refuses a read the pod may not do (403), naming object and service account', async () => {
    api.putSecret({ namespace: 'platform', name: 'root-ca-key', data: { key: marker() } });

    const err = await expectFailure(podStore.fetch({ ref: 'platform/root-ca-key', spec: spec() }, podContext()), 'PermissionDenied');

    expect(err.message).toContain('Secret platform/root-ca-key');
    expect(err.message).toContain('service account shop/app');
    expect(err.message).toContain('Forbidden');
    expect(err.message).not.toMatch(/Bearer|eyJ/);
  });

  it('reports a missing object as NotFound', async () => {
    api.allow({ subject: serviceAccountUser('shop', 'app'), namespace: 'shop', resource: 'secrets', names: ['gone'] });

    const err = await expectFailure(podStore.fetch({ ref: 'gone', spec: spec() }, podContext()), 'NotFound');

    expect(err.message).toBe('Secret shop/gone not found (NotFound)');
  });

  it('returns Secret data byte-exact, all 256 byte values', async () => {
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const random = randomBytes(4096);
    api.putSecret({ namespace: 'shop', name: 'binary', data: { all, random, empty: Buffer.alloc(0) } });
    api.allow({ subject: serviceAccountUser('shop', 'app'), namespace: 'shop', resource: 'secrets', names: ['binary'] });

    const result = fields(await podStore.fetch({ ref: 'binary', spec: spec() }, podContext()));

    expect(Buffer.compare(result['all'] as Buffer, all)).toBe(0);
    expect(Buffer.compare(result['random'] as Buffer, random)).toBe(0);
    expect((result['empty'] as Buffer).length).toBe(0);
  });

  it('reads a ConfigMap with data and binaryData', async () => {
    const text = `${marker()}\nline two ✓`;
    const bytes = Buffer.concat([Buffer.from([0, 255, 128]), Buffer.from(marker())]);
    const version = api.putConfigMap({ namespace: 'shop', name: 'settings', data: { 'app.conf': text }, binaryData: { 'blob.bin': bytes } });
    api.allow({ subject: serviceAccountUser('shop', 'app'), namespace: 'shop', resource: 'configmaps', names: ['settings'] });

    const result = await podStore.fetch({ ref: 'settings', spec: spec('configmap') }, podContext());

    expect(fields(result)).toEqual({ 'app.conf': Buffer.from(text, 'utf8'), 'blob.bin': bytes });
    expect(result.version).toBe(version);
  });

  it('keeps the standard keys of typed Secrets', async () => {
    const [cert, key, dockerConfig] = [marker(), marker(), marker()];
    api.putSecret({ namespace: 'shop', name: 'tls', type: 'kubernetes.io/tls', data: { 'tls.crt': cert, 'tls.key': key } });
    api.putSecret({ namespace: 'shop', name: 'pull', type: 'kubernetes.io/dockerconfigjson', data: { '.dockerconfigjson': dockerConfig } });
    api.allow({ subject: serviceAccountUser('shop', 'app'), namespace: 'shop', resource: 'secrets', names: ['tls', 'pull'] });

    const tls = fields(await podStore.fetch({ ref: 'tls', spec: spec() }, podContext()));
    const pull = fields(await podStore.fetch({ ref: 'shop/pull', spec: spec() }, podContext()));

    expect(Object.keys(tls).sort()).toEqual(['tls.crt', 'tls.key']);
    expect(tls['tls.crt']).toEqual(Buffer.from(cert));
    expect(tls['tls.key']).toEqual(Buffer.from(key));
    expect(pull).toEqual({ '.dockerconfigjson': Buffer.from(dockerConfig) });
  });

  it('lets two service accounts see only what each may read', async () => {
    const [a, b] = [marker(), marker()];
    api.putSecret({ namespace: 'team', name: 'alpha', data: { v: a } });
    api.putSecret({ namespace: 'team', name: 'beta', data: { v: b } });
    api.allow({ subject: serviceAccountUser('team', 'alpha'), namespace: 'team', resource: 'secrets', names: ['alpha'] });
    api.allow({ subject: serviceAccountUser('team', 'beta'), namespace: 'team', resource: 'secrets', names: ['beta'] });
    const asAlpha = podContext({ namespace: 'team', serviceAccount: 'alpha' });
    const asBeta = podContext({ namespace: 'team', serviceAccount: 'beta' });

    expect(fields(await podStore.fetch({ ref: 'alpha', spec: spec() }, asAlpha))).toEqual({ v: Buffer.from(a) });
    expect(fields(await podStore.fetch({ ref: 'beta', spec: spec() }, asBeta))).toEqual({ v: Buffer.from(b) });
    const denied = await expectFailure(podStore.fetch({ ref: 'beta', spec: spec() }, asAlpha), 'PermissionDenied');
    expect(denied.message).toContain('service account team/alpha');
    await expectFailure(podStore.fetch({ ref: 'alpha', spec: spec() }, asBeta), 'PermissionDenied');
  });

  it('reuses one pooled connection for sequential reads', async () => {
    api.putSecret({ namespace: 'shop', name: 'pooled', data: { v: marker() } });
    api.allow({ subject: serviceAccountUser('shop', 'app'), namespace: 'shop', resource: 'secrets', names: ['pooled'] });
    const store = await createStore({ kubeconfig: 'anonymous.kubeconfig' });
    const before = api.connections();

    for (let i = 0; i < 5; i += 1) await store.fetch({ ref: 'pooled', spec: spec() }, podContext());

    expect(api.connections() - before).toBe(1);
  });
});

describe('kubernetes backend: tokens', () => {
  it('refuses an expired token before any request', async () => {
    const expired = api.issueToken({ namespace: 'shop', serviceAccount: 'app', expiresInSeconds: -60 });
    secretsSeen.push(expired.token);
    const tokens = new Map([['', { token: new Secret(expired.token), expiresAt: expired.expiresAt }]]);
    const before = requestCount();

    const err = await expectFailure(podStore.fetch({ ref: 'db', spec: spec() }, podContext({ tokens })), 'PermissionDenied');

    expect(err.message).toContain('expired');
    expect(requestCount()).toBe(before);
  });

  it('refuses a missing token, naming the audience to add to tokenRequests, before any request', async () => {
    const vaultAudienceStore = await createStore({ kubeconfig: 'anonymous.kubeconfig', audience: 'api-audience' });
    const before = requestCount();

    const err = await expectFailure(vaultAudienceStore.fetch({ ref: 'db', spec: spec() }, podContext()), 'PermissionDenied');

    expect(err.message).toContain('"api-audience"');
    expect(err.message).toContain('tokenRequests');
    expect(requestCount()).toBe(before);
  });

  it('maps a token the API server rejects (401) to PermissionDenied naming audience and service account', async () => {
    const foreign = api.issueToken({ namespace: 'shop', serviceAccount: 'app', audience: 'vault' });
    secretsSeen.push(foreign.token);
    const tokens = new Map([['', { token: new Secret(foreign.token), expiresAt: foreign.expiresAt }]]);

    const err = await expectFailure(podStore.fetch({ ref: 'db', spec: spec() }, podContext({ tokens })), 'PermissionDenied');

    expect(err.message).toContain('service account shop/app');
    expect(err.message).toContain('audience ""');
    expect(err.message).toContain('Unauthorized');
    expect(api.requests.at(-1)?.status).toBe(401);
  });

  it('reads as the pod even when the kubeconfig carries a more powerful client certificate', async () => {
    api.allow({ subject: 'cluster-admin', namespace: 'platform', resource: 'secrets' });
    const store = await createStore({ kubeconfig: 'admin-cert.kubeconfig' });

    await expectFailure(store.fetch({ ref: 'platform/root-ca-key', spec: spec() }, podContext()), 'PermissionDenied');

    expect(api.requests.at(-1)).toMatchObject({ user: serviceAccountUser('shop', 'app'), status: 403 });
  });
});

describe('kubernetes backend: identity provider', () => {
  it('is refused by checkStore unless access rules restrict namespaces', () => {
    const options = kubernetesBackend.options.parse({ identity: 'provider' });
    const problems = kubernetesBackend.checkStore!({ name: 'cluster', options, restrictsNamespaces: false });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^identity: /);
    expect(kubernetesBackend.checkStore!({ name: 'cluster', options, restrictsNamespaces: true })).toEqual([]);
    expect(kubernetesBackend.checkStore!({ name: 'cluster', options: kubernetesBackend.options.parse({}), restrictsNamespaces: false })).toEqual([]);
  });

  it('reads with the kubeconfig credentials of the chosen context, without a pod token', async () => {
    const value = marker();
    api.putSecret({ namespace: 'platform', name: 'provider-only', data: { value } });
    api.allow({ subject: 'usp-provider', namespace: 'platform', resource: 'secrets', names: ['provider-only'] });
    const store = await createStore({ identity: 'provider', kubeconfig: 'provider.kubeconfig', context: 'remote' }, true);

    const result = await store.fetch({ ref: 'platform/provider-only', spec: spec() }, podContext({ tokens: new Map() }));

    expect(fields(result)).toEqual({ value: Buffer.from(value) });
    expect(api.requests.at(-1)).toMatchObject({ user: 'usp-provider', status: 200 });
    const denied = await expectFailure(store.fetch({ ref: 'shop/db', spec: spec() }, podContext()), 'PermissionDenied');
    expect(denied.message).toContain('provider');
  });

  it('reads with a client certificate of the kubeconfig, from the pooled agent', async () => {
    const value = marker();
    api.putSecret({ namespace: 'platform', name: 'admin-only', data: { value } });
    api.allow({ subject: 'cluster-admin', namespace: 'platform', resource: 'secrets', names: ['admin-only'] });
    const store = await createStore({ identity: 'provider', kubeconfig: 'admin-cert.kubeconfig' }, true);

    const result = await store.fetch({ ref: 'platform/admin-only', spec: spec() }, podContext({ tokens: new Map() }));

    expect(fields(result)).toEqual({ value: Buffer.from(value) });
    expect(api.requests.at(-1)).toMatchObject({ user: 'cluster-admin', status: 200 });
  });

  it('reads with the token of a kubeconfig exec plugin, run by client-node\'s KubeConfig', async () => {
    const value = marker();
    api.putSecret({ namespace: 'platform', name: 'exec-only', data: { value } });
    api.allow({ subject: 'usp-provider', namespace: 'platform', resource: 'secrets', names: ['exec-only'] });
    const exec = await execPluginKubeconfig(join(dir, 'provider.kubeconfig'));
    secretsSeen.push(exec.token);
    await writeFile(join(dir, 'exec.kubeconfig'), exec.config);
    const store = await createStore({ identity: 'provider', kubeconfig: 'exec.kubeconfig' }, true);

    const result = await store.fetch({ ref: 'platform/exec-only', spec: spec() }, podContext({ tokens: new Map() }));

    expect(fields(result)).toEqual({ value: Buffer.from(value) });
    expect(api.requests.at(-1)).toMatchObject({ user: 'usp-provider', status: 200 });
  });

  it('refuses an unknown kubeconfig context at creation', async () => {
    const err = await expectFailure(createStore({ kubeconfig: 'provider.kubeconfig', context: 'nope' }), 'InvalidArgument');
    expect(err.message).toContain('"nope"');
  });
});

describe('kubernetes backend: transport and server faults', () => {
  // Retries belong to the shared store guard (test/provider/resilience.test.ts); the backend makes
  // one attempt and says whether another could help.
  it('reports a 429 as a transient Unavailable carrying its Retry-After, after one request', async () => {
    api.inject({ kind: 'status', status: 429, retryAfterSeconds: 7 });
    const before = requestCount();

    const err = await expectFailure(podStore.fetch({ ref: 'db', spec: spec() }, podContext()), 'Unavailable');

    expect(err.retryAfterSeconds).toBe(7);
    expect(err.transient).toBe(true);
    expect(requestCount() - before).toBe(1);
  });

  it('reports a 500 as a transient Unavailable naming the object, after one request', async () => {
    api.inject({ kind: 'status', status: 500 }, { times: 1 });
    const before = requestCount();

    const err = await expectFailure(podStore.fetch({ ref: 'db', spec: spec() }, podContext()), 'Unavailable');

    expect(err.message).toBe('the API server answered 500 (InternalError) for Secret shop/db');
    expect(err.transient).toBe(true);
    expect(requestCount() - before).toBe(1);
  });

  it('reports 403 and 404 as final answers, not worth retrying', async () => {
    const denied = await expectFailure(podStore.fetch({ ref: 'platform/root-ca-key', spec: spec() }, podContext()), 'PermissionDenied');
    const missing = await expectFailure(podStore.fetch({ ref: 'gone', spec: spec() }, podContext()), 'NotFound');
    expect(denied.transient).toBe(false);
    expect(missing.transient).toBe(false);
  });

  it('refuses an API server whose certificate the kubeconfig CA does not sign', async () => {
    const store = await createStore({ kubeconfig: 'wrong-ca.kubeconfig' });
    const before = requestCount();

    const err = await expectFailure(store.fetch({ ref: 'db', spec: spec() }, podContext()), 'Unavailable');

    expect(err.message).toMatch(/^TLS verification of the API server failed reading Secret shop\/db \([A-Z_]+\)$/);
    expect(err.transient).toBe(false);
    expect(requestCount()).toBe(before);
  });

  it('aborts the request when the Mount signal fires', async () => {
    api.inject({ kind: 'hang' });
    const controller = new AbortController();
    const started = Date.now();
    setTimeout(() => controller.abort(), 100);

    const err = await expectFailure(podStore.fetch({ ref: 'db', spec: spec() }, podContext({ signal: controller.signal })), 'DeadlineExceeded');

    expect(err.message).toContain('cancelled');
    // The store's own timeout is 10 s: ending well before it means the Mount's signal did it.
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('times out with DeadlineExceeded after the store timeout', async () => {
    const store = await createStore({ kubeconfig: 'anonymous.kubeconfig', timeout: '300ms' });
    api.inject({ kind: 'hang' });
    const started = Date.now();

    const err = await expectFailure(store.fetch({ ref: 'db', spec: spec() }, podContext()), 'DeadlineExceeded');

    expect(err.message).toContain('within 0.3s');
    expect(err.transient).toBe(true);
    // The server hangs for good: only the 300 ms store timeout can end the read (headroom for a busy machine).
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});

describe('kubernetes backend: plain http API server', () => {
  it('reads through a kubeconfig that skips TLS for an http server', async () => {
    const plain = await startKubernetesTestServer({ tls: false });
    try {
      const value = marker();
      plain.putSecret({ namespace: 'shop', name: 'db', data: { value } });
      plain.allow({ subject: serviceAccountUser('shop', 'app'), namespace: 'shop', resource: 'secrets' });
      await plain.writeKubeconfig(join(dir, 'plain.kubeconfig'));
      const store = await createStore({ kubeconfig: join(dir, 'plain.kubeconfig') });
      const { token, expiresAt } = plain.issueToken({ namespace: 'shop', serviceAccount: 'app' });
      secretsSeen.push(token);

      const result = await store.fetch({ ref: 'db', spec: spec() }, podContext({ tokens: new Map([['', { token: new Secret(token), expiresAt }]]) }));

      expect(fields(result)).toEqual({ value: Buffer.from(value) });
    } finally {
      await plain.close();
    }
  });
});

describe('kubernetes backend: answers of the wrong shape', () => {
  /** A plain http "API server" that answers every request 200 with `body`. */
  async function storeAnswering(body: string): Promise<{ store: StoreBackend<unknown>; close(): Promise<void> }> {
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(body);
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    const name = `shape-${randomUUID()}.kubeconfig`;
    await writeFile(join(dir, name), plainKubeconfig(`http://127.0.0.1:${(server.address() as AddressInfo).port}`));
    const store = await createStore({ kubeconfig: name });
    return { store, close: () => new Promise((done) => server.close(() => done())) };
  }

  it.each([
    ['a list', '[]', /malformed answer for Secret shop\/db \(a list, not an object\)/],
    ['null', 'null', /malformed answer for Secret shop\/db \(null, not an object\)/],
    ['metadata of the wrong type', '{"metadata":{"resourceVersion":7},"data":{}}', /malformed answer \(metadata.resourceVersion is a number, not a string\)/],
  ])('refuses a read answered with %s as a malformed answer', async (_what, body, message) => {
    const { store, close } = await storeAnswering(body);
    try {
      const err = await expectFailure(store.fetch({ ref: 'db', spec: spec() }, podContext()), 'Unavailable');
      expect(err.message).toMatch(message);
    } finally {
      await close();
    }
  });

  it.each([
    ['items that are not a list', '{"items":"x"}', /listing the Secrets of namespace shop \(items is a string, not a list\)/],
    ['no items', '{"metadata":{}}', /listing the Secrets of namespace shop \(items is missing\)/],
    ['a continue token that is not a string', '{"items":[],"metadata":{"continue":5}}', /metadata.continue is a number, not a string/],
  ])('refuses a listing answered with %s', async (_what, body, message) => {
    const { store, close } = await storeAnswering(body);
    try {
      const err = await expectFailure(store.list!({ prefix: 'a', recursive: false, labels: {}, spec: spec() }, podContext()), 'Unavailable');
      expect(err.message).toMatch(message);
    } finally {
      await close();
    }
  });
});

describe('kubernetes backend: refs and object fields', () => {
  it.each(['Upper', 'a/b/c', '/name', 'ns/', 'bad_ns/name', `${'a'.repeat(64)}/name`, 'ns/-name'])(
    'refuses ref %j before any request',
    async (ref) => {
      const before = requestCount();
      await expectFailure(podStore.fetch({ ref, spec: spec() }, podContext()), 'InvalidArgument');
      expect(requestCount()).toBe(before);
    },
  );

  it('refuses a pinned version', async () => {
    await expectFailure(podStore.fetch({ ref: 'db', version: '7', spec: spec() }, podContext()), 'InvalidArgument');
  });

  it('parses kind with secret as default and names unknown fields', () => {
    expect(parseOrThrow(kubernetesObjectFields, {}, 'objects[0]')).toEqual({ kind: 'secret' });
    expect(parseOrThrow(kubernetesObjectFields, { kind: 'configmap' }, 'objects[0]')).toEqual({ kind: 'configmap' });
    expect(() => parseOrThrow(kubernetesObjectFields, { kind: 'pod' }, 'objects[1]')).toThrow(/objects\[1\]\.kind/);
    expect(() => parseOrThrow(kubernetesObjectFields, { namespace: 'x' }, 'objects[2]')).toThrow(/objects\[2\]\.namespace: unknown field/);
  });

  it('validates store options strictly', () => {
    expect(kubernetesBackend.options.parse({})).toEqual({ identity: 'pod', audience: '', timeout: 10_000 });
    const contextOnly = kubernetesBackend.options.parse({ context: 'x' });
    expect(kubernetesBackend.checkStore?.({ name: 'k', options: contextOnly, restrictsNamespaces: true })).toEqual(['context: context needs kubeconfig']);
    expect(kubernetesBackend.options.safeParse({ token: 'x' }).success).toBe(false);
    expect(kubernetesBackend.options.parse({ timeout: '1.5s' }).timeout).toBe(1500);
  });
});

describe('kubernetes backend: logs', () => {
  it('logs reads and failures at debug, bound to the store once, without tokens or values', async () => {
    const lines: string[] = [];
    // Bound as stores/stores.ts binds it: the store must not add `store` again.
    const captured = pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) }).child({ store: 'cluster' });
    const value = marker();
    api.putSecret({ namespace: 'shop', name: 'logged', data: { value } });
    api.allow({ subject: serviceAccountUser('shop', 'app'), namespace: 'shop', resource: 'secrets', names: ['logged'] });
    const store = await createStore({ kubeconfig: 'anonymous.kubeconfig' }, false, captured);

    await store.fetch({ ref: 'logged', spec: spec() }, podContext());
    await expectFailure(store.fetch({ ref: 'platform/root-ca-key', spec: spec() }, podContext()), 'PermissionDenied');

    const read = lines.find((l) => l.includes('"msg":"read a Kubernetes object"'));
    const failed = lines.find((l) => l.includes('"msg":"reading a Kubernetes object failed"'));
    expect(read).toContain('"object":"Secret shop/logged"');
    expect(failed).toContain('"code":"PermissionDenied"');
    for (const line of lines) {
      expect(line.match(/"store":/g), line).toHaveLength(1);
      expect(line).not.toMatch(/Bearer|eyJ/);
      for (const secret of secretsSeen) expect(line).not.toContain(secret);
    }
  });

  it('warns when an error answer is not a Kubernetes Status (a proxy in front, under a path), keeping its Retry-After', async () => {
    const lines: string[] = [];
    const captured = pino({ level: 'warn' }, { write: (line: string) => void lines.push(line) }).child({ store: 'cluster' });
    const paths: string[] = [];
    const proxy = createServer((req, res) => {
      paths.push(req.url ?? '');
      res.writeHead(502, { 'content-type': 'text/html', 'retry-after': '30' });
      res.end('<html><body>502 Bad Gateway</body></html>');
    });
    await new Promise<void>((done) => proxy.listen(0, '127.0.0.1', done));
    try {
      const { port } = proxy.address() as AddressInfo;
      await writeFile(join(dir, 'proxy.kubeconfig'), plainKubeconfig(`http://127.0.0.1:${port}/k8s/clusters/c-1/`));
      const store = await createStore({ kubeconfig: 'proxy.kubeconfig' }, false, captured);

      const err = await expectFailure(store.fetch({ ref: 'db', spec: spec() }, podContext()), 'Unavailable');

      expect(err.message).toBe('the API server answered 502 (BadGateway) for Secret shop/db');
      expect(err.retryAfterSeconds).toBe(30);
      expect(paths).toEqual(['/k8s/clusters/c-1/api/v1/namespaces/shop/secrets/db']);
      const warning = lines.find((l) => l.includes('without a Kubernetes Status reason'));
      expect(warning).toContain('"status":502');
      expect(warning?.match(/"store":/g)).toHaveLength(1);
    } finally {
      proxy.closeAllConnections();
      await new Promise((done) => proxy.close(done));
    }
  });
});

function plainKubeconfig(server: string): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'proxied', cluster: { server, 'insecure-skip-tls-verify': true } }],
    users: [{ name: 'nobody', user: {} }],
    contexts: [{ name: 'proxied', context: { cluster: 'proxied', user: 'nobody' } }],
    'current-context': 'proxied',
  });
}
