/**
 * The gcp-secret-manager store through the Mount socket: real gRPC on a Unix socket into the real
 * provider, real HTTPS from the provider to the Google test server (STS, IAM credentials and
 * Secret Manager on one port), its CA verified; a file store beside it.
 */
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCanaries } from '../helpers/canary.js';
import { driverRequest, fileMap, type MountReply } from '../helpers/driver-client.js';
import { startTestProvider, type TestProvider } from '../helpers/provider.js';
import { fileStore, objectsYaml, providerConfigYaml, type ObjectYaml } from '../helpers/yaml.js';
import { startGcpTestServer, type GcpTestServer } from '../servers/gcp.js';

const canaries = createCanaries();
const errors: string[] = [];
let gcp: GcpTestServer;
let p: TestProvider;

const values = {
  global: canaries.next('global'),
  regional: canaries.next('regional'),
  file: canaries.next('file'),
  dbPassword: canaries.next('db-password'),
  appOnly: canaries.next('app-only'),
};

beforeAll(async () => {
  gcp = await startGcpTestServer();
  const endpoints = { sts: gcp.url, iamCredentials: gcp.url, secretManager: gcp.url };
  const common = { audience: gcp.poolAudience, project: gcp.projectId, endpoints, tls: { caFile: '../gcp-ca.pem' }, timeout: '5s', cache: { ttl: 0 } };
  const config = providerConfigYaml({
    defaultStore: 'gcp',
    stores: [
      { name: 'gcp', backend: 'gcp-secret-manager', ...common, retry: { attempts: 3, baseDelay: '10ms', maxDelay: '50ms' }, breaker: { failures: 1000 } },
      { name: 'gcp-eu', backend: 'gcp-secret-manager', ...common, location: 'europe-west1', serviceAccount: '{namespace}-reader@shop-prod.iam.gserviceaccount.com' },
      fileStore('files', '../secrets', { cache: { ttl: 0 } }),
    ],
  });
  const reader = 'shop-reader@shop-prod.iam.gserviceaccount.com';
  gcp.addVersion('global', values.global);
  gcp.addVersion('db', JSON.stringify({ username: 'shop', password: values.dbPassword }));
  gcp.addVersion('app-only', values.appOnly);
  gcp.addVersion('regional', values.regional, { location: 'europe-west1' });
  for (const account of ['app', 'worker']) {
    gcp.grantAccess(gcp.federatedMember('shop', account), 'global');
    gcp.grantTokenCreator(gcp.federatedMember('shop', account), reader);
  }
  gcp.grantAccess(gcp.federatedMember('shop', 'app'), 'db');
  gcp.grantAccess(gcp.federatedMember('shop', 'app'), 'app-only');
  gcp.addServiceAccount(reader);
  gcp.grantAccess(`serviceAccount:${reader}`, 'regional', { location: 'europe-west1' });
  p = await startTestProvider({ config, files: { 'gcp-ca.pem': gcp.ca.cert, 'secrets/shop/banner': values.file } });
}, 60_000);

afterAll(async () => {
  const metrics = p ? await p.metrics.registry.metrics() : '';
  await p?.stop();
  await gcp?.close();
  canaries.add(...(gcp?.issuedTokens ?? []));
  canaries.expectNoneIn(p?.logs ?? [], 'provider logs');
  canaries.expectNoneIn(errors, 'gRPC error details');
  canaries.expectNoneIn([metrics], 'metrics');
});

function request(objects: readonly ObjectYaml[], serviceAccount = 'app') {
  const issued = gcp.issuePodToken({ namespace: 'shop', serviceAccount });
  canaries.add(issued.token);
  return driverRequest(objectsYaml(objects), {
    namespace: 'shop',
    serviceAccount,
    tokens: { [gcp.poolAudience]: { token: issued.token, expirationTimestamp: new Date(issued.expiresAt).toISOString() } },
  });
}

const mount = (objects: readonly ObjectYaml[], serviceAccount?: string) => p.client.mount(request(objects, serviceAccount));

