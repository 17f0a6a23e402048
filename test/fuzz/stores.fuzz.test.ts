/**
 * Property-based Mounts against the cloud stores: the driver's Mount (request parsing, then the
 * pipeline) in process, over real HTTPS to the protocol-faithful Azure (Entra ID + Key Vault) and
 * Google (STS + IAM credentials + Secret Manager) test servers, each started once for the file.
 *
 * Each case mixes hostile class input (refs naming other projects, locations and vault hosts,
 * versions, Azure `kind`/`format`, GCP `serviceAccount`, the `role` parameter), the pod's tokens
 * (valid, expired, foreign, garbage, missing), at times one armed server fault, and store-side
 * values (binary, huge, JSON, PEM, broken certificates). The invariants are the harness's
 * (./store-harness.ts): a volume the driver accepts or a clean ProviderError that is not Internal,
 * and no stored value or token in a message, log line, object version or metric.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCanaries } from '../helpers/canary.js';
import { providerConfigYaml } from '../helpers/yaml.js';
import { createTestChain, startAzureTestServer, workloadIdentityAudience, type AzureTestServer } from '../servers/azure.js';
import { startGcpTestServer, type GcpTestServer } from '../servers/gcp.js';
import {
  anyText,
  attributesOf,
  binaryOf,
  faultOn,
  jsonish,
  maybe,
  mostly,
  objectEntry,
  objectsYaml,
  params,
  pemText,
  podOf,
  roleOf,
  runs,
  startStoreHarness,
  storeOf,
  tokenChoice,
  tokenEntry,
  unusualStatusOn,
  type IssuedTokens,
  type Pairs,
  type StoreHarness,
} from './store-harness.js';

// ---------------------------------------------------------------------------------------------
// Secrets: every stored value and pod token is a marker registered with the suite-wide hygiene
// scan (few markers: the scan compares each with every captured text).

const canaries = createCanaries();
const v = {
  azurePlain: canaries.next('az-plain'),
  azureUser: canaries.next('az-user'),
  azurePass: canaries.next('az-pass'),
  azureProto: canaries.next('az-proto'),
  azureBin: canaries.next('az-bin'),
  azureHuge: canaries.next('az-huge'),
  azureUnicode: canaries.next('az-unicode'),
  azurePem: canaries.next('az-pem'),
  azurePfx: canaries.next('az-pfx'),
  azureOld: canaries.next('az-old'),
  azureOff: canaries.next('az-off'),
  azureBilling: canaries.next('az-billing'),
  gcpUser: canaries.next('gcp-user'),
  gcpPass: canaries.next('gcp-pass'),
  gcpProto: canaries.next('gcp-proto'),
  gcpBin: canaries.next('gcp-bin'),
  gcpHuge: canaries.next('gcp-huge'),
  gcpPem: canaries.next('gcp-pem'),
  gcpPlain: canaries.next('gcp-plain'),
  gcpV1: canaries.next('gcp-v1'),
  gcpV2: canaries.next('gcp-v2'),
  gcpV3: canaries.next('gcp-v3'),
  gcpRegional: canaries.next('gcp-regional'),
  gcpBilling: canaries.next('gcp-billing'),
  garbageToken: canaries.next('garbage-token'),
};
const jsonValue = (user: string, pass: string, proto: string) =>
  `{"username":${JSON.stringify(user)},"password":${JSON.stringify(pass)},"deep":{"list":[1,${JSON.stringify(pass)}]},` +
  `"__proto__":{"polluted":${JSON.stringify(proto)}},"constructor":{"prototype":{"polluted":${JSON.stringify(proto)}}},"a/b":"x","..":"y","":"z","n":1}`;
const azureBinary = binaryOf(v.azureBin);
const gcpBinary = binaryOf(v.gcpBin);
// Encoded forms are secret too: a message quoting the base64 text leaks the value.
canaries.add(azureBinary.toString('base64'), Buffer.from(v.azurePem).toString('base64'), Buffer.from(v.azurePfx).toString('base64'), Buffer.from(v.gcpPem).toString('base64'));

// ---------------------------------------------------------------------------------------------
// The servers and what they hold.

const azureClient = '5c0e7f3a-9d1b-4a6e-8f2c-7b3d9e1a0c4f';
const azureOtherClient = '00000000-0000-4000-8000-00000000000b';
const gcpReader = 'shop-reader@shop-prod.iam.gserviceaccount.com';
const pods = [
  { namespace: 'shop', serviceAccount: 'app' },
  { namespace: 'shop', serviceAccount: 'worker' },
  { namespace: 'team-a', serviceAccount: 'app' },
  { namespace: 'shop', serviceAccount: 'stranger' },
] as const;
/** Pod tokens issued once, per known pod. */
const azureTokens: IssuedTokens[] = [];
const gcpTokens: IssuedTokens[] = [];

