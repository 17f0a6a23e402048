import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCanaries } from '../helpers/canary.js';
import { driverRequest, type PodOptions } from '../helpers/driver-client.js';
import { startTestProvider, type TestProvider } from '../helpers/provider.js';
import { providerConfigYaml, type StoreFields, type StoreYaml } from '../helpers/yaml.js';
import { awsRequest, primary, secondary, providerConfig as awsConfig } from '../aws/fixture.js';
import { startAwsTestServer, type AwsTestServer } from '../servers/aws.js';
import { startAzureTestServer, workloadIdentityAudience, type AzureTestServer } from '../servers/azure.js';
import { startGcpTestServer, type GcpTestServer } from '../servers/gcp.js';
import { startVaultTestServer, type VaultTestServer } from '../servers/vault.js';

/**
 * A pod trying another namespace's objects, through the Vault and AWS stores (the file and
 * Kubernetes stores are covered in matrix.test.ts): refused by the provider's access rules before
 * the store is called, and, without such rules, by the store itself, which verifies the pod's token.
 */
const canaries = createCanaries();
const shopValue = canaries.next('shop-only');
const errors: string[] = [];

describe('vault store: another namespace', () => {
  let vault: VaultTestServer;
  let p: TestProvider;

  beforeAll(async () => {
    vault = await startVaultTestServer();
    vault.enableKv('secret', 2);
    vault.writeKv('secret', 'shop/db', { password: shopValue });
    vault.definePolicy('shop', { 'secret/data/shop/*': ['read'] });
    vault.definePolicy('web', { 'secret/data/web/*': ['read'] });
    vault.defineRole({ name: 'shop', boundServiceAccountNames: ['app'], boundNamespaces: ['shop'], policies: ['shop'] });
    vault.defineRole({ name: 'web', boundServiceAccountNames: ['app'], boundNamespaces: ['web'], policies: ['web'] });
    const store = (name: string, fields: StoreFields = {}): StoreYaml => ({
      name,
      backend: 'vault',
      address: vault.url,
      tls: { caFile: '../ca.pem' },
      auth: { method: 'kubernetes', audience: 'vault' },
      cache: { ttl: 0 },
      breaker: { failures: 1000 },
      ...fields,
    });
    p = await startTestProvider({
      files: { 'ca.pem': vault.ca.cert },
      config: providerConfigYaml({
        versionKey: 'access-version-key-0123456789',
        stores: [store('scoped', { access: [{ allow: { refs: ['secret/data/{namespace}/*'] } }] }), store('open')],
      }),
    });
  }, 60_000);

  afterAll(async () => {
    await p.stop();
    await vault.close();
    canaries.expectNoneIn(p.logs, 'provider logs');
    canaries.expectNoneIn(errors, 'error messages');
  });

  const pod = (namespace: string, role: string): PodOptions => {
    const { token, expiresAt } = vault.issuePodToken({ namespace, serviceAccount: 'app', audience: 'vault' });
    canaries.add(token);
    return { namespace, serviceAccount: 'app', parameters: { role }, tokens: { vault: { token, expirationTimestamp: new Date(expiresAt).toISOString() } } };
  };

  it('serves the pod its own namespace', async () => {
    const reply = await p.client.mount(driverRequest('- {name: pw, store: scoped, ref: secret/data/shop/db, key: password}', pod('shop', 'shop')));
    expect(reply.files[0]!.contents.toString()).toBe(shopValue);
  });

  it('refuses another namespace by access rules before calling Vault', async () => {
    const logins = vault.counters.logins;
    const err = await p.client.mountError(driverRequest('- {name: pw, store: scoped, ref: secret/data/shop/db, key: password}', pod('web', 'web')));
    errors.push(err.details);
    expect(err.code).toBe(status.PERMISSION_DENIED);
    expect(err.details).toContain('service account web/app may not read this ref from store scoped');
    expect(vault.counters.logins).toBe(logins);
  });

  it("without rules, Vault refuses: the web pod's token cannot log in to the shop role, and its own role cannot read shop", async () => {
    let err = await p.client.mountError(driverRequest('- {name: pw, store: open, ref: secret/data/shop/db, key: password}', pod('web', 'shop')));
    errors.push(err.details);
    expect(err.code).toBe(status.PERMISSION_DENIED);
    err = await p.client.mountError(driverRequest('- {name: pw, store: open, ref: secret/data/shop/db, key: password}', pod('web', 'web')));
    errors.push(err.details);
    expect(err.code).toBe(status.PERMISSION_DENIED);
    expect(err.details).toContain('role "web"');
  });
});

