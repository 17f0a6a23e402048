import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCanaries } from '../helpers/canary.js';
import { driverRequest, type PodOptions } from '../helpers/driver-client.js';
import { startTestProvider, type TestProvider } from '../helpers/provider.js';
import { providerConfigYaml, type StoreFields, type StoreYaml } from '../helpers/yaml.js';
import { awsRequest, primary, secondary, providerConfig as awsConfig } from '../aws/fixture.js';
import { startAwsTestServer, type AwsTestServer } from '../servers/aws.js';
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