let azure: AzureTestServer;
let gcp: GcpTestServer;
let azureVersions: { old: string; latest: string; off: string; web: string };
let h: StoreHarness;

async function seedAzure(): Promise<void> {
  azure.federate({ clientId: azureClient, namespace: 'shop', serviceAccount: 'app' });
  azure.federate({ clientId: azureClient, namespace: 'shop', serviceAccount: 'worker' });
  azure.federate({ clientId: azureClient, namespace: 'team-a', serviceAccount: 'app' });
  azure.federate({ clientId: 'shop-reader', namespace: 'shop', serviceAccount: 'app' });
  azure.grant(azureClient, ['secrets/shop-*', 'keys/shop-*', 'certificates/shop-*']);
  azure.grant('shop-reader', ['secrets/shop-db']);
  // Short-lived access tokens, so that exchanges (and the pod tokens they present) keep happening.
  azure.setTokenLifetime(1);
  const old = azure.setSecret('shop-db', v.azureOld);
  const latest = azure.setSecret('shop-db', v.azurePlain);
  azure.setSecret('shop-json', jsonValue(v.azureUser, v.azurePass, v.azureProto), { contentType: 'application/json' });
  azure.setSecret('shop-bin', azureBinary.toString('base64'));
  azure.setSecret('shop-huge', `${'h'.repeat(24_000)}${v.azureHuge}`);
  azure.setSecret('shop-unicode', `${v.azureUnicode}\u0000\u202e\ud83d\ude00\r\n\t`);
  azure.setSecret('shop-pem-bad', pemText(v.azurePem), { contentType: 'application/x-pem-file' });
  azure.setSecret('shop-pfx-bad', Buffer.from(v.azurePfx).toString('base64'), { contentType: 'application/x-pkcs12' });
  azure.setSecret('shop-pfx-text', `${v.azurePfx} is not base64!`, { contentType: 'application/x-pkcs12' });
  const off = azure.setSecret('shop-off', v.azureOff, { enabled: false });
  azure.setSecret(`shop-${'l'.repeat(122)}`, v.azurePlain);
  azure.setSecret('billing-db', v.azureBilling);
  const chain = await createTestChain();
  // The private key is a secret: its base64 lines are markers.
  canaries.add(...chain.key.split('\n').filter((line) => line.length >= 40 && !line.startsWith('-----')));
  const web = azure.addCertificate('shop-web', chain);
  azure.setKey('shop-key', chain.key);
  azureVersions = { old, latest, off, web };
  for (const pod of pods) {
    const issue = (o: { audience?: string; ttlSeconds?: number; serviceAccount?: string } = {}) =>
      azure.issuePodToken({ namespace: pod.namespace, serviceAccount: o.serviceAccount ?? pod.serviceAccount, ...o });
    azureTokens.push({
      valid: issue(),
      expiredJwt: issue({ ttlSeconds: -60 }),
      otherPod: issue({ serviceAccount: 'intruder' }),
      wrongAudience: issue({ audience: 'api://other' }),
    });
  }
}