describe('AWS store: another namespace', () => {
  let aws: AwsTestServer;
  let p: TestProvider;

  beforeAll(async () => {
    aws = await startAwsTestServer({ regions: [primary, secondary] });
    aws.defineRole({ name: 'shop-app', trust: [{ namespace: 'shop', serviceAccount: 'app' }], allow: ['shop/*'] });
    aws.defineRole({ name: 'web-app', trust: [{ namespace: 'web', serviceAccount: 'app' }], allow: ['web/*'] });
    aws.putSecret('shop/db', shopValue);
    p = await startTestProvider({
      config: awsConfig(aws, `  - name: scoped
    backend: aws-secrets-manager
    region: ${primary}
    endpoint: ${aws.endpoint(primary)}
    cache: {ttl: 0}
    auth: {method: irsa, stsEndpoint: "${aws.stsUrl}"}
    access: [{allow: {refs: ["{namespace}/*"]}}]
`),
    });
  }, 60_000);

  afterAll(async () => {
    await p.stop();
    await aws.close();
    canaries.expectNoneIn(p.logs, 'provider logs');
    canaries.expectNoneIn(errors, 'error messages');
  });

  const request = (store: string, namespace: string, role: string) =>
    awsRequest(aws, `- {name: db, store: ${store}, ref: shop/db}`, { namespace, serviceAccount: 'app', role: aws.roleArn(role) });

  it('serves the pod its own namespace', async () => {
    const reply = await p.client.mount(request('scoped', 'shop', 'shop-app'));
    expect(reply.files[0]!.contents.toString()).toBe(shopValue);
  });

  it('refuses another namespace by access rules before calling STS', async () => {
    const before = aws.calls.length;
    const err = await p.client.mountError(request('scoped', 'web', 'web-app'));
    errors.push(err.details);
    expect(err.code).toBe(status.PERMISSION_DENIED);
    expect(err.details).toContain('service account web/app may not read this ref from store scoped');
    expect(aws.calls.length).toBe(before);
  });

  it("without rules, AWS refuses: the shop role does not trust the web pod, and the web role cannot read shop's secret", async () => {
    let err = await p.client.mountError(request('sm', 'web', 'shop-app'));
    errors.push(err.details);
    expect(err.code).toBe(status.PERMISSION_DENIED);
    err = await p.client.mountError(request('sm', 'web', 'web-app'));
    errors.push(err.details);
    expect(err.code).toBe(status.PERMISSION_DENIED);
  });
});

describe('Azure Key Vault store: another namespace', () => {
  const shopClient = 'a0a0a0a0-0000-4000-8000-00000000000a';
  const webClient = 'b0b0b0b0-0000-4000-8000-00000000000b';
  let azure: AzureTestServer;
  let p: TestProvider;

  beforeAll(async () => {
    azure = await startAzureTestServer();
    azure.federate({ clientId: shopClient, namespace: 'shop', serviceAccount: 'app' });
    azure.federate({ clientId: webClient, namespace: 'web', serviceAccount: 'app' });
    azure.grant(shopClient, ['secrets/shop-*']);
    azure.grant(webClient, ['secrets/web-*']);
    azure.setSecret('shop-db', shopValue);
    const store = (name: string, fields: StoreFields = {}): StoreYaml => ({
      name,
      backend: 'azure-key-vault',
      vaultUrl: azure.url,
      authorityHost: azure.url,
      tenantId: azure.tenantId,
      allowedClientIds: ['*'],
      tls: { caFile: '../ca.pem' },
      cache: { ttl: 0 },
      breaker: { failures: 1000 },
      ...fields,
    });
    p = await startTestProvider({
      files: { 'ca.pem': azure.ca.cert },
      config: providerConfigYaml({
        versionKey: 'access-version-key-0123456789',
        stores: [store('scoped', { access: [{ allow: { refs: ['{namespace}-*'] } }] }), store('open')],
      }),
    });
  }, 60_000);

  afterAll(async () => {
    await p.stop();
    await azure.close();
    canaries.expectNoneIn(p.logs, 'provider logs');
    canaries.expectNoneIn(errors, 'error messages');
  });

  const request = (store: string, namespace: string, clientId: string) => {
    const token = azure.issuePodToken({ namespace, serviceAccount: 'app' });
    canaries.add(token);
    return driverRequest(`- {name: db, store: ${store}, ref: shop-db}`, {
      namespace,
      serviceAccount: 'app',
      parameters: { role: clientId },
      tokens: { [workloadIdentityAudience]: { token } },
    });
  };

  it('serves the pod its own namespace', async () => {
    const reply = await p.client.mount(request('scoped', 'shop', shopClient));
    expect(reply.files[0]!.contents.toString()).toBe(shopValue);
  });

  it('refuses another namespace by access rules before calling Entra ID', async () => {
    const before = azure.counters.requests;
    const err = await p.client.mountError(request('scoped', 'web', webClient));
    errors.push(err.details);
    expect(err.code).toBe(status.PERMISSION_DENIED);
    expect(err.details).toContain('service account web/app may not read this ref from store scoped');
    expect(azure.counters.requests).toBe(before);
  });

  it("without rules, Azure refuses: the shop application is not federated with the web pod, and the web application cannot read shop's secret", async () => {
    let err = await p.client.mountError(request('open', 'web', shopClient));
    errors.push(err.details);
    expect(err.code).toBe(status.PERMISSION_DENIED);
    expect(err.details).toContain('AADSTS70021');
    err = await p.client.mountError(request('open', 'web', webClient));
    errors.push(err.details);
    expect(err.code).toBe(status.PERMISSION_DENIED);
    expect(err.details).toContain('ForbiddenByRbac');
  });
});

