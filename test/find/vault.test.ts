/** find over Vault KV v1 and v2: LIST as the pod (policy capability `list`), then a read per secret found. */
import { status } from '@grpc/grpc-js';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCanaries } from '../helpers/canary.js';
import { driverRequest, fileMap, type PodOptions } from '../helpers/driver-client.js';
import { startTestProvider, type TestProvider } from '../helpers/provider.js';
import { startVaultTestServer, type VaultTestServer } from '../servers/vault.js';

const canaries = createCanaries();
const db = canaries.next('vault-find-db');
const api = canaries.next('vault-find-api');
const deep = canaries.next('vault-find-deep');
const legacy = canaries.next('vault-find-v1');
const hidden = canaries.next('vault-find-hidden');
const deniedName = 'hidden-9c2b';
const errors: string[] = [];

let vault: VaultTestServer;
let p: TestProvider;

const objects = (...entries: object[]) => stringify(entries);

const storeYaml = (name: string, url: string, ttl: string, extra = '') => `
  - name: ${name}
    backend: vault
    address: ${url}
    tls: {caFile: ../ca.pem}
    auth: {method: kubernetes, role: app, audience: vault}
    cache: {ttl: ${ttl}}
    retry: {attempts: 1}
    breaker: {failures: 1000}${extra}`;

beforeAll(async () => {
  vault = await startVaultTestServer();
  vault.enableKv('secret', 2);
  vault.enableKv('kv', 1);
  vault.writeKv('secret', 'shop/db', { password: 'old' });
  vault.writeKv('secret', 'shop/db', { password: db });
  vault.writeKv('secret', 'shop/api', { password: api });
  vault.writeKv('secret', 'shop/eu/deep', { password: deep });
  vault.writeKv('secret', `shop/${deniedName}`, { password: hidden });
  vault.writeKv('secret', 'other/x', { password: 'x' });
  vault.writeKv('kv', 'shop/legacy', { password: legacy });
  vault.definePolicy('app', {
    'secret/data/shop/*': ['read'],
    'secret/metadata/shop/*': ['list'],
    'kv/shop/*': ['read', 'list'],
  });
  vault.defineRole({ name: 'app', boundServiceAccountNames: ['app'], boundNamespaces: ['shop'], policies: ['app'] });
  p = await startTestProvider({
    files: { 'ca.pem': vault.ca.cert },
    config: `
defaultStore: vault
versionKey: test-version-key-0123456789
stores:${storeYaml('vault', vault.url, '0s', `
    access:
      - allow: {refs: ["secret/shop/**", "kv/shop/**", "secret/other/**"]}
      - deny: {refs: ["secret/shop/${deniedName}*"]}`)}${storeYaml('cached', vault.url, '1h')}
`,
  });
}, 60_000);

afterAll(async () => {
  const metrics = await p.metrics.registry.metrics();
  await p.stop();
  await vault.close();
  canaries.add(...vault.issuedTokens);
  canaries.expectNoneIn(p.logs, 'provider logs');
  canaries.expectNoneIn(errors, 'gRPC error messages');
  canaries.expectNoneIn([metrics], 'metrics');
  for (const text of [p.logs.join('\n'), errors.join('\n'), metrics]) expect(text).not.toContain(deniedName);
});

function request(yaml: string) {
  const issued = vault.issuePodToken({ namespace: 'shop', serviceAccount: 'app', audience: 'vault' });
  canaries.add(issued.token);
  const pod: PodOptions = { namespace: 'shop', serviceAccount: 'app', tokens: { vault: { token: issued.token, expirationTimestamp: new Date(issued.expiresAt).toISOString() } } };
  return driverRequest(yaml, pod);
}

async function failMount(yaml: string) {
  const err = await p.client.mountError(request(yaml));
  errors.push(err.details);
  return err;
}

const lists = () => vault.requests.filter((r) => r.path.includes('/metadata/')).length;