async function failMount(objects: readonly ObjectYaml[], serviceAccount?: string) {
  const err = await p.client.mountError(request(objects, serviceAccount));
  errors.push(err.details);
  return err;
}

function text(reply: MountReply, path: string): string {
  const file = fileMap(reply).get(path);
  if (!file) throw new Error(`no file ${path} in the reply (got ${reply.files.map((f) => f.path).join(', ')})`);
  return file.contents.toString('utf8');
}

const versionOf = (reply: MountReply, id: string) => reply.objectVersion.find((v) => v.id === id)?.version;

describe('gcp-secret-manager store through the Mount socket', () => {
  it('mounts a global secret, a regional secret read as an impersonated service account, and a file object', async () => {
    const before = { ...gcp.counters };
    const reply = await mount([
      { name: 'global', ref: 'global' },
      { name: 'regional', store: 'gcp-eu', ref: 'regional' },
      { name: 'db-password', ref: `projects/${gcp.projectNumber}/secrets/db/versions/latest`, key: 'password' },
      { name: 'banner', store: 'files', ref: 'shop/banner' },
    ]);
    expect(text(reply, 'global')).toBe(values.global);
    expect(text(reply, 'regional')).toBe(values.regional);
    expect(text(reply, 'db-password')).toBe(values.dbPassword);
    expect(text(reply, 'banner')).toBe(values.file);
    expect(versionOf(reply, 'global')).toBe('1');
    expect(versionOf(reply, 'regional')).toBe('1');
    // Each store exchanges once for this pod; only gcp-eu impersonates.
    expect(gcp.counters.exchanges - before.exchanges).toBe(2);
    expect(gcp.counters.impersonations - before.impersonations).toBe(1);
    const regionalRead = gcp.requests.find((r) => r.path === '/v1/projects/shop-prod/locations/europe-west1/secrets/regional/versions/latest:access');
    expect(regionalRead?.members).toEqual(['serviceAccount:shop-reader@shop-prod.iam.gserviceaccount.com']);
  });

  it('retries a payload whose checksum does not match, and never writes it', async () => {
    gcp.corruptChecksums(1);
    const reply = await mount([{ name: 'global', ref: 'global' }]);
    expect(text(reply, 'global')).toBe(values.global);

    gcp.corruptChecksums(Infinity);
    try {
      const err = await failMount([{ name: 'global', ref: 'global' }]);
      expect(err.code).toBe(status.UNAVAILABLE);
      expect(err.details).toContain('CRC32C');
      expect(err.details).toContain('objects[0] "global" (store gcp, ref global)');
    } finally {
      gcp.corruptChecksums(0);
    }
  });

  it('gives each service account its own token: another pod cannot read what only app may', async () => {
    expect(text(await mount([{ name: 'mine', ref: 'app-only' }], 'app'), 'mine')).toBe(values.appOnly);
    const err = await failMount([{ name: 'mine', ref: 'app-only' }], 'worker');
    expect(err.code).toBe(status.PERMISSION_DENIED);
    expect(err.details).toContain(gcp.federatedMember('shop', 'worker'));
    const reads = gcp.requests.filter((r) => r.path.endsWith('/secrets/app-only/versions/latest:access'));
    expect(reads.map((r) => r.members[0])).toEqual([gcp.federatedMember('shop', 'app'), gcp.federatedMember('shop', 'worker')]);
  });

  it('answers NOT_FOUND for a missing secret and INVALID_ARGUMENT for a bad ref, naming the object', async () => {
    gcp.grantAccess(gcp.federatedMember('shop', 'app'), 'nothing');
    const missing = await failMount([{ name: 'x', ref: 'nothing' }]);
    expect(missing.code).toBe(status.NOT_FOUND);
    expect(missing.details).toContain('objects[0] "x"');
    const bad = await failMount([{ name: 'x', ref: 'projects/p/oops' }]);
    expect(bad.code).toBe(status.INVALID_ARGUMENT);
    expect(bad.details).toContain('ref must be');
  });
});