describe('Google Secret Manager store: another namespace', () => {
  const shopAccount = 'shop-secrets@shop-prod.iam.gserviceaccount.com';
  let gcp: GcpTestServer;
  let p: TestProvider;

  beforeAll(async () => {
    gcp = await startGcpTestServer();
    gcp.addVersion('shop-db', shopValue);
    gcp.grantAccess(gcp.federatedMember('shop', 'app'), 'shop-db');
    gcp.addServiceAccount(shopAccount);
    gcp.grantTokenCreator(gcp.federatedMember('shop', 'app'), shopAccount);
    gcp.grantAccess(`serviceAccount:${shopAccount}`, 'shop-db');
    const store = (name: string, fields: StoreFields = {}): StoreYaml => ({
      name,
      backend: 'gcp-secret-manager',
      project: gcp.projectId,
      audience: gcp.poolAudience,
      endpoints: { sts: gcp.url, iamCredentials: gcp.url, secretManager: gcp.url },
      tls: { caFile: '../ca.pem' },
      cache: { ttl: 0 },
      breaker: { failures: 1000 },
      ...fields,
    });
    p = await startTestProvider({
      files: { 'ca.pem': gcp.ca.cert },
      config: providerConfigYaml({
        versionKey: 'access-version-key-0123456789',
        stores: [
          store('scoped', { access: [{ allow: { refs: ['{namespace}-*'] } }] }),
          store('open'),
          store('chosen', { serviceAccountPattern: '{namespace}-*@shop-prod.iam.gserviceaccount.com' }),
          store('as-shop', { serviceAccount: shopAccount }),
        ],
      }),
    });
  }, 60_000);

  afterAll(async () => {
    await p.stop();
    await gcp.close();
    canaries.add(...gcp.issuedTokens);
    canaries.expectNoneIn(p.logs, 'provider logs');
    canaries.expectNoneIn(errors, 'error messages');
  });

  const request = (objects: string, namespace: string) => {
    const { token, expiresAt } = gcp.issuePodToken({ namespace, serviceAccount: 'app' });
    canaries.add(token);
    return driverRequest(objects, {
      namespace,
      serviceAccount: 'app',
      tokens: { [gcp.poolAudience]: { token, expirationTimestamp: new Date(expiresAt).toISOString() } },
    });
  };
  const failMount = async (objects: string, namespace: string) => {
    const err = await p.client.mountError(request(objects, namespace));
    errors.push(err.details);
    return err;
  };

  it('serves the pod its own namespace, directly and through its service account', async () => {
    const reply = await p.client.mount(request(`- {name: db, store: scoped, ref: shop-db}\n- {name: as-sa, store: chosen, ref: shop-db, serviceAccount: ${shopAccount}}`, 'shop'));
    expect(reply.files.map((f) => f.contents.toString())).toEqual([shopValue, shopValue]);
  });

  it('refuses another namespace by access rules before calling Google', async () => {
    const before = gcp.requests.length;
    const err = await failMount('- {name: db, store: scoped, ref: shop-db}', 'web');
    expect(err.code).toBe(status.PERMISSION_DENIED);
    expect(err.details).toContain('service account web/app may not read this ref from store scoped');
    expect(gcp.requests.length).toBe(before);
  });

  it("refuses another namespace's service account by the store's pattern before calling Google", async () => {
    const before = gcp.requests.length;
    const err = await failMount(`- {name: db, store: chosen, ref: shop-db, serviceAccount: ${shopAccount}}`, 'web');
    expect(err.code).toBe(status.PERMISSION_DENIED);
    expect(err.details).toContain('is not allowed for service account web/app by this store');
    expect(gcp.requests.length).toBe(before);
  });

  it("without rules, Google refuses: the web pod's principal cannot read shop's secret, nor impersonate shop's account", async () => {
    let err = await failMount('- {name: db, store: open, ref: shop-db}', 'web');
    expect(err.code).toBe(status.PERMISSION_DENIED);
    expect(err.details).toContain(gcp.federatedMember('web', 'app'));
    err = await failMount('- {name: db, store: as-shop, ref: shop-db}', 'web');
    expect(err.code).toBe(status.PERMISSION_DENIED);
    expect(err.details).toContain(`may not impersonate service account ${shopAccount}: it needs roles/iam.workloadIdentityUser`);
  });
});
