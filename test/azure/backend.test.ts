import { createPublicKey, X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { azureKeyVaultBackend } from '../../src/backends/azure/index.js';
import { checkAzureStore, endpointsOf } from '../../src/backends/azure/options.js';
import type { Content, FetchContext, StoreBackend } from '../../src/backends/types.js';
import { ProviderError } from '../../src/errors.js';
import { createTokenSource, type PodToken } from '../../src/identity.js';
import { parseOrThrow } from '../../src/schema.js';
import { Secret } from '../../src/secret.js';
import { createTestChain, startAzureTestServer, workloadIdentityAudience, type AzureTestServer, type TestChain } from '../servers/azure.js';

const shopApp = '11111111-1111-4111-8111-111111111111';
const shopWorker = '22222222-2222-4222-8222-222222222222';
const pemBlocks = (text: string) => [...text.matchAll(/-----BEGIN ([A-Z ]+)-----/g)].map((m) => m[1]);
const subjects = (text: string) => [...text.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g)].map((m) => new X509Certificate(m[0]).subject);
const bytes = (content: Content) => (content.kind === 'bytes' ? content.data.toString('utf8') : JSON.stringify(content.fields));

describe('the azure-key-vault backend', () => {
  let azure: AzureTestServer;
  let dir: string;
  let store: StoreBackend;
  let chain: TestChain;
  let clock = Date.now();
  const now = () => clock;

  const create = async (extra: Record<string, unknown> = {}) => {
    const raw = { vaultUrl: azure.url, authorityHost: azure.url, tenantId: azure.tenantId, clientId: shopApp, tls: { caFile: 'ca.pem' }, ...extra };
    const options = parseOrThrow(azureKeyVaultBackend.options, raw, 'stores[0]');
    return azureKeyVaultBackend.create({ name: 'azure', options, restrictsNamespaces: false }, { logger: pino({ level: 'silent' }), baseDir: dir, now });
  };
  const ctx = (serviceAccount = 'app', role?: string, namespace = 'shop'): FetchContext => {
    const tokens = new Map<string, PodToken>([[workloadIdentityAudience, { token: new Secret(azure.issuePodToken({ namespace, serviceAccount })) }]]);
    const source = createTokenSource(tokens, Date.now);
    return {
      tokenFor: (a) => source.tokenFor(a),
      identity: { namespace, serviceAccount, podName: `${serviceAccount}-0`, podUid: 'uid' },
      parameters: role === undefined ? {} : { role },
      secrets: new Map(),
      signal: new AbortController().signal,
    };
  };
  const fetch = (ref: string, fields: Record<string, unknown> = {}, context = ctx(), version?: string, target = store) =>
    target.fetch({ ref, ...(version ? { version } : {}), spec: parseOrThrow(azureKeyVaultBackend.objectFields, fields, 'objects[0]') }, context);
  const failure = (promise: Promise<unknown>) => promise.then(() => expect.fail('the fetch succeeded'), (err: unknown) => err as ProviderError);

  beforeAll(async () => {
    azure = await startAzureTestServer({ now: () => clock });
    dir = await mkdtemp(join(tmpdir(), 'usp-azure-'));
    await writeFile(join(dir, 'ca.pem'), azure.ca.cert);
    azure.federate({ clientId: shopApp, namespace: 'shop', serviceAccount: 'app' });
    azure.federate({ clientId: shopWorker, namespace: 'shop', serviceAccount: 'worker' });
    azure.grant(shopApp, ['secrets/*', 'keys/*', 'certificates/*']);
    azure.grant(shopWorker, ['secrets/worker-*']);
    azure.setSecret('db', 'db-value');
    azure.setSecret('worker-db', 'worker-value');
    azure.setSecret('off', 'off-value', { enabled: false });
    chain = await createTestChain();
    azure.addCertificate('web', chain, { bagOrder: [2, 0, 3, 1] });
    azure.addCertificate('web-pem', chain, { contentType: 'application/x-pem-file', bagOrder: [3, 1, 0, 2] });
    azure.addCertificate('web-openssl', chain, { emptyPassword: 'nul' });
    store = await create();
  });
  afterAll(async () => {
    await store?.close();
    await azure?.close();
    await rm(dir, { recursive: true, force: true });
  });
  beforeEach(() => azure.faults.clear());

  describe('options', () => {
    it('derives the vault URL, authority and scope from the cloud', () => {
      const parse = (raw: Record<string, unknown>) => parseOrThrow(azureKeyVaultBackend.options, { tenantId: 't', clientId: 'c', ...raw }, 'stores[0]');
      expect(endpointsOf(parse({ vaultName: 'kv-shop' }))).toEqual({ vaultUrl: 'https://kv-shop.vault.azure.net', authorityHost: 'https://login.microsoftonline.com', scope: 'https://vault.azure.net/.default' });
      expect(endpointsOf(parse({ vaultName: 'kv-shop', cloud: 'usgov' }))).toMatchObject({ vaultUrl: 'https://kv-shop.vault.usgovcloudapi.net', authorityHost: 'https://login.microsoftonline.us', scope: 'https://vault.usgovcloudapi.net/.default' });
      expect(endpointsOf(parse({ vaultName: 'kv-shop', cloud: 'china' }))).toMatchObject({ vaultUrl: 'https://kv-shop.vault.azure.cn', authorityHost: 'https://login.chinacloudapi.cn', scope: 'https://vault.azure.cn/.default' });
      const settings = (raw: Record<string, unknown>) => ({ name: 's', restrictsNamespaces: false, options: parseOrThrow(azureKeyVaultBackend.options, { tenantId: 't', ...raw }, 'stores[0]') });
      expect(checkAzureStore(settings({ vaultName: 'kv-shop', vaultUrl: 'https://x.vault.azure.net' }))).toEqual(expect.arrayContaining([expect.stringMatching(/^vaultUrl: set either/)]));
      expect(checkAzureStore(settings({ vaultName: 'kv-shop' }))).toEqual([expect.stringMatching(/^clientId: /)]);
    });

    it('names the object field when a format does not fit the kind', () => {
      expect(() => parseOrThrow(azureKeyVaultBackend.objectFields, { kind: 'cert', format: 'jwk' }, 'objects[1]')).toThrow(/objects\[1\]\.format: format "jwk" does not apply to kind cert/);
    });
  });

  describe('tokens', () => {
    it('serves a burst of Mounts of one service account with one exchange, then reuses the token', async () => {
      const fresh = await create();
      const before = azure.counters.tokens;
      await Promise.all(Array.from({ length: 10 }, () => fetch('db', {}, ctx(), undefined, fresh)));
      await fetch('db', {}, ctx(), undefined, fresh);
      expect(azure.counters.tokens - before).toBe(1);
      await fresh.close();
    });

    it('never shares a token across service accounts: the second one exchanges as its own application', async () => {
      const fresh = await create({ clientId: undefined, allowedClientIds: [shopApp, shopWorker] });
      const before = azure.tokenRequests.length;
      expect(bytes((await fetch('db', {}, ctx('app', shopApp), undefined, fresh)).content.reveal())).toBe('db-value');
      expect(bytes((await fetch('worker-db', {}, ctx('worker', shopWorker), undefined, fresh)).content.reveal())).toBe('worker-value');
      expect(azure.tokenRequests.slice(before)).toEqual([
        { clientId: shopApp, subject: 'system:serviceaccount:shop:app' },
        { clientId: shopWorker, subject: 'system:serviceaccount:shop:worker' },
      ]);
      // The worker's application may not read db: had it been handed app's token, it could.
      expect((await failure(fetch('db', {}, ctx('worker', shopWorker), undefined, fresh))).code).toBe('PermissionDenied');
      await fresh.close();
    });

    it('exchanges per service account even for one application federated with both', async () => {
      azure.federate({ clientId: shopApp, namespace: 'shop', serviceAccount: 'batch' });
      const fresh = await create();
      const before = azure.tokenRequests.length;
      await fetch('db', {}, ctx('app'), undefined, fresh);
      await fetch('db', {}, ctx('batch'), undefined, fresh);
      await fetch('db', {}, ctx('app'), undefined, fresh);
      expect(azure.tokenRequests.slice(before).map((r) => r.subject)).toEqual(['system:serviceaccount:shop:app', 'system:serviceaccount:shop:batch']);
      await fresh.close();
    });

    it('exchanges again shortly before the token expires', async () => {
      const fresh = await create();
      azure.setTokenLifetime(600);
      const before = azure.counters.tokens;
      await fetch('db', {}, ctx(), undefined, fresh);
      clock += 9 * 60_000;
      await fetch('db', {}, ctx(), undefined, fresh);
      clock += 2 * 60_000;
      azure.setTokenLifetime(3599);
      expect(azure.counters.tokens - before).toBe(2);
      await fresh.close();
    });

    it('lets a class name a client id only where allowedClientIds matches the pod', async () => {
      const fresh = await create({ allowedClientIds: ['{namespace}-*'] });
      const refused = await failure(fetch('db', {}, ctx('app', shopWorker), undefined, fresh));
      expect(refused.code).toBe('PermissionDenied');
      expect(refused.message).toContain('allowedClientIds');
      await fresh.close();
    });

    it('explains an AADSTS70021 federation miss with the subject and the audience', async () => {
      const error = await failure(fetch('db', {}, ctx('intruder')));
      expect(error.code).toBe('PermissionDenied');
      expect(error.message).toContain('AADSTS70021');
      expect(error.message).toContain('"system:serviceaccount:shop:intruder"');
      expect(error.message).toContain(`"${workloadIdentityAudience}"`);
      expect(error.message).toContain('issuer "https://oidc.prod-aks.azure.com/usp-test-cluster/"');
    });
  });

  describe('errors', () => {
    it('names RBAC, disabled secrets and missing objects', async () => {
      const rbac = await failure(fetch('db', {}, ctx('worker', shopWorker), undefined, await create({ allowedClientIds: [shopWorker] })));
      expect([rbac.code, rbac.message]).toEqual(['PermissionDenied', expect.stringContaining('ForbiddenByRbac')]);
      const disabled = await failure(fetch('off'));
      expect([disabled.code, disabled.message]).toEqual(['PermissionDenied', expect.stringContaining('is disabled')]);
      const missing = await failure(fetch('nope'));
      expect([missing.code, missing.message]).toEqual(['NotFound', expect.stringContaining('SecretNotFound')]);
    });

    it('passes Retry-After of a 429 to the guard, and marks 5xx transient', async () => {
      azure.throttle(1, 7);
      const throttled = await failure(fetch('db'));
      expect([throttled.code, throttled.transient, throttled.retryAfterSeconds]).toEqual(['Unavailable', true, 7]);
      azure.inject({ kind: 'status', status: 503 }, { match: '/secrets/' });
      const down = await failure(fetch('db'));
      expect([down.code, down.transient]).toEqual(['Unavailable', true]);
    });

    it('checks refs and versions before calling', async () => {
      expect((await failure(fetch('a/b'))).message).toMatch(/ref must be a Key Vault object name/);
      expect((await failure(fetch('db', {}, ctx(), '../x'))).message).toMatch(/version must be/);
    });
  });

  describe('kinds and formats', () => {
    it('returns Key Vault\'s version id and a pinned version', async () => {
      const v1 = azure.setSecret('rotating', 'one');
      const v2 = azure.setSecret('rotating', 'two');
      expect(await fetch('rotating')).toMatchObject({ version: v2 });
      const pinned = await fetch('rotating', {}, ctx(), v1);
      expect([bytes(pinned.content.reveal()), pinned.version]).toEqual(['one', v1]);
    });

    it('writes a certificate-backed secret as PKCS#8 key, then leaf, intermediate, root', async () => {
      const expected = chain.certificates.map((c) => new X509Certificate(c).subject);
      for (const name of ['web', 'web-pem', 'web-openssl']) {
        const text = bytes((await fetch(name)).content.reveal());
        expect(pemBlocks(text)).toEqual(['PRIVATE KEY', 'CERTIFICATE', 'CERTIFICATE', 'CERTIFICATE']);
        expect(subjects(text)).toEqual(expected);
      }
    });

    it('gives the PFX bytes, or the pair of files', async () => {
      const pfx = (await fetch('web', { format: 'pfx' })).content.reveal();
      expect(pfx.kind === 'bytes' && pfx.data[0]).toBe(0x30);
      const pair = (await fetch('web', { format: 'pem-pair' })).content.reveal();
      if (pair.kind !== 'fields') throw new Error('expected fields');
      expect(pemBlocks(String(pair.fields['key']))).toEqual(['PRIVATE KEY']);
      expect(subjects(String(pair.fields['crt']))).toHaveLength(3);
      expect((await failure(fetch('db', { format: 'pfx' }))).code).toBe('InvalidArgument');
    });

    it('gives a key as SPKI PEM or as its public JWK, and a certificate as the leaf PEM', async () => {
      const spki = bytes((await fetch('web', { kind: 'key' })).content.reveal());
      expect(createPublicKey(spki).export({ format: 'jwk' })).toMatchObject({ kty: 'RSA' });
      const jwk = JSON.parse(bytes((await fetch('web', { kind: 'key', format: 'jwk' })).content.reveal())) as Record<string, unknown>;
      expect(Object.keys(jwk).sort()).toEqual(['e', 'kid', 'kty', 'n']);
      const cert = bytes((await fetch('web', { kind: 'cert' })).content.reveal());
      expect(subjects(cert)).toEqual([new X509Certificate(chain.certificates[0]!).subject]);
    });
  });
});