function seedGcp(): void {
  gcp.addVersion('db', jsonValue(v.gcpUser, v.gcpPass, v.gcpProto));
  gcp.addVersion('blob', gcpBinary);
  gcp.addVersion('huge', Buffer.concat([Buffer.alloc(64 * 1024 - 100, 'g'), Buffer.from(v.gcpHuge)]));
  gcp.addVersion('pem', pemText(v.gcpPem));
  gcp.addVersion('plain', v.gcpPlain);
  for (const value of [v.gcpV1, v.gcpV2, v.gcpV3]) gcp.addVersion('multi', value);
  gcp.setAlias('multi', 'stable', 1);
  gcp.setState('multi', 2, 'DISABLED');
  gcp.setState('multi', 3, 'DESTROYED');
  gcp.addVersion('regional', v.gcpRegional, { location: 'europe-west1' });
  gcp.addVersion('billing', v.gcpBilling);
  for (const pod of pods.slice(0, 3)) {
    const member = gcp.federatedMember(pod.namespace, pod.serviceAccount);
    for (const secret of ['db', 'blob', 'huge', 'pem', 'plain', 'multi', 'gone']) gcp.grantAccess(member, secret);
    gcp.grantTokenCreator(member, gcpReader);
  }
  gcp.addServiceAccount(gcpReader);
  gcp.grantAccess(`serviceAccount:${gcpReader}`, 'db');
  gcp.grantAccess(`serviceAccount:${gcpReader}`, 'regional', { location: 'europe-west1' });
  for (const pod of pods) {
    const issue = (o: { audience?: string; ttlSeconds?: number; serviceAccount?: string } = {}) =>
      gcp.issuePodToken({ namespace: pod.namespace, serviceAccount: o.serviceAccount ?? pod.serviceAccount, ...o }).token;
    gcpTokens.push({
      valid: issue(),
      expiredJwt: issue({ ttlSeconds: -60 }),
      otherPod: issue({ serviceAccount: 'intruder' }),
      wrongAudience: issue({ audience: 'https://example.com/other' }),
    });
  }
}

function configText(): string {
  const guard = { retry: { attempts: 2, baseDelay: '1ms', maxDelay: '5ms' }, breaker: { failures: 1_000_000 }, timeout: '3s' };
  const azureCommon = { backend: 'azure-key-vault', vaultUrl: azure.url, authorityHost: azure.url, tenantId: azure.tenantId, tls: { caFile: 'azure-ca.pem' }, ...guard };
  const gcpEndpoints = { sts: gcp.url, iamCredentials: gcp.url, secretManager: gcp.url };
  const gcpCommon = { backend: 'gcp-secret-manager', audience: gcp.poolAudience, endpoints: gcpEndpoints, tls: { caFile: 'gcp-ca.pem' }, ...guard };
  return providerConfigYaml({
    defaultStore: 'azure',
    versionKey: 'stores-fuzz-version-key-0123456789',
    limits: { mountTimeout: '5s' },
    stores: [
      { name: 'azure', ...azureCommon, clientId: azureClient, allowedClientIds: ['{namespace}-*', azureOtherClient], cache: { ttl: 0 } },
      { name: 'azure-cached', ...azureCommon, clientId: azureClient },
      { name: 'azure-roles', ...azureCommon, allowedClientIds: ['{namespace}-reader', '*-x'], cache: { ttl: 0 } },
      {
        name: 'gcp',
        ...gcpCommon,
        project: gcp.projectId,
        serviceAccountPattern: '{namespace}-*@shop-prod.iam.gserviceaccount.com',
        cache: { ttl: 0 },
      },
      { name: 'gcp-eu', ...gcpCommon, project: gcp.projectId, location: 'europe-west1', serviceAccount: '{namespace}-reader@shop-prod.iam.gserviceaccount.com', cache: { ttl: 0 } },
      { name: 'gcp-bare', ...gcpCommon },
    ],
  });
}

beforeAll(async () => {
  [azure, gcp] = await Promise.all([startAzureTestServer(), startGcpTestServer({ federatedTokenSeconds: 2 })]);
  await seedAzure();
  seedGcp();
  canaries.add(...[...azureTokens, ...gcpTokens].flatMap((t) => Object.values(t)));
  const dir = await mkdtemp(join(tmpdir(), 'usp-stores-fuzz-'));
  await writeFile(join(dir, 'azure-ca.pem'), azure.ca.cert);
  await writeFile(join(dir, 'gcp-ca.pem'), gcp.ca.cert);
  h = await startStoreHarness({ config: configText(), dir, canaries, injectors: { azure: azure.faults, gcp: gcp.faults }, name: 'stores fuzz' });
}, 60_000);

