/**
 * find over Azure Key Vault through the Mount socket: `GET /secrets` as the pod's application (RBAC
 * readMetadata on the vault), paged by nextLink, then one read per secret found. The test server's
 * listing is checked by Microsoft's own SecretClient first.
 */
import { status } from '@grpc/grpc-js';
import { ClientAssertionCredential } from '@azure/identity';
import { SecretClient } from '@azure/keyvault-secrets';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCanaries } from '../helpers/canary.js';
import { driverRequest, fileMap } from '../helpers/driver-client.js';
import { startTestProvider, type TestProvider } from '../helpers/provider.js';
import { startAzureTestServer, workloadIdentityAudience, type AzureTestServer } from '../servers/azure.js';

const canaries = createCanaries();
const app = '3e0b6c1d-4f2a-4b8e-9c7d-1a2b3c4d5e6f';
const noList = '4f1c7d2e-5a3b-4c9f-8d6e-2b3c4d5e6f70';
const db = canaries.next('azure-find-db');
const api = canaries.next('azure-find-api');
const hidden = canaries.next('azure-find-hidden');
const off = canaries.next('azure-find-off');
const deniedName = 'shop-hidden-7d41';
const errors: string[] = [];

let azure: AzureTestServer;
let elsewhere: AzureTestServer;
let p: TestProvider;
const versions = new Map<string, string>();

const objects = (...entries: object[]) => stringify(entries);

beforeAll(async () => {
  [azure, elsewhere] = await Promise.all([startAzureTestServer(), startAzureTestServer()]);
  for (const [clientId, serviceAccount] of [[app, 'app'], [noList, 'nolist']] as const) {
    azure.federate({ clientId, namespace: 'shop', serviceAccount });
    azure.grant(clientId, ['secrets/shop-*', 'secrets/bulk-*']);
  }
  azure.grantList(app);
  azure.setSecret('shop-db', 'old', { tags: { team: 'pay' } });
  versions.set('shop-db', azure.setSecret('shop-db', db, { tags: { team: 'pay' } }));
  versions.set('shop-api', azure.setSecret('shop-api', api, { tags: { team: 'pay' } }));
  azure.setSecret('shop-web', 'web', { tags: { team: 'web' } });
  azure.setSecret(deniedName, hidden, { tags: { team: 'pay' } });
  azure.setSecret('shop-off', off, { enabled: false, tags: { team: 'pay' } });
  for (let i = 0; i < 30; i += 1) azure.setSecret(`bulk-${String(i).padStart(2, '0')}`, `bulk-${i}`);
  p = await startTestProvider({
    files: { 'azure-ca.pem': azure.ca.cert },
    config: `
defaultStore: azure
versionKey: test-version-key-0123456789
stores:
  - name: azure
    backend: azure-key-vault
    vaultUrl: ${azure.url}
    authorityHost: ${azure.url}
    tenantId: ${azure.tenantId}
    allowedClientIds: ["${app}", "${noList}"]
    tls: {caFile: ../azure-ca.pem}
    cache: {ttl: 0s}
    retry: {attempts: 1}
    breaker: {failures: 1000}
    access:
      - allow: {refs: ["shop-*", "bulk-*"]}
      - deny: {refs: ["shop-hidden*"]}
`,
  });
}, 60_000);

afterAll(async () => {
  const metrics = p ? await p.metrics.registry.metrics() : '';
  await p?.stop();
  await Promise.all([azure?.close(), elsewhere?.close()]);
  canaries.expectNoneIn(p?.logs ?? [], 'provider logs');
  canaries.expectNoneIn(errors, 'gRPC error messages');
  canaries.expectNoneIn([metrics], 'metrics');
  for (const text of [(p?.logs ?? []).join('\n'), errors.join('\n'), metrics]) expect(text).not.toContain(deniedName);
});

function request(yaml: string, serviceAccount = 'app', clientId = app) {
  const token = azure.issuePodToken({ namespace: 'shop', serviceAccount });
  canaries.add(token);
  return driverRequest(yaml, { namespace: 'shop', serviceAccount, parameters: { role: clientId }, tokens: { [workloadIdentityAudience]: { token } } });
}

async function failMount(yaml: string, serviceAccount?: string, clientId?: string) {
  const err = await p.client.mountError(request(yaml, serviceAccount, clientId));
  errors.push(err.details);
  return err;
}