describe('find over vault KV', () => {
  it('lists a KV v2 folder and reads each secret found, each file with its own KV version', async () => {
    const reply = await p.client.mount(request(objects({ name: 'shop', find: { prefix: 'secret/shop/' }, key: 'password', mode: '0400' })));
    const files = fileMap(reply);
    expect([...files.keys()].sort()).toEqual(['shop/api', 'shop/db']);
    expect(files.get('shop/db')!.contents.toString()).toBe(db);
    expect(files.get('shop/db')!.mode).toBe(0o400);
    const versions = new Map(reply.objectVersion.map((v) => [v.id, v.version]));
    expect(versions.get('shop/db')).toBe('2');
    expect(versions.get('shop/api')).toBe('1');
  });

  it('recurses with one LIST per folder', async () => {
    const before = lists();
    const reply = await p.client.mount(request(objects({ name: 'all', find: { prefix: 'secret/shop/', recursive: true }, key: 'password' })));
    expect([...fileMap(reply).keys()].sort()).toEqual(['all/api', 'all/db', 'all/eu/deep']);
    expect(fileMap(reply).get('all/eu/deep')!.contents.toString()).toBe(deep);
    expect(lists() - before).toBe(2);
  });

  it('lists KV v1 and name prefixes', async () => {
    const reply = await p.client.mount(request(objects({ name: 'v1', find: { prefix: 'kv/shop/leg' }, key: 'password' })));
    expect(fileMap(reply).get('v1/acy')!.contents.toString()).toBe(legacy);
  });

  it('shows a secret added or removed on the next Mount', async () => {
    const yaml = objects({ name: 'shop', find: { prefix: 'secret/shop/' }, key: 'password' });
    vault.writeKv('secret', 'shop/added', { password: 'new' });
    expect(fileMap(await p.client.mount(request(yaml))).get('shop/added')!.contents.toString()).toBe('new');
    vault.destroyKvVersion('secret', 'shop/added', 1);
    expect(fileMap(await p.client.mount(request(yaml))).has('shop/added')).toBe(false);
  });

  it('caches the listing and the reads per identity for the TTL', async () => {
    // A destroyed secret is still listed (its metadata stays) and its NotFound read is not cached: keep it out.
    const yaml = objects({ name: 'shop', store: 'cached', find: { prefix: 'secret/shop/d' }, key: 'password' });
    const before = vault.counters.requests;
    await Promise.all([p.client.mount(request(yaml)), p.client.mount(request(yaml))]);
    const afterFirst = vault.counters.requests;
    const seen = vault.requests.length;
    await p.client.mount(request(yaml));
    expect(vault.requests.slice(seen)).toEqual([]);
    expect(afterFirst - before).toBeGreaterThan(0);
  });

  it('needs the policy capability list: a folder without it is PermissionDenied', async () => {
    const err = await failMount(objects({ name: 'o', find: { prefix: 'secret/other/' } }));
    expect(err.code).toBe(status.PERMISSION_DENIED);
    expect(err.details).toContain('listing');
  });

  it('refuses a prefix the access rules cannot allow, before calling Vault', async () => {
    const before = vault.counters.requests;
    const err = await failMount(objects({ name: 'o', find: { prefix: 'secret/platform/' } }));
    expect(err.code).toBe(status.PERMISSION_DENIED);
    expect(vault.counters.requests).toBe(before);
  });

  it('fails the Mount when a later page (folder) fails', async () => {
    vault.inject({ kind: 'status', status: 500 }, { match: /metadata\/shop\/eu/, times: 5 });
    const err = await failMount(objects({ name: 'all', find: { prefix: 'secret/shop/', recursive: true } }));
    vault.faults.clear();
    expect(err.code).toBe(status.UNAVAILABLE);
  });

  it('refuses a found name that is not a volume path, naming it', async () => {
    vault.writeKv('secret', 'shop/odd/back\\slash', { password: 'x' });
    const err = await failMount(objects({ name: 'odd', find: { prefix: 'secret/shop/odd/' } }));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toContain('found secret "back\\\\slash" is not a valid file name in the volume: must not contain backslashes');
  });

  it('an empty folder finds nothing', async () => {
    const reply = await p.client.mount(request(objects({ name: 'none', find: { prefix: 'secret/shop/nothing/' } })));
    expect(reply.files).toEqual([]);
  });
});