afterAll(async () => {
  // Google's access tokens are known only now: all checked, a few registered for the suite-wide
  // scan (which compares every marker with every captured text, so thousands would slow it down).
  canaries.add(...(gcp?.issuedTokens ?? []).slice(0, 20));
  await h?.finish({ tokens: gcp?.issuedTokens ?? [], closeServers: async () => void (await Promise.all([azure?.close(), gcp?.close()])) });
});

// ---------------------------------------------------------------------------------------------
// Azure Key Vault: names, versions, kind and format.

const azureName = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.constantFrom(
      'shop-db', 'shop-db', 'shop-json', 'shop-bin', 'shop-huge', 'shop-unicode', 'shop-pem-bad', 'shop-pfx-bad', 'shop-pfx-text',
      'shop-web', 'shop-key', 'shop-off', 'billing-db', 'shop-none', `shop-${'l'.repeat(122)}`, 'SHOP-DB',
    ),
  },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      'shop/db', '../shop-db', 'shop-db/', 'shop%2Ddb', 'shop-db?api-version=1.0', 'shop-db#x', 'shop db', 'shop_db', '', 'a'.repeat(128), 'shop-db\n',
      'shop-db\u0000', '\u017fhop-db', 'https://other.vault.azure.net/secrets/shop-db', '//evil.example/secrets/shop-db', 'secrets/shop-db',
      'shop-db/0123456789abcdef0123456789abcdef', '%2e%2e', '..', '.', '-', 'shop-\ud800', `shop-${'\u20ac'.repeat(200)}`, 'x'.repeat(10_000),
    ),
  },
  { weight: 1, arbitrary: anyText },
);
const azureVersion = (): fc.Arbitrary<string | undefined> =>
  maybe(
    fc.oneof(
      fc.constantFrom(azureVersions.old, azureVersions.latest, azureVersions.off, azureVersions.web, azureVersions.old.toUpperCase()),
      fc.constantFrom('', 'latest', '0'.repeat(32), 'g'.repeat(32), 'a'.repeat(65), '../x', '%2F', '1', 'ab/cd', `${azureVersions.old}?x=1`),
      anyText,
    ),
    3,
  );
/** Known items, with fields that fit them: these reach Key Vault. */
const azurePlausible = (): fc.Arbitrary<Pairs> =>
  fc.oneof(
    fc.constantFrom<Pairs>(
      [['ref', 'shop-db']],
      [['ref', 'shop-db'], ['version', azureVersions.old]],
      [['ref', 'shop-db'], ['version', azureVersions.off]],
      [['ref', 'shop-off']],
      [['ref', 'shop-json'], ['key', 'password']],
      [['ref', 'shop-json'], ['select', 'deep.list[1]']],
      [['ref', 'shop-json'], ['expand', 'keys']],
      [['ref', 'shop-bin'], ['decode', 'base64']],
      [['ref', 'shop-huge']],
      [['ref', 'shop-unicode']],
      [['ref', 'shop-pem-bad']],
      [['ref', 'shop-pem-bad'], ['format', 'pem-pair'], ['key', 'key']],
      [['ref', 'shop-pfx-bad']],
      [['ref', 'shop-pfx-bad'], ['format', 'pfx']],
      [['ref', 'shop-pfx-text']],
      [['ref', 'shop-web']],
      [['ref', 'shop-web'], ['format', 'pfx']],
      [['ref', 'shop-web'], ['format', 'pem-pair'], ['key', 'crt']],
      [['ref', 'shop-web'], ['kind', 'cert']],
      [['ref', 'shop-web'], ['kind', 'key'], ['format', 'jwk']],
      [['ref', 'shop-key'], ['kind', 'key']],
      [['ref', 'shop-db'], ['kind', 'key']],
      [['ref', 'billing-db']],
      [['ref', 'shop-none']],
      [['ref', 'shop-none'], ['optional', true]],
      [['ref', `shop-${'l'.repeat(122)}`]],
    ),
    azureName.map((ref): Pairs => [['ref', ref]]),
  );