describe('the Azure test server\'s listing, read by the official SDK', () => {
  it('pages by nextLink and carries properties without values', async () => {
    const tlsOptions = { ca: azure.ca.cert };
    const credential = new ClientAssertionCredential(azure.tenantId, app, async () => azure.issuePodToken({ namespace: 'shop', serviceAccount: 'app' }), {
      authorityHost: azure.url,
      disableInstanceDiscovery: true,
      tlsOptions,
    });
    const client = new SecretClient(azure.url, credential, { disableChallengeResourceVerification: true, tlsOptions, retryOptions: { maxRetries: 0 } });
    const before = azure.counters.lists;
    const found = [];
    for await (const properties of client.listPropertiesOfSecrets()) found.push(properties);
    expect(found.map((s) => s.name)).toContain('bulk-29');
    expect(found).toHaveLength(35);
    expect(azure.counters.lists - before, 'two pages of 25').toBe(2);
    const shopDb = found.find((s) => s.name === 'shop-db')!;
    expect(shopDb).toMatchObject({ enabled: true, tags: { team: 'pay' }, vaultUrl: azure.url });
    expect(shopDb).not.toHaveProperty('value');
    expect(found.find((s) => s.name === 'shop-off')!.enabled).toBe(false);
  });
});

describe('find over azure-key-vault', () => {
  it('lists the vault, keeps the prefix and tags, and reads each secret found with its own version', async () => {
    const [lists, reads] = [azure.counters.lists, azure.counters.reads];
    const reply = await p.client.mount(request(objects({ name: 'pay', find: { prefix: 'shop-', labels: { team: 'pay' } }, mode: '0400' })));
    const files = fileMap(reply);
    expect([...files.keys()].sort()).toEqual(['pay/api', 'pay/db']);
    expect(files.get('pay/db')!.contents.toString()).toBe(db);
    expect(files.get('pay/db')!.mode).toBe(0o400);
    const mounted = new Map(reply.objectVersion.map((v) => [v.id, v.version]));
    expect(mounted.get('pay/db')).toBe(versions.get('shop-db'));
    expect(mounted.get('pay/api')).toBe(versions.get('shop-api'));
    expect(azure.counters.lists - lists, 'Key Vault filters nothing: the whole vault, 25 secrets a page').toBe(2);
    expect(azure.counters.reads - reads, 'one read per secret the rules allow').toBe(2);
    expect(await p.metrics.registry.metrics(), 'the denied secret was found and left out').toMatch(/usp_find_refs_excluded_total\{store="azure"\} [1-9]/);
  });

  it('finds secrets on every page', async () => {
    const reply = await p.client.mount(request(objects({ name: 'bulk', find: { prefix: 'bulk-' } })));
    expect(reply.files).toHaveLength(30);
    expect(fileMap(reply).get('bulk/29')!.contents.toString()).toBe('bulk-29');
  });

  it('shows a secret added or removed on the next Mount', async () => {
    const yaml = objects({ name: 'pay', find: { prefix: 'shop-', labels: { team: 'pay' } } });
    azure.setSecret('shop-new', 'fresh', { tags: { team: 'pay' } });
    expect(fileMap(await p.client.mount(request(yaml))).get('pay/new')!.contents.toString()).toBe('fresh');
    azure.deleteSecret('shop-new');
    expect(fileMap(await p.client.mount(request(yaml))).has('pay/new')).toBe(false);
  });

  it('needs the list permission: an application without it is PermissionDenied, naming the RBAC action', async () => {
    const err = await failMount(objects({ name: 'x', find: { prefix: 'shop-' } }), 'nolist', noList);
    expect(err.code).toBe(status.PERMISSION_DENIED);
    expect(err.details).toContain('Microsoft.KeyVault/vaults/secrets/readMetadata/action');
  });

  it('fails the Mount when page two fails: nothing partial', async () => {
    azure.inject({ kind: 'status', status: 500 }, { match: 'skiptoken', times: Infinity });
    try {
      const err = await failMount(objects({ name: 'bulk', find: { prefix: 'bulk-' } }));
      expect(err.code).toBe(status.UNAVAILABLE);
      expect(err.details).toContain('listing');
    } finally {
      azure.faults.clear();
    }
  });

  it('never follows a nextLink to another host with the access token', async () => {
    azure.setNextLinkOrigin(elsewhere.url);
    try {
      const err = await failMount(objects({ name: 'bulk', find: { prefix: 'bulk-' } }));
      expect(err.code).toBe(status.UNAVAILABLE);
      expect(err.details).toContain('not followed');
      expect(elsewhere.counters.requests).toBe(0);
    } finally {
      azure.setNextLinkOrigin(undefined);
    }
  });

  it('refuses a prefix with a folder: Key Vault names have none', async () => {
    const err = await failMount(objects({ name: 'x', find: { prefix: 'shop-/db', recursive: true } }));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toContain('names have no folders');
  });
});
