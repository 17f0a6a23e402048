/**
 * Azure Key Vault through the Mount socket, next to Vault in the same class: real gRPC into the
 * real provider, real HTTPS to the Azure and Vault test servers, each with its own CA.
 */
import { X509Certificate } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCanaries } from '../helpers/canary.js';
import { driverRequest, fileMap, type MountReply } from '../helpers/driver-client.js';
import { startTestProvider, type TestProvider } from '../helpers/provider.js';
import { createTestChain, startAzureTestServer, workloadIdentityAudience, type AzureTestServer, type TestChain } from '../servers/azure.js';
import { startVaultTestServer, type VaultTestServer } from '../servers/vault.js';

const canaries = createCanaries();
const clientId = '5c0e7f3a-9d1b-4a6e-8f2c-7b3d9e1a0c4f';
const azureValue = canaries.next('azure-db');
const vaultValue = { password: canaries.next('vault-db') };
const errors: string[] = [];

let azure: AzureTestServer;
let vault: VaultTestServer;
let p: TestProvider;
let chain: TestChain;
let azureVersion: string;

beforeAll(async () => {
  [azure, vault] = await Promise.all([startAzureTestServer(), startVaultTestServer()]);
  azure.federate({ clientId, namespace: 'shop', serviceAccount: 'app' });
  azure.grant(clientId, ['secrets/shop-*']);
  azureVersion = azure.setSecret('shop-db', azureValue);
  chain = await createTestChain();
  azure.addCertificate('shop-web', chain);
  azure.setSecret('billing-db', canaries.next('billing'));
  vault.enableKv('secret', 2);
  vault.writeKv('secret', 'shop/db', vaultValue);
  vault.definePolicy('app', { 'secret/data/shop/*': ['read'] });
  vault.defineRole({ name: 'app', boundServiceAccountNames: ['app'], boundNamespaces: ['shop'], policies: ['app'] });
  p = await startTestProvider({
    config: `
defaultStore: azure
versionKey: test-version-key-0123456789
stores:
  - name: azure
    backend: azure-key-vault
    vaultUrl: ${azure.url}
    authorityHost: ${azure.url}
    tenantId: ${azure.tenantId}
    clientId: ${clientId}
    tls: {caFile: ../azure-ca.pem}
  - name: vault
    backend: vault
    address: ${vault.url}
    tls: {caFile: ../vault-ca.pem}
    auth: {method: kubernetes, role: app}
`,
    files: { 'azure-ca.pem': azure.ca.cert, 'vault-ca.pem': vault.ca.cert },
  });
}, 60_000);

afterAll(async () => {
  await p?.stop();
  await Promise.all([azure?.close(), vault?.close()]);
  canaries.expectNoneIn(p?.logs ?? [], 'provider logs');
  canaries.expectNoneIn(errors, 'gRPC error details');
});

function request(objects: string, serviceAccount = 'app') {
  const azureToken = azure.issuePodToken({ namespace: 'shop', serviceAccount });
  const vaultToken = vault.issuePodToken({ namespace: 'shop', serviceAccount }).token;
  canaries.add(azureToken, vaultToken);
  return driverRequest(objects, { namespace: 'shop', serviceAccount, tokens: { [workloadIdentityAudience]: { token: azureToken }, vault: { token: vaultToken } } });
}

const text = (reply: MountReply, path: string) => {
  const file = fileMap(reply).get(path);
  if (!file) throw new Error(`no file ${path} (got ${reply.files.map((f) => f.path).join(', ')})`);
  return file.contents.toString('utf8');
};
const labels = (pem: string) => [...pem.matchAll(/-----BEGIN ([A-Z ]+)-----/g)].map((m) => m[1]);

describe('azure-key-vault through the Mount socket', () => {
  it('mounts an Azure secret, a certificate as a PEM chain and a Vault secret in one class', async () => {
    const reads = azure.counters.reads;
    const reply = await p.client.mount(
      request(`
- {name: db-password, ref: shop-db}
- {name: tls.pem, ref: shop-web}
- {name: web.crt, ref: shop-web, format: pem-pair, key: crt}
- {name: web.key, ref: shop-web, format: pem-pair, key: key}
- {name: vault-db, store: vault, ref: secret/data/shop/db, key: password}
`),
    );
    expect(reply.error).toBeNull();
    expect(text(reply, 'db-password')).toBe(azureValue);
    expect(reply.objectVersion.find((v) => v.id === 'db-password')?.version).toBe(azureVersion);
    expect(labels(text(reply, 'tls.pem'))).toEqual(['PRIVATE KEY', 'CERTIFICATE', 'CERTIFICATE', 'CERTIFICATE']);
    const chainSubjects = chain.certificates.map((c) => new X509Certificate(c).subject);
    const mounted = [...text(reply, 'web.crt').matchAll(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g)].map((m) => new X509Certificate(m[0]).subject);
    expect(mounted).toEqual(chainSubjects);
    expect(labels(text(reply, 'web.key'))).toEqual(['PRIVATE KEY']);
    expect(text(reply, 'vault-db')).toBe(vaultValue.password);
    // web.crt and web.key (same ref and fields) share one read: three reads for four Azure objects.
    expect(azure.counters.reads - reads).toBe(3);
  });

  it('refuses the whole Mount when the pod may not read one Azure object, naming it', async () => {
    const err = await p.client.mountError(request('- {name: db, ref: shop-db}\n- {name: other, ref: billing-db}'));
    errors.push(err.details);
    expect(err.code).toBe(status.PERMISSION_DENIED);
    expect(err.details).toContain('billing-db');
    expect(err.details).toContain('ForbiddenByRbac');
  });

  it('names the federated credential that is missing', async () => {
    const err = await p.client.mountError(request('- {name: db, ref: shop-db}', 'stranger'));
    errors.push(err.details);
    expect(err.code).toBe(status.PERMISSION_DENIED);
    expect(err.details).toContain('system:serviceaccount:shop:stranger');
  });
});