/** Every field hostile at once: name, version, kind, format, the key of a pair. */
const azureHostile = (): fc.Arbitrary<Pairs> =>
  fc
    .record({
      ref: mostly(azureName, jsonish, 8),
      version: azureVersion(),
      kind: maybe(mostly(fc.constantFrom('secret', 'key', 'cert'), fc.oneof(fc.constantFrom('Secret', 'certificate', '', 'keys'), jsonish), 3), 2),
      format: maybe(mostly(fc.constantFrom('pem', 'pfx', 'jwk', 'pem-pair'), fc.oneof(fc.constantFrom('PEM', 'der', ''), jsonish), 3), 2),
      pairKey: maybe(fc.constantFrom('crt', 'key', 'nope'), 3),
    })
    .map(({ pairKey, ...r }) => [...Object.entries(r).filter(([, x]) => x !== undefined), ...(pairKey ? [['key', pairKey]] : [])] as Pairs);

// ---------------------------------------------------------------------------------------------
// Google Secret Manager: refs in three shapes, versions, aliases and serviceAccount.

const gcpProject = fc.constantFrom('shop-prod', '123456789012', 'other-proj', '999', '', 'SHOP', 'p'.repeat(70), '..', 'shop-prod\u0000', '-', 'a:b', '\ud800x');
const gcpLocation = fc.constantFrom('europe-west1', 'us-east1', '', 'EU', 'l'.repeat(70), '..', 'europe-west1/secrets/db', 'a');
const gcpSecret = fc.constantFrom('db', 'blob', 'huge', 'pem', 'plain', 'multi', 'regional', 'billing', 'gone', '', 'd b', 'db:access', 'db%2F..', '..', 'a'.repeat(256), '\ufb00', 'x'.repeat(255));
const gcpVersionText = fc.oneof(
  fc.constantFrom('latest', '1', '2', '3', '4', 'stable', 'missing-alias'),
  fc.constantFrom('0', '-1', 'Latest', '99999999999999999999', '9999999999999999999', '1.0', '01', 'x'.repeat(64), '', 'latest/x', '1:access', '%31'),
  anyText,
);
const gcpRef = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.constantFrom(
      'db', 'db', 'blob', 'huge', 'pem', 'plain', 'multi', 'billing', 'gone', 'regional', 'projects/shop-prod/secrets/db', 'projects/123456789012/secrets/blob',
      'projects/123456789012/secrets/multi/versions/1', 'projects/shop-prod/secrets/multi/versions/stable', 'projects/shop-prod/locations/europe-west1/secrets/regional',
      'projects/other-proj/secrets/db', 'projects/999/secrets/db', 'projects/shop-prod/locations/us-east1/secrets/db',
    ),
  },
  {
    weight: 3,
    arbitrary: fc
      .record({ project: gcpProject, location: maybe(gcpLocation, 3), secret: gcpSecret, version: maybe(gcpVersionText, 2) })
      .map(({ project, location, secret, version }) => `projects/${project}${location === undefined ? '' : `/locations/${location}`}/secrets/${secret}${version === undefined ? '' : `/versions/${version}`}`),
  },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      'projects//secrets/db', 'projects/shop-prod/secrets/db/versions/', 'projects/shop-prod/secrets/db/versions/latest/x', 'projects/../secrets/db',
      'projects/shop-prod/locations//secrets/db', 'db/versions/1', 'secrets/db', 'projects/shop-prod/secrets/db:access', 'db?x=1', '/db', 'db/',
      'projects/shop-prod', 'projects', 'https://secretmanager.googleapis.com/v1/projects/shop-prod/secrets/db', `${'projects/a/'.repeat(500)}secrets/db`,
    ),
  },
  { weight: 1, arbitrary: anyText },
);
const gcpServiceAccount = mostly(
  fc.constantFrom(
    gcpReader, gcpReader, 'shop-ghost@shop-prod.iam.gserviceaccount.com', 'team-a-reader@shop-prod.iam.gserviceaccount.com', 'shop-reader@evil.iam.gserviceaccount.com',
    'shop-reader@shop-prod.iam.gserviceaccount.com.evil.com', 'shop-*@shop-prod.iam.gserviceaccount.com', 'SHOP-reader@shop-prod.iam.gserviceaccount.com',
  ),
  jsonish,
  4,
);
/** Known secrets in each ref shape, versions, aliases and impersonation: these reach Secret Manager. */
const gcpPlausible: fc.Arbitrary<Pairs> = fc.oneof(
  fc.constantFrom<Pairs>(
    [['ref', 'db']],
    [['ref', 'db'], ['key', 'password']],
    [['ref', 'db'], ['select', 'deep.list[1]']],
    [['ref', 'db'], ['expand', 'keys']],
    [['ref', 'db'], ['serviceAccount', gcpReader]],
    [['ref', 'blob']],
    [['ref', 'blob'], ['decode', 'hex']],
    [['ref', 'huge']],
    [['ref', 'pem']],
    [['ref', 'plain']],
    [['ref', 'multi']],
    [['ref', 'multi'], ['version', '1']],
    [['ref', 'multi'], ['version', '2']],
    [['ref', 'multi'], ['version', 'stable']],
    [['ref', 'multi'], ['version', 'missing-alias']],
    [['ref', 'projects/123456789012/secrets/multi/versions/1']],
    [['ref', 'projects/shop-prod/secrets/plain'], ['version', 'latest']],
    [['ref', 'regional']],
    [['ref', 'projects/shop-prod/locations/europe-west1/secrets/regional'], ['serviceAccount', gcpReader]],
    [['ref', 'billing']],
    [['ref', 'gone']],
    [['ref', 'gone'], ['optional', true]],
  ),
  gcpRef.map((ref): Pairs => [['ref', ref]]),
);
/** Every field hostile at once: ref, version, serviceAccount. */
const gcpHostile = fc
  .record({ ref: mostly(gcpRef, jsonish, 8), version: maybe(gcpVersionText, 2), serviceAccount: maybe(gcpServiceAccount, 2) })
  .map((r) => Object.entries(r).filter(([, x]) => x !== undefined) as Pairs);

