/**
 * The Mount fuzzing of ./stores.fuzz.test.ts for the other network stores: vault, kubernetes,
 * aws-secrets-manager and aws-parameter-store, each against its protocol-faithful test server
 * (started once for the file), through the same harness and invariants (./store-harness.ts).
 *
 * Hostile refs (mount paths with `..`, `%`, control characters, other namespaces, ARNs of other
 * accounts and regions), versions and stages, backend object fields (Vault `method`/`args`,
 * Kubernetes `kind`, Parameter Store `recursive`, Secrets Manager `versionStage`), the `role`
 * parameter (a Vault role, an IAM role ARN), the pod's tokens, server faults, and store-side
 * values (binary, huge, JSON, PEM).
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCanaries } from '../helpers/canary.js';
import { providerConfigYaml } from '../helpers/yaml.js';
import { startAwsTestServer, testAccount, type AwsTestServer } from '../servers/aws.js';
import { serviceAccountUser, startKubernetesTestServer, type KubernetesTestServer } from '../servers/kubernetes.js';
import { startVaultTestServer, type VaultTestServer } from '../servers/vault.js';
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
  startStoreHarness,
  tokenChoice,
  tokenEntry,
  unusualStatusOn,
  type TokenChoice,
  type IssuedTokens,
  type Pairs,
  type StoreHarness,
} from './store-harness.js';

const canaries = createCanaries();
const v = {
  vaultPass: canaries.next('vault-pass'),
  vaultOld: canaries.next('vault-old'),
  vaultPem: canaries.next('vault-pem'),
  vaultHuge: canaries.next('vault-huge'),
  vaultBilling: canaries.next('vault-billing'),
  k8sPass: canaries.next('k8s-pass'),
  k8sBin: canaries.next('k8s-bin'),
  k8sHuge: canaries.next('k8s-huge'),
  k8sConfig: canaries.next('k8s-config'),
  k8sOther: canaries.next('k8s-other'),
  smPlain: canaries.next('sm-plain'),
  smJson: canaries.next('sm-json'),
  smBin: canaries.next('sm-bin'),
  smOld: canaries.next('sm-old'),
  smOther: canaries.next('sm-other'),
  psPlain: canaries.next('ps-plain'),
  psSecure: canaries.next('ps-secure'),
  psOld: canaries.next('ps-old'),
  psOther: canaries.next('ps-other'),
  garbageToken: canaries.next('garbage-token'),
};
const k8sBinary = binaryOf(v.k8sBin);
const smBinary = binaryOf(v.smBin);
canaries.add(k8sBinary.toString('base64'), smBinary.toString('base64'), Buffer.from(v.vaultPem).toString('base64'));

const pods = [
  { namespace: 'shop', serviceAccount: 'app' },
  { namespace: 'shop', serviceAccount: 'worker' },
  { namespace: 'team-a', serviceAccount: 'app' },
  { namespace: 'shop', serviceAccount: 'stranger' },
] as const;
const tokens: Record<'vault' | 'k8s' | 'aws', IssuedTokens[]> = { vault: [], k8s: [], aws: [] };
const region = 'us-east-1';
const stsAudience = 'sts.amazonaws.com';

let vault: VaultTestServer;
let api: KubernetesTestServer;
let aws: AwsTestServer;
let smOldVersion: string;
let h: StoreHarness;

function seedVault(): void {
  vault.enableKv('secret', 2);
  vault.enableKv('kv1', 1);
  vault.writeKv('secret', 'shop/db', { password: v.vaultOld });
  vault.writeKv('secret', 'shop/db', { password: v.vaultPass, deep: { list: [1, v.vaultPass] }, ['__proto__']: { polluted: v.vaultPass } });
  vault.writeKv('secret', 'shop/tls', { key: pemText(v.vaultPem), crt: 'not secret' });
  vault.writeKv('secret', 'shop/huge', { blob: `${'h'.repeat(200_000)}${v.vaultHuge}` });
  vault.writeKv('secret', 'billing/db', { password: v.vaultBilling });
  vault.writeKv('kv1', 'shop/db', { password: v.vaultPass });
  vault.definePolicy('shop', { 'secret/data/shop/*': ['read'], 'kv1/shop/*': ['read'], 'secret/metadata/shop/*': ['list'] });
  vault.defineRole({ name: 'app', boundServiceAccountNames: ['app', 'worker'], boundNamespaces: ['shop'], policies: ['shop'] });
  vault.defineRole({ name: 'team-a', boundServiceAccountNames: ['app'], boundNamespaces: ['team-a'], policies: [] });
  for (const pod of pods) {
    const issue = (o: { audience?: string; ttlSeconds?: number; serviceAccount?: string } = {}) =>
      vault.issuePodToken({ namespace: pod.namespace, serviceAccount: o.serviceAccount ?? pod.serviceAccount, ...o }).token;
    tokens.vault.push({ valid: issue(), expiredJwt: issue({ ttlSeconds: -60 }), otherPod: issue({ serviceAccount: 'intruder' }), wrongAudience: issue({ audience: 'other' }) });
  }
}

function seedKubernetes(): void {
  api.putSecret({ namespace: 'shop', name: 'db', data: { password: v.k8sPass, 'config.json': JSON.stringify({ password: v.k8sPass }) } });
  api.putSecret({ namespace: 'shop', name: 'blob', data: { key: k8sBinary } });
  api.putSecret({ namespace: 'shop', name: 'huge', data: { blob: `${'k'.repeat(500_000)}${v.k8sHuge}` } });
  api.putSecret({ namespace: 'shop', name: 'tls', type: 'kubernetes.io/tls', data: { 'tls.key': pemText(v.k8sPass), 'tls.crt': 'crt' } });
  api.putConfigMap({ namespace: 'shop', name: 'settings', data: { 'app.json': JSON.stringify({ token: v.k8sConfig }) }, binaryData: { raw: k8sBinary } });
  api.putSecret({ namespace: 'team-a', name: 'db', data: { password: v.k8sOther } });
  for (const sa of ['app', 'worker']) {
    api.allow({ subject: serviceAccountUser('shop', sa), namespace: 'shop', resource: 'secrets', names: ['db', 'blob', 'huge', 'tls', 'gone'] });
    api.allow({ subject: serviceAccountUser('shop', sa), namespace: 'shop', resource: 'configmaps', names: ['settings'] });
  }
  for (const pod of pods) {
    const issue = (o: { audience?: string; expiresInSeconds?: number; serviceAccount?: string } = {}) =>
      api.issueToken({ namespace: pod.namespace, serviceAccount: o.serviceAccount ?? pod.serviceAccount, audience: o.audience ?? api.audience, ...o }).token;
    tokens.k8s.push({ valid: issue(), expiredJwt: issue({ expiresInSeconds: -60 }), otherPod: issue({ serviceAccount: 'intruder' }), wrongAudience: issue({ audience: 'other' }) });
  }
}

function seedAws(): void {
  aws.defineRole({ name: 'shop-app', trust: [{ namespace: 'shop', serviceAccount: 'app' }, { namespace: 'shop', serviceAccount: 'worker' }], allow: ['shop/*', '/shop/*'] });
  aws.defineRole({ name: 'shop-narrow', trust: [{ namespace: 'shop', serviceAccount: 'app' }], allow: ['shop/plain'], batch: false });
  aws.putSecret('shop/plain', v.smPlain);
  aws.putSecret('shop/json', JSON.stringify({ password: v.smJson, deep: { list: [1, v.smJson] } }));
  aws.putSecret('shop/binary', smBinary);
  smOldVersion = aws.putSecret('shop/versioned', v.smOld).versionId;
  aws.putSecret('shop/versioned', v.smPlain, { stages: ['AWSCURRENT', 'NEXT'] });
  aws.putSecret('shop/huge', `${'s'.repeat(60_000)}${v.smPlain}`);
  aws.putSecret('shop/kms', v.smPlain, { kmsDenied: true });
  aws.putSecret('other/secret', v.smOther);
  aws.putParameter('/shop/plain', v.psPlain);
  aws.putParameter('/shop/secure', v.psSecure, { type: 'SecureString' });
  aws.putParameter('/shop/list', `a,b,${v.psPlain}`, { type: 'StringList' });
  aws.putParameter('/shop/versioned', v.psOld, { labels: ['stable'] });
  aws.putParameter('/shop/versioned', v.psPlain);
  aws.putParameter('/shop/tree/a', v.psPlain);
  aws.putParameter('/shop/tree/deeper/b', v.psSecure, { type: 'SecureString' });
  aws.putParameter('/other/secret', v.psOther, { type: 'SecureString' });
  for (const pod of pods) {
    const issue = (o: { audience?: string; ttlSeconds?: number; serviceAccount?: string } = {}) =>
      aws.issuePodToken({ namespace: pod.namespace, serviceAccount: o.serviceAccount ?? pod.serviceAccount, audience: o.audience ?? stsAudience, ...o }).token;
    tokens.aws.push({ valid: issue(), expiredJwt: issue({ ttlSeconds: -60 }), otherPod: issue({ serviceAccount: 'intruder' }), wrongAudience: issue({ audience: 'other' }) });
  }
}

function configText(): string {
  const guard = { retry: { attempts: 2, baseDelay: '1ms', maxDelay: '5ms' }, breaker: { failures: 1_000_000 }, timeout: '3s', cache: { ttl: 0 } };
  const awsAuth = { method: 'irsa', audience: stsAudience, stsEndpoint: aws.stsUrl, roleArnPattern: `arn:aws:iam::${testAccount}:role/{namespace}-*` };
  return providerConfigYaml({
    defaultStore: 'vault',
    versionKey: 'stores-more-fuzz-version-key-0123456789',
    limits: { mountTimeout: '5s' },
    stores: [
      { name: 'vault', backend: 'vault', address: vault.url, tls: { caFile: 'vault-ca.pem' }, auth: { method: 'kubernetes', role: 'app', audience: 'vault' }, ...guard },
      { name: 'vault-template', backend: 'vault', address: vault.url, tls: { caFile: 'vault-ca.pem' }, auth: { method: 'kubernetes', roleTemplate: '{namespace}' }, ...guard },
      { name: 'cluster', backend: 'kubernetes', kubeconfig: 'kubeconfig', audience: api.audience, ...guard },
      { name: 'sm', backend: 'aws-secrets-manager', region, endpoint: aws.endpoint(region), auth: awsAuth, ...guard },
      { name: 'ps', backend: 'aws-parameter-store', region, endpoint: aws.endpoint(region), auth: awsAuth, ...guard },
    ],
  });
}

beforeAll(async () => {
  [vault, api, aws] = await Promise.all([startVaultTestServer(), startKubernetesTestServer(), startAwsTestServer({ regions: [region] })]);
  seedVault();
  seedKubernetes();
  seedAws();
  canaries.add(...Object.values(tokens).flatMap((list) => list.flatMap((t) => Object.values(t))));
  const dir = await mkdtemp(join(tmpdir(), 'usp-stores-more-fuzz-'));
  await writeFile(join(dir, 'vault-ca.pem'), vault.ca.cert);
  await api.writeKubeconfig(join(dir, 'kubeconfig'));
  h = await startStoreHarness({ config: configText(), dir, canaries, injectors: { vault: vault.faults, cluster: api.faults, aws: aws.faults }, name: 'stores-more fuzz' });
}, 60_000);

afterAll(async () => {
  // Access tokens and credentials the servers issued: all checked, a few registered suite-wide.
  const issued = [...(vault?.issuedTokens ?? []), ...(aws?.issuedCredentials ?? []).flatMap((c) => [c.secretAccessKey, c.sessionToken ?? ''].filter(Boolean))];
  canaries.add(...issued.slice(0, 20));
  await h?.finish({ tokens: issued, closeServers: async () => void (await Promise.all([vault?.close(), api?.close(), aws?.close()])) });
});

// ---------------------------------------------------------------------------------------------
// Refs and fields per kind: plausible ones reach the store, hostile ones try every field.

const pathNoise = fc.constantFrom('..', '.', '', '%2e%2e', '%2F', 'a\u0000b', '\ud800', '\u2025', 'x'.repeat(300), 'a b', '?list=true', '#', '*', '~', 'sys', 'auth');
const hostilePath = (prefix: string) =>
  fc.oneof(
    fc.array(fc.oneof(fc.constantFrom('shop', 'db', 'billing', 'data', 'metadata'), pathNoise), { minLength: 1, maxLength: 5 }).map((parts) => `${prefix}${parts.join('/')}`),
    anyText,
  );

const vaultPlausible: fc.Arbitrary<Pairs> = fc.constantFrom<Pairs>(
  [['ref', 'secret/data/shop/db']],
  [['ref', 'secret/shop/db'], ['key', 'password']],
  [['ref', 'secret/shop/db'], ['version', '1'], ['key', 'password']],
  [['ref', 'secret/shop/db'], ['select', 'deep.list[1]']],
  [['ref', 'secret/shop/db'], ['expand', 'keys']],
  [['ref', 'secret/shop/tls'], ['key', 'key']],
  [['ref', 'secret/shop/huge'], ['key', 'blob']],
  [['ref', 'kv1/shop/db'], ['key', 'password']],
  [['ref', 'secret/data/billing/db']],
  [['ref', 'secret/data/shop/none']],
  [['ref', 'secret/data/shop/none'], ['optional', true]],
  [['ref', 'sys/mounts']],
  [['ref', 'auth/token/lookup-self'], ['method', 'POST']],
  [['ref', 'secret/shop/db'], ['version', '99']],
);
const vaultHostile: fc.Arbitrary<Pairs> = fc
  .record({
    ref: mostly(hostilePath(''), jsonish, 8),
    version: maybe(fc.oneof(fc.constantFrom('1', '0', '-1', '2', '99999999999999999999', 'latest', '1.0', ''), anyText), 2),
    method: maybe(mostly(fc.constantFrom('GET', 'POST', 'PUT'), fc.oneof(fc.constantFrom('DELETE', 'get', 'LIST', ''), jsonish), 3), 2),
    args: maybe(mostly(fc.constantFrom<unknown>({ common_name: 'x' }, { ttl: '1h' }, {}), jsonish, 3), 3),
  })
  .map((r) => Object.entries(r).filter(([, x]) => x !== undefined) as Pairs);

const k8sPlausible: fc.Arbitrary<Pairs> = fc.constantFrom<Pairs>(
  [['ref', 'db']],
  [['ref', 'db'], ['key', 'password']],
  [['ref', 'shop/db'], ['key', 'config.json'], ['select', 'password']],
  [['ref', 'blob'], ['key', 'key']],
  [['ref', 'huge'], ['key', 'blob']],
  [['ref', 'tls'], ['expand', 'keys']],
  [['ref', 'settings'], ['kind', 'configmap']],
  [['ref', 'settings'], ['kind', 'configmap'], ['key', 'raw']],
  [['ref', 'team-a/db']],
  [['ref', 'gone']],
  [['ref', 'gone'], ['optional', true]],
  [['ref', 'db'], ['kind', 'configmap']],
);
const k8sHostile: fc.Arbitrary<Pairs> = fc
  .record({
    ref: mostly(fc.oneof(hostilePath(''), fc.constantFrom('kube-system/db', 'shop/db/x', '/db', 'db/', 'DB', 'a'.repeat(254), 'shop/', '../team-a/db', 'shop%2Fdb')), jsonish, 8),
    kind: maybe(mostly(fc.constantFrom('secret', 'configmap'), fc.oneof(fc.constantFrom('Secret', 'secrets', 'pod', ''), jsonish), 3), 2),
    version: maybe(anyText, 4),
  })
  .map((r) => Object.entries(r).filter(([, x]) => x !== undefined) as Pairs);

const smPlausible = (): fc.Arbitrary<Pairs> =>
  fc.constantFrom<Pairs>(
    [['ref', 'shop/plain']],
    [['ref', 'shop/json'], ['key', 'password']],
    [['ref', 'shop/json'], ['select', 'deep.list[1]']],
    [['ref', 'shop/binary']],
    [['ref', 'shop/versioned'], ['version', smOldVersion]],
    [['ref', 'shop/versioned'], ['versionStage', 'NEXT']],
    [['ref', 'shop/versioned'], ['versionStage', 'AWSPREVIOUS']],
    [['ref', 'shop/huge']],
    [['ref', 'shop/kms']],
    [['ref', 'other/secret']],
    [['ref', 'shop/none']],
    [['ref', `arn:aws:secretsmanager:${region}:${testAccount}:secret:shop/plain`]],
    [['ref', `arn:aws:secretsmanager:eu-west-1:${testAccount}:secret:shop/plain`]],
    [['ref', 'arn:aws:secretsmanager:us-east-1:999999999999:secret:shop/plain']],
  );
const smHostile: fc.Arbitrary<Pairs> = fc
  .record({
    ref: mostly(fc.oneof(hostilePath('shop/'), fc.constantFrom('arn:aws:secretsmanager:::secret:x', 'arn:aws:ssm:us-east-1:123456789012:parameter/shop/plain', 'arn:', 'shop/plain-AbCdEf', 'x'.repeat(600))), jsonish, 8),
    version: maybe(fc.oneof(fc.constantFrom('00000000-0000-0000-0000-000000000000', 'AWSCURRENT', ''), anyText), 2),
    versionStage: maybe(fc.oneof(fc.constantFrom('AWSCURRENT', 'AWSPENDING', 'nope', ''), jsonish), 2),
  })
  .map((r) => Object.entries(r).filter(([, x]) => x !== undefined) as Pairs);

const psPlausible: fc.Arbitrary<Pairs> = fc.constantFrom<Pairs>(
  [['ref', '/shop/plain']],
  [['ref', '/shop/secure']],
  [['ref', '/shop/list']],
  [['ref', '/shop/versioned'], ['version', '1']],
  [['ref', '/shop/versioned'], ['version', 'stable']],
  [['ref', '/shop/tree/']],
  [['ref', '/shop/tree/'], ['recursive', true]],
  [['ref', '/shop/tree/'], ['recursive', true], ['expand', 'keys']],
  [['ref', '/other/secret']],
  [['ref', '/shop/none']],
  [['ref', 'shop/plain']],
);
const psHostile: fc.Arbitrary<Pairs> = fc
  .record({
    ref: mostly(fc.oneof(hostilePath('/shop/'), fc.constantFrom('/', '//', '/aws/reference/secretsmanager/shop/plain', `arn:aws:ssm:${region}:${testAccount}:parameter/shop/plain`, '/shop/plain:1', '/shop/plain:stable')), jsonish, 8),
    version: maybe(fc.oneof(fc.constantFrom('0', '1', '-1', '99999999999999999999', 'stable', 'nope', ''), anyText), 2),
    recursive: maybe(mostly(fc.boolean(), jsonish, 3), 3),
  })
  .map((r) => Object.entries(r).filter(([, x]) => x !== undefined) as Pairs);

// ---------------------------------------------------------------------------------------------

const pod = podOf(pods);
const garbage = v.garbageToken;
const arn = (role: string) => `arn:aws:iam::${testAccount}:role/${role}`;
const awsRole = mostly(
  fc.constantFrom(arn('shop-app'), arn('shop-app'), arn('shop-narrow'), arn('shop-missing'), arn('team-a-app'), `arn:aws:iam::999999999999:role/shop-app`),
  fc.oneof(roleOf([], arn('shop-')), fc.constantFrom(`${arn('shop-app')}/x`, 'arn:aws:iam::123456789012:user/shop-app', arn('shop-*'), '')),
  3,
);
interface Kind {
  readonly kind: string;
  readonly audience: string;
  readonly issued: IssuedTokens[];
  readonly entries: fc.Arbitrary<Pairs>;
  readonly plausible: fc.Arbitrary<Pairs>;
  readonly role: fc.Arbitrary<string | undefined>;
  readonly tokens: fc.Arbitrary<TokenChoice>;
  readonly faults: ReturnType<typeof faultOn>;
  readonly unusual: ReturnType<typeof unusualStatusOn>;
}

describe('Mount fuzzing against vault, kubernetes and the AWS stores (in process, real test servers)', { timeout: 120_000 }, () => {
  const kinds = (): Kind[] => [
    {
      kind: 'vault',
      audience: 'vault',
      issued: tokens.vault,
      entries: objectEntry(fc.constantFrom('vault', 'vault', 'vault-template'), vaultPlausible, vaultHostile),
      plausible: objectEntry(fc.constant('vault'), vaultPlausible, vaultPlausible),
      role: roleOf(['app', 'team-a', 'root', 'default', 'billing'], 'app'),
      tokens: tokenChoice,
      faults: faultOn('vault', ['/v1/secret/', '/v1/kv1/', '/v1/auth/', '/v1/sys/']),
      unusual: unusualStatusOn('vault', ['/v1/secret/', '/v1/auth/']),
    },
    {
      kind: 'kubernetes',
      audience: api.audience,
      issued: tokens.k8s,
      entries: objectEntry(fc.constant('cluster'), k8sPlausible, k8sHostile),
      plausible: objectEntry(fc.constant('cluster'), k8sPlausible, k8sPlausible),
      role: roleOf(['admin'], 'x'),
      // A huge token is a bearer header here, which the API server refuses with 431: the unusual-status case.
      tokens: tokenChoice.filter((c) => c !== 'huge'),
      faults: faultOn('cluster', ['/secrets/', '/configmaps/']),
      unusual: unusualStatusOn('cluster', ['/secrets/']),
    },
    {
      kind: 'aws-secrets-manager',
      audience: stsAudience,
      issued: tokens.aws,
      entries: objectEntry(fc.constant('sm'), smPlausible(), smHostile),
      plausible: objectEntry(fc.constant('sm'), smPlausible(), smPlausible()),
      role: awsRole,
      tokens: tokenChoice,
      faults: faultOn('aws', ['secretsmanager.']),
      unusual: unusualStatusOn('aws', ['secretsmanager.']),
    },
    {
      kind: 'aws-parameter-store',
      audience: stsAudience,
      issued: tokens.aws,
      entries: objectEntry(fc.constant('ps'), psPlausible, psHostile),
      plausible: objectEntry(fc.constant('ps'), psPlausible, psPlausible),
      role: awsRole,
      tokens: tokenChoice,
      faults: faultOn('aws', ['AmazonSSM.']),
      unusual: unusualStatusOn('aws', ['AmazonSSM.']),
    },
  ];

  it.each(['vault', 'kubernetes', 'aws-secrets-manager', 'aws-parameter-store'])('%s: hostile refs, versions, fields, roles, tokens, store values and faults', async (name) => {
    const k = kinds().find((x) => x.kind === name)!;
    await fc.assert(
      fc.asyncProperty(fc.array(k.entries, { minLength: 1, maxLength: 2 }), pod, k.tokens, k.role, k.faults, async (objects, p, choice, role, fault) => {
        const attributes = attributesOf(objectsYaml(objects), p, { [k.audience]: tokenEntry(k.issued[p.index]!, choice, garbage) }, role);
        await h.run({ attributes, kinds: [k.kind], ...(fault ? { fault } : {}) });
      }),
      params(600),
    );
  });

  it.each(['vault', 'kubernetes', 'aws-secrets-manager', 'aws-parameter-store'])('%s: a store answering a status it does not document for reads (302, 409, 413, 431)', async (name) => {
    const k = kinds().find((x) => x.kind === name)!;
    const role = fc.constant(k.kind.startsWith('aws') ? arn('shop-app') : undefined);
    await fc.assert(
      fc.asyncProperty(fc.array(k.plausible, { minLength: 1, maxLength: 2 }), role, fc.option(k.unusual, { nil: undefined }), async (objects, r, fault) => {
        // Without a fault the pod's token is huge: the real servers' own limits answer then.
        const choice: TokenChoice = fault ? 'valid' : 'huge';
        const attributes = attributesOf(objectsYaml(objects), { index: 0, ...pods[0] }, { [k.audience]: tokenEntry(k.issued[0]!, choice, garbage) }, r);
        await h.run({ attributes, kinds: [k.kind], ...(fault ? { fault } : {}) });
      }),
      params(60),
    );
  });

  it('reached every store: successes and refusals of each kind', () => {
    const { counts } = h;
    console.log(`stores-more fuzz: codes ${[...counts.codes].map(([kind, codes]) => `${kind} [${[...codes].join(', ')}]`).join('; ')}`);
    expect(counts.ok).toBeGreaterThan(counts.all / 20);
    for (const kind of ['vault', 'kubernetes', 'aws-secrets-manager', 'aws-parameter-store']) {
      expect([...(counts.codes.get(kind) ?? [])]).toEqual(expect.arrayContaining(['InvalidArgument', 'NotFound', 'PermissionDenied']));
    }
  });
});
