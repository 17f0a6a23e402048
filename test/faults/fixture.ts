/**
 * Four stores (Kubernetes, Vault, AWS Secrets Manager, AWS SSM Parameter Store), each backed by its
 * protocol-faithful test server with fault injection, behind the real provider on a real Unix
 * socket. Each store holds one multi-key secret (`a`, `b`; for AWS a JSON string, for SSM a
 * SecureString parameter) that tests can switch between versions; Mounts read it with
 * `expand: keys`, so one response carries both keys and must show one version of both.
 */
import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCanaries, type Canaries } from '../helpers/canary.js';
import { driverRequest, type MountReply, type MountRequest } from '../helpers/driver-client.js';
import { startTestProvider, type TestProvider } from '../helpers/provider.js';
import { providerConfigYaml } from '../helpers/yaml.js';
import { startAwsTestServer, type AwsTestServer } from '../servers/aws.js';
import { startAzureTestServer, workloadIdentityAudience, type AzureTestServer } from '../servers/azure.js';
import type { Fault, FaultKind, InjectOptions } from '../servers/faults.js';
import { startGcpTestServer, type GcpTestServer } from '../servers/gcp.js';
import { serviceAccountUser, startKubernetesTestServer, type KubernetesTestServer } from '../servers/kubernetes.js';
import { startVaultTestServer, type VaultTestServer } from '../servers/vault.js';

export const storeKinds = ['kube', 'vault', 'sm', 'ssm', 'azure', 'gcp'] as const;
/** Calls per object at most (`retry.attempts` of every store). */
export const retryAttempts = 3;
export type StoreKind = (typeof storeKinds)[number];

export interface Version {
  readonly a: string;
  readonly b: string;
}

export interface FaultWorld {
  readonly p: TestProvider;
  readonly kube: KubernetesTestServer;
  readonly vault: VaultTestServer;
  readonly aws: AwsTestServer;
  readonly azure: AzureTestServer;
  readonly gcp: GcpTestServer;
  readonly canaries: Canaries;
  /** Every error message seen, for the leak check. */
  readonly errors: string[];
  /** The two versions each store's secret switches between. */
  readonly versions: Record<StoreKind, readonly [Version, Version]>;
  /** Makes `which` (0 or 1) the current version of the store's secret. */
  setVersion(store: StoreKind, which: 0 | 1): void;
  /** Arms a fault on the request that reads the store's secret (not on logins or token exchanges). */
  inject(store: StoreKind, fault: Fault, options?: Omit<InjectOptions, 'match'>): void;
  /** Faults of `kind` applied so far by the store's server (sm and ssm share one): each is one store call. */
  applied(store: StoreKind, kind: FaultKind): number;
  clearFaults(): void;
  request(store: StoreKind): MountRequest;
  /** The version a reply carries, or throws if it mixes versions or carries something else. */
  versionOf(store: StoreKind, reply: MountReply): 0 | 1;
  close(): Promise<void>;
}

/** Store timeouts are short so that hangs end quickly; retries are fast and the breaker stays closed. */
function providerConfig(kubeconfig: string, vaultUrl: string, aws: AwsTestServer, azure: AzureTestServer, gcp: GcpTestServer): string {
  const guard = { cache: { ttl: 0 }, retry: { attempts: retryAttempts, baseDelay: '20ms', maxDelay: '100ms' }, breaker: { failures: 100000 } };
  const irsa = { method: 'irsa', stsEndpoint: aws.stsUrl };
  return providerConfigYaml({
    versionKey: 'faults-version-key-0123456789',
    stores: [
      { name: 'kube', backend: 'kubernetes', identity: 'pod', kubeconfig, timeout: '1s', ...guard },
      { name: 'vault', backend: 'vault', address: vaultUrl, tls: { caFile: '../vault-ca.pem' }, auth: { method: 'kubernetes', role: 'app' }, timeout: '1s', ...guard },
      // Longer for AWS: the SDK's own retries (honouring Retry-After) run inside one store timeout.
      { name: 'sm', backend: 'aws-secrets-manager', region: 'us-east-1', endpoint: aws.endpoint('us-east-1'), auth: irsa, timeout: '2s', ...guard },
      { name: 'ssm', backend: 'aws-parameter-store', region: 'us-east-1', endpoint: aws.endpoint('us-east-1'), auth: irsa, timeout: '2s', ...guard },
      { name: 'azure', backend: 'azure-key-vault', vaultUrl: azure.url, authorityHost: azure.url, tenantId: azure.tenantId, clientId: azureClientId, tls: { caFile: '../azure-ca.pem' }, timeout: '1s', ...guard },
      {
        name: 'gcp',
        backend: 'gcp-secret-manager',
        project: gcp.projectId,
        audience: gcp.poolAudience,
        endpoints: { sts: gcp.url, iamCredentials: gcp.url, secretManager: gcp.url },
        tls: { caFile: '../gcp-ca.pem' },
        timeout: '1s',
        ...guard,
      },
    ],
  });
}