// ---------------------------------------------------------------------------------------------
// The properties.

const pod = podOf(pods);
const azureRole = roleOf([azureClient, azureOtherClient, 'shop-reader', 'shop-unknown', 'team-a-reader', 'shop-x', '{namespace}-reader', 'shop-reader\n'], 'shop-');
const garbage = v.garbageToken;
const azureEntries = () => objectEntry(fc.constantFrom('azure', 'azure', 'azure', 'azure-cached', 'azure-cached', 'azure-roles'), azurePlausible(), azureHostile());
const gcpEntries = () => objectEntry(fc.constantFrom('gcp', 'gcp', 'gcp', 'gcp', 'gcp-eu', 'gcp-bare'), gcpPlausible, gcpHostile);
const kindsOf = (objects: readonly Pairs[]) => objects.map((o) => (storeOf(o).startsWith('azure') ? 'azure-key-vault' : 'gcp-secret-manager'));

describe('Mount fuzzing against the cloud stores (in process, real HTTPS test servers)', { timeout: 120_000 }, () => {
  it('azure-key-vault: hostile names, versions, kind and format, roles, tokens, store values and faults', async () => {
    const faults = faultOn('azure', ['/secrets/', '/keys/', '/certificates/', '/oauth2/v2.0/token']);
    await fc.assert(
      fc.asyncProperty(fc.array(azureEntries(), { minLength: 1, maxLength: 2 }), pod, tokenChoice, azureRole, faults, async (objects, p, choice, role, fault) => {
        const attributes = attributesOf(objectsYaml(objects), p, { [workloadIdentityAudience]: tokenEntry(azureTokens[p.index]!, choice, garbage) }, role);
        await h.run({ attributes, kinds: ['azure-key-vault'], ...(fault ? { fault } : {}) });
      }),
      params(2100),
    );
  });

  it('gcp-secret-manager: hostile refs (projects, locations, versions), serviceAccount, tokens, store values and faults', async () => {
    const faults = faultOn('gcp', [':access', '/v1/token', ':generateAccessToken']);
    await fc.assert(
      fc.asyncProperty(fc.array(gcpEntries(), { minLength: 1, maxLength: 2 }), pod, tokenChoice, azureRole, faults, fc.nat({ max: 29 }), async (objects, p, choice, role, fault, revoke) => {
        // Now and then every Google token is revoked: cached ones meet a 401 and are exchanged again.
        if (revoke === 0) gcp.revokeTokens();
        const attributes = attributesOf(objectsYaml(objects), p, { [gcp.poolAudience]: tokenEntry(gcpTokens[p.index]!, choice, garbage) }, role);
        await h.run({ attributes, kinds: ['gcp-secret-manager'], ...(fault ? { fault } : {}) });
      }),
      params(2100),
    );
  });

  const mixed = () => fc.array(fc.oneof(azureEntries(), gcpEntries()), { minLength: 1, maxLength: 4 });

  it('both stores in one Mount, each with its own token', async () => {
    const faults = fc.oneof(faultOn('azure', ['/secrets/', '/oauth2/']), faultOn('gcp', [':access', '/v1/token']));
    await fc.assert(
      fc.asyncProperty(mixed(), pod, tokenChoice, tokenChoice, azureRole, faults, async (objects, p, a, g, role, fault) => {
        const tokens = { [workloadIdentityAudience]: tokenEntry(azureTokens[p.index]!, a, garbage), [gcp.poolAudience]: tokenEntry(gcpTokens[p.index]!, g, garbage) };
        await h.run({ attributes: attributesOf(objectsYaml(objects), p, tokens, role), kinds: kindsOf(objects), ...(fault ? { fault } : {}) });
      }),
      params(300),
    );
  });

  it('Mounts whose call was cancelled before they started', async () => {
    await fc.assert(
      fc.asyncProperty(mixed(), pod, async (objects, p) => {
        const tokens = { [workloadIdentityAudience]: tokenEntry(azureTokens[p.index]!, 'valid', garbage), [gcp.poolAudience]: tokenEntry(gcpTokens[p.index]!, 'valid', garbage) };
        await h.run({ attributes: attributesOf(objectsYaml(objects), p, tokens), kinds: kindsOf(objects), cancelled: true });
      }),
      params(60),
    );
  });

  it('a store answering a status it does not document for reads (302, 409, 413, 431)', async () => {
    const plausible = fc.oneof(
      objectEntry(fc.constantFrom('azure', 'azure-cached'), azurePlausible(), azurePlausible()),
      objectEntry(fc.constant('gcp'), gcpPlausible, gcpPlausible),
    );
    const statuses = fc.oneof(unusualStatusOn('azure', ['/secrets/', '/oauth2/v2.0/token']), unusualStatusOn('gcp', [':access', '/v1/token', ':generateAccessToken']));
    await fc.assert(
      fc.asyncProperty(fc.array(plausible, { minLength: 1, maxLength: 2 }), statuses, async (objects, fault) => {
        const p = { index: 0, ...pods[0] };
        const tokens = { [workloadIdentityAudience]: tokenEntry(azureTokens[0]!, 'valid', garbage), [gcp.poolAudience]: tokenEntry(gcpTokens[0]!, 'valid', garbage) };
        await h.run({ attributes: attributesOf(objectsYaml(objects), p, tokens), kinds: kindsOf(objects), fault });
      }),
      params(100),
    );
  });

  it('reached both stores: reads, exchanges, successes and every refusal kind', () => {
    const { counts } = h;
    console.log(
      `stores fuzz: azure ${azure.counters.reads} reads, ${azure.counters.tokens} token exchanges; gcp ${gcp.counters.accesses} accesses, ${gcp.counters.exchanges} exchanges, ${gcp.counters.impersonations} impersonations; ` +
        `faults applied azure ${JSON.stringify(azure.faults.applied)}, gcp ${JSON.stringify(gcp.faults.applied)}`,
    );
    // Guards against generators that never get past parsing (a fuzzer that tests nothing).
    expect(counts.ok).toBeGreaterThan(counts.all / 20);
    expect(azure.counters.reads).toBeGreaterThan(runs(2100) / 5);
    expect(azure.counters.tokens).toBeGreaterThan(10);
    expect(gcp.counters.accesses).toBeGreaterThan(runs(2100) / 5);
    expect(gcp.counters.impersonations).toBeGreaterThan(0);
    for (const kind of ['azure-key-vault', 'gcp-secret-manager']) {
      expect([...(counts.codes.get(kind) ?? [])]).toEqual(expect.arrayContaining(['InvalidArgument', 'NotFound', 'PermissionDenied', 'Unavailable']));
      expect(counts.byKind.get(kind)).toBeGreaterThanOrEqual(Math.min(2000, runs(2000)));
    }
  });
});
