/**
 * find over Google Secret Manager through the Mount socket: `secrets.list` as the pod's federated
 * principal (permission secretmanager.secrets.list), filtered by name and labels, paged by
 * nextPageToken, then `versions/latest:access` per secret found, checksums verified. The test
 * server's listing is checked by Google's own client first.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { SecretManagerServiceClient } from '@google-cloud/secret-manager';
import { IdentityPoolClient } from 'google-auth-library';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCanaries } from '../helpers/canary.js';
import { driverRequest, fileMap } from '../helpers/driver-client.js';
import { startTestProvider, type TestProvider } from '../helpers/provider.js';
import { startGcpTestServer, type GcpTestServer } from '../servers/gcp.js';

const canaries = createCanaries();
const db = canaries.next('gcp-find-db');
const api = canaries.next('gcp-find-api');
const hidden = canaries.next('gcp-find-hidden');
const regional = canaries.next('gcp-find-regional');
const deniedName = 'shop-hidden-3f8a';
const errors: string[] = [];

let gcp: GcpTestServer;
let p: TestProvider;

const objects = (...entries: object[]) => stringify(entries);

beforeAll(async () => {
  gcp = await startGcpTestServer();
  const app = gcp.federatedMember('shop', 'app');
  gcp.grantAccess(app, '*');
  gcp.grantAccess(app, '*', { location: 'europe-west1' });
  gcp.grantAccess(gcp.federatedMember('shop', 'nolist'), '*');
  gcp.grantList(app);
  gcp.grantList(app, { location: 'europe-west1' });
  gcp.addVersion('shop-db', 'old');
  gcp.addVersion('shop-db', db);
  gcp.addVersion('shop-api', api);
  gcp.addVersion('shop-web', 'web');
  gcp.addVersion(deniedName, hidden);
  gcp.addVersion('shop-off', 'off');
  gcp.setState('shop-off', 1, 'DISABLED');
  for (const secret of ['shop-db', 'shop-api', deniedName, 'shop-off', 'shop-empty', 'workshop-x']) gcp.setLabels(secret, { team: 'pay' });
  gcp.setLabels('shop-web', { team: 'web' });
  gcp.setLabels('shop-db', { team: 'pay', 'cost-center': 'c1' });
  gcp.setLabels('shop-api', { team: 'pay', 'cost-center': 'c2' });
  gcp.addVersion('workshop-x', 'contains the prefix');
  for (let i = 0; i < 60; i += 1) gcp.addVersion(`bulk-${String(i).padStart(2, '0')}`, `bulk-${i}`);
  gcp.addVersion('shop-eu', regional, { location: 'europe-west1' });
  const endpoints = `{sts: "${gcp.url}", iamCredentials: "${gcp.url}", secretManager: "${gcp.url}"}`;
  const store = (name: string, extra = '') => `
  - name: ${name}
    backend: gcp-secret-manager
    project: ${gcp.projectId}
    audience: "${gcp.poolAudience}"
    endpoints: ${endpoints}
    tls: {caFile: ../gcp-ca.pem}
    cache: {ttl: 0s}
    retry: {attempts: 1}
    breaker: {failures: 1000}${extra}`;
  p = await startTestProvider({
    files: { 'gcp-ca.pem': gcp.ca.cert },
    config: `
defaultStore: gcp
versionKey: test-version-key-0123456789
stores:${store('gcp', `
    access:
      - allow: {refs: ["shop-*", "bulk-*", "projects/${gcp.projectId}/**"]}
      - deny: {refs: ["shop-hidden*"]}`)}${store('gcp-eu', '\n    location: europe-west1')}
`,
  });
}, 60_000);

afterAll(async () => {
  const metrics = p ? await p.metrics.registry.metrics() : '';
  await p?.stop();
  await gcp?.close();
  canaries.add(...(gcp?.issuedTokens ?? []));
  canaries.expectNoneIn(p?.logs ?? [], 'provider logs');
  canaries.expectNoneIn(errors, 'gRPC error messages');
  canaries.expectNoneIn([metrics], 'metrics');
  for (const text of [(p?.logs ?? []).join('\n'), errors.join('\n'), metrics]) expect(text).not.toContain(deniedName);
});

function request(yaml: string, serviceAccount = 'app') {
  const issued = gcp.issuePodToken({ namespace: 'shop', serviceAccount });
  canaries.add(issued.token);
  return driverRequest(yaml, { namespace: 'shop', serviceAccount, tokens: { [gcp.poolAudience]: { token: issued.token } } });
}

async function failMount(yaml: string, serviceAccount?: string) {
  const err = await p.client.mountError(request(yaml, serviceAccount));
  errors.push(err.details);
  return err;
}

const lists = () => gcp.requests.filter((r) => r.path.endsWith('/secrets')).length;
const accesses = () => gcp.requests.filter((r) => r.path.endsWith(':access')).length;

describe('the Google test server\'s listing, read by the official client', () => {
  it('filters by name and labels and pages by nextPageToken, as @google-cloud/secret-manager reads it', async () => {
    const server = await startGcpTestServer({ http: true });
    const dir = await mkdtemp(join(tmpdir(), 'usp-gcp-find-'));
    try {
      const member = server.federatedMember('shop', 'app');
      server.grantList(member);
      for (const secret of ['a-1', 'a-2', 'a-3', 'b-1']) server.setLabels(secret, { team: secret.startsWith('a') ? 'pay' : 'web' });
      const tokenFile = join(dir, 'token');
      await writeFile(tokenFile, server.issuePodToken({ namespace: 'shop', serviceAccount: 'app' }).token);
      const auth = new IdentityPoolClient({
        type: 'external_account',
        audience: server.poolAudience,
        subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
        token_url: `${server.url}/v1/token`,
        credential_source: { file: tokenFile },
      });
      const { hostname, port } = new URL(server.url);
      // google-gax pins its own google-auth-library: the same class, another copy's private fields.
      const authClient = auth as unknown as NonNullable<ConstructorParameters<typeof SecretManagerServiceClient>[0]>['authClient'];
      const sm = new SecretManagerServiceClient({ fallback: true, authClient, apiEndpoint: hostname, port: Number(port), protocol: 'http' });
      try {
        const names: string[] = [];
        for await (const secret of sm.listSecretsAsync({ parent: `projects/${server.projectId}`, filter: 'name:"a-" AND labels.team="pay"', pageSize: 2 }, { autoPaginate: false })) {
          names.push(String(secret.name));
          expect(secret.labels).toEqual({ team: 'pay' });
        }
        expect(names).toEqual(['a-1', 'a-2', 'a-3'].map((s) => `projects/${server.projectNumber}/secrets/${s}`));
        expect(server.requests.filter((r) => r.path.endsWith('/secrets'))).toHaveLength(2);
        const [none] = await sm.listSecrets({ parent: `projects/${server.projectId}`, filter: 'labels.team="none"' }, { autoPaginate: false });
        expect(none).toEqual([]);
      } finally {
        await sm.close();
      }
    } finally {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('find over gcp-secret-manager', () => {
  it('lists with name and label filters and reads the latest version of each secret found, checksums verified', async () => {
    const [listed, read] = [lists(), accesses()];
    const reply = await p.client.mount(request(objects({ name: 'pay', find: { prefix: 'shop-', labels: { team: 'pay' } }, mode: '0400' })));
    const files = fileMap(reply);
    // shop-off (latest version disabled) and shop-empty (no versions) have nothing to read; workshop-x only contains the prefix.
    expect([...files.keys()].sort()).toEqual(['pay/api', 'pay/db']);
    expect(files.get('pay/db')!.contents.toString()).toBe(db);
    expect(files.get('pay/db')!.mode).toBe(0o400);
    const versions = new Map(reply.objectVersion.map((v) => [v.id, v.version]));
    expect(versions.get('pay/db')).toBe('2');
    expect(versions.get('pay/api')).toBe('1');
    expect(lists() - listed, 'one page').toBe(1);
    expect(accesses() - read, 'one read per secret found and allowed').toBe(4);
    expect(await p.metrics.registry.metrics(), 'the denied secret was found and left out').toMatch(/usp_find_refs_excluded_total\{store="gcp"\} [1-9]/);
  });

  it('matches label keys the filter language cannot name (with "-") on each answer', async () => {
    const reply = await p.client.mount(request(objects({ name: 'c1', find: { prefix: 'shop-', labels: { 'cost-center': 'c1' } } })));
    expect([...fileMap(reply).keys()]).toEqual(['c1/db']);
  });

  it('pages by nextPageToken, 50 secrets a page', async () => {
    const listed = lists();
    const reply = await p.client.mount(request(objects({ name: 'bulk', find: { prefix: 'bulk-' } })));
    expect(reply.files).toHaveLength(60);
    expect(fileMap(reply).get('bulk/59')!.contents.toString()).toBe('bulk-59');
    expect(lists() - listed).toBe(2);
  });

  it('lists regional secrets, and writes found refs in the prefix\'s own form', async () => {
    const regionalStore = await p.client.mount(request(objects({ name: 'eu', store: 'gcp-eu', find: { prefix: 'shop-' } })));
    expect(fileMap(regionalStore).get('eu/eu')!.contents.toString()).toBe(regional);
    const long = await p.client.mount(request(objects({ name: 'long', find: { prefix: `projects/${gcp.projectId}/secrets/shop-a` } })));
    expect([...fileMap(long).keys()]).toEqual(['long/pi']);
  });

  it('shows a secret added or removed on the next Mount', async () => {
    const yaml = objects({ name: 'pay', find: { prefix: 'shop-', labels: { team: 'pay' } } });
    gcp.addVersion('shop-new', 'fresh');
    gcp.setLabels('shop-new', { team: 'pay' });
    expect(fileMap(await p.client.mount(request(yaml))).get('pay/new')!.contents.toString()).toBe('fresh');
    gcp.deleteSecret('shop-new');
    expect(fileMap(await p.client.mount(request(yaml))).has('pay/new')).toBe(false);
  });

  it('needs secretmanager.secrets.list: a principal without it is PermissionDenied', async () => {
    const err = await failMount(objects({ name: 'x', find: { prefix: 'shop-' } }), 'nolist');
    expect(err.code).toBe(status.PERMISSION_DENIED);
    expect(err.details).toContain('secretmanager.secrets.list');
  });

  it('fails the Mount when page two fails: nothing partial', async () => {
    gcp.faults.inject({ kind: 'status', status: 500 }, { match: 'pageToken=', times: Infinity });
    try {
      const err = await failMount(objects({ name: 'bulk', find: { prefix: 'bulk-' } }));
      expect(err.code).toBe(status.UNAVAILABLE);
      expect(err.details).toContain('listing');
    } finally {
      gcp.faults.clear();
    }
  });

  it('refuses labels Secret Manager cannot hold, naming them', async () => {
    const err = await failMount(objects({ name: 'x', find: { prefix: 'shop-', labels: { Team: 'pay' } } }));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toContain('find.labels: "Team" is not a Secret Manager label');
  });
});