const azureClientId = '3f2a1b0c-4d5e-4f60-8a7b-9c0d1e2f3a4b';

export async function startFaultWorld(): Promise<FaultWorld> {
  const canaries = createCanaries();
  const errors: string[] = [];
  const versions = Object.fromEntries(
    storeKinds.map((s) => [
      s,
      [0, 1].map((n) => ({ a: canaries.next(`${s}-v${n}-a`), b: canaries.next(`${s}-v${n}-b`) })) as [Version, Version],
    ]),
  ) as Record<StoreKind, [Version, Version]>;

  const kube = await startKubernetesTestServer();
  kube.allow({ subject: serviceAccountUser('shop', 'app'), namespace: 'shop', resource: 'secrets', names: ['multi'] });
  const kubeconfigPath = join(tmpdir(), `usp-faults-kubeconfig-${process.pid}-${Date.now()}`);
  await kube.writeKubeconfig(kubeconfigPath);
  const kubeconfig = await readFile(kubeconfigPath);
  await rm(kubeconfigPath);

  const vault = await startVaultTestServer();
  vault.enableKv('secret', 2);
  vault.definePolicy('app', { 'secret/data/shop/*': ['read'] });
  vault.defineRole({ name: 'app', boundServiceAccountNames: ['app'], boundNamespaces: ['shop'], policies: ['app'] });

  const aws = await startAwsTestServer();
  aws.defineRole({ name: 'shop-app', trust: [{ namespace: 'shop', serviceAccount: 'app' }], allow: ['shop/*', '/shop/*'] });

  const azure = await startAzureTestServer();
  azure.federate({ clientId: azureClientId, namespace: 'shop', serviceAccount: 'app' });
  azure.grant(azureClientId, ['secrets/shop-*']);

  const gcp = await startGcpTestServer();
  gcp.grantAccess(gcp.federatedMember('shop', 'app'), 'multi');

  const setVersion = (store: StoreKind, which: 0 | 1) => {
    const v = versions[store][which];
    if (store === 'kube') kube.putSecret({ namespace: 'shop', name: 'multi', data: { a: v.a, b: v.b } });
    if (store === 'vault') vault.writeKv('secret', 'shop/multi', { a: v.a, b: v.b });
    if (store === 'sm') aws.putSecret('shop/multi', JSON.stringify({ a: v.a, b: v.b }));
    if (store === 'ssm') aws.putParameter('/shop/multi', JSON.stringify({ a: v.a, b: v.b }), { type: 'SecureString' });
    if (store === 'azure') azure.setSecret('shop-multi', JSON.stringify({ a: v.a, b: v.b }), { contentType: 'application/json' });
    if (store === 'gcp') gcp.addVersion('multi', JSON.stringify({ a: v.a, b: v.b }));
  };
  for (const s of storeKinds) setVersion(s, 0);

  const p = await startTestProvider({
    config: providerConfig('../kubeconfig', vault.url, aws, azure, gcp),
    files: { kubeconfig, 'vault-ca.pem': vault.ca.cert, 'azure-ca.pem': azure.ca.cert, 'gcp-ca.pem': gcp.ca.cert },
  });

  const refs: Record<StoreKind, string> = { kube: 'multi', vault: 'secret/data/shop/multi', sm: 'shop/multi', ssm: '/shop/multi', azure: 'shop-multi', gcp: 'multi' };

  return {
    p,
    kube,
    vault,
    aws,
    azure,
    gcp,
    canaries,
    errors,
    versions,
    setVersion,
    inject(store, fault, options = {}) {
      if (store === 'kube') kube.faults.inject(fault, { ...options, match: '/secrets/multi' });
      if (store === 'vault') vault.faults.inject(fault, { ...options, match: '/v1/secret/data/shop/multi' });
      if (store === 'sm') aws.faults.inject(fault, { ...options, match: 'secretsmanager.' });
      if (store === 'ssm') aws.faults.inject(fault, { ...options, match: 'AmazonSSM.' });
      if (store === 'azure') azure.faults.inject(fault, { ...options, match: '/secrets/shop-multi' });
      if (store === 'gcp') gcp.faults.inject(fault, { ...options, match: '/secrets/multi/versions/' });
    },
    applied(store, kind) {
      return (store === 'kube' ? kube : store === 'vault' ? vault : store === 'azure' ? azure : store === 'gcp' ? gcp : aws).faults.applied[kind];
    },
    clearFaults() {
      kube.faults.clear();
      vault.faults.clear();
      aws.faults.clear();
      azure.faults.clear();
      gcp.faults.clear();
    },
    request(store) {
      const tokens: Record<string, { token: string; expirationTimestamp: string }> = {};
      const add = (audience: string, t: { token: string; expiresAt: number }) => {
        canaries.add(t.token);
        tokens[audience] = { token: t.token, expirationTimestamp: new Date(t.expiresAt).toISOString() };
      };
      if (store === 'kube') add('', kube.issueToken({ namespace: 'shop', serviceAccount: 'app', expiresInSeconds: 7200 }));
      if (store === 'vault') add('vault', vault.issuePodToken({ namespace: 'shop', serviceAccount: 'app', ttlSeconds: 7200 }));
      if (store === 'azure') add(workloadIdentityAudience, { token: azure.issuePodToken({ namespace: 'shop', serviceAccount: 'app', ttlSeconds: 7200 }), expiresAt: Date.now() + 7_200_000 });
      if (store === 'gcp') add(gcp.poolAudience, gcp.issuePodToken({ namespace: 'shop', serviceAccount: 'app', ttlSeconds: 7200 }));
      if (store === 'sm' || store === 'ssm') {
        add('sts.amazonaws.com', aws.issuePodToken({ namespace: 'shop', serviceAccount: 'app', audience: 'sts.amazonaws.com', ttlSeconds: 7200 }));
      }
      return driverRequest(`- {name: s, store: ${store}, ref: ${refs[store]}, expand: keys}`, {
        namespace: 'shop',
        serviceAccount: 'app',
        tokens,
        ...(store === 'sm' || store === 'ssm' ? { parameters: { role: aws.roleArn('shop-app') } } : {}),
      });
    },
    versionOf(store, reply) {
      const files = new Map(reply.files.map((f) => [f.path, f.contents.toString('utf8')]));
      const got = { a: files.get('s/a'), b: files.get('s/b') };
      if (files.size !== 2) throw new Error(`expected exactly s/a and s/b, got ${[...files.keys()].join(', ')}`);
      const [v0, v1] = versions[store];
      if (got.a === v0.a && got.b === v0.b) return 0;
      if (got.a === v1.a && got.b === v1.b) return 1;
      throw new Error(`the reply of store ${store} mixes versions or carries foreign content`);
    },
    async close() {
      await p.stop();
      await Promise.all([kube.close(), vault.close(), aws.close(), azure.close(), gcp.close()]);
    },
  };
}
