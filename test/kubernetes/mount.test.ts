import { randomBytes } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadProviderService } from '../../src/server/grpc.js';
import { runUsp } from '../helpers/bin.js';
import { createCanaries } from '../helpers/canary.js';
import { driverRequest, fileMap, type PodOptions } from '../helpers/driver-client.js';
import { startTestProvider, type TestProvider } from '../helpers/provider.js';
import { serviceAccountUser, startKubernetesTestServer, type KubernetesTestServer } from '../servers/kubernetes.js';
import { execPluginKubeconfig } from './exec-plugin.js';

const canaries = createCanaries();
const password = canaries.next('k8s-db');
const shared = canaries.next('k8s-shared');
const forbidden = canaries.next('k8s-forbidden');
const setting = canaries.next('k8s-setting');
const tlsKey = `-----BEGIN PRIVATE KEY-----\n${canaries.next('k8s-tls')}\n-----END PRIVATE KEY-----\n`;
const tlsCrt = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
const binary = Buffer.concat([Buffer.from(Array.from({ length: 256 }, (_, i) => i)), randomBytes(1024)]);
const errors: string[] = [];

let api: KubernetesTestServer;
let p: TestProvider;

function podToken(namespace: string, serviceAccount: string, expiresInSeconds = 600): PodOptions['tokens'] {
  const { token, expiresAt } = api.issueToken({ namespace, serviceAccount, expiresInSeconds });
  canaries.add(token);
  return { '': { token, expirationTimestamp: new Date(expiresAt).toISOString() } };
}

const asApp = (extra: PodOptions = {}): PodOptions => ({ serviceAccount: 'app', tokens: podToken('shop', 'app'), ...extra });

beforeAll(async () => {
  api = await startKubernetesTestServer();
  api.putSecret({ namespace: 'shop', name: 'db', data: { password, user: 'shop' } });
  api.putSecret({ namespace: 'shop', name: 'binary', data: { blob: binary } });
  api.putSecret({ namespace: 'shop', name: 'tls', type: 'kubernetes.io/tls', data: { 'tls.crt': tlsCrt, 'tls.key': tlsKey } });
  api.putConfigMap({ namespace: 'shop', name: 'settings', data: { 'app.conf': setting }, binaryData: { 'logo.bin': binary } });
  api.putSecret({ namespace: 'platform', name: 'shared-ca', data: { 'ca.crt': shared } });
  api.putSecret({ namespace: 'platform', name: 'root-key', data: { key: forbidden } });
  api.allow({ subject: serviceAccountUser('shop', 'app'), namespace: 'shop', resource: 'secrets' });
  api.allow({ subject: serviceAccountUser('shop', 'app'), namespace: 'shop', resource: 'configmaps' });
  api.allow({ subject: serviceAccountUser('shop', 'app'), namespace: 'platform', resource: 'secrets', names: ['shared-ca'] });
  const kubeconfigPath = join(tmpdir(), `usp-kubeconfig-${process.pid}`);
  await api.writeKubeconfig(kubeconfigPath);
  const kubeconfig = await readFile(kubeconfigPath);
  await rm(kubeconfigPath);
  p = await startTestProvider({
    files: { kubeconfig },
    config: `
defaultStore: cluster
versionKey: k8s-version-key-0123456789
stores:
  - name: cluster
    backend: kubernetes
    kubeconfig: ../kubeconfig
  - name: cluster-patient
    backend: kubernetes
    kubeconfig: ../kubeconfig
    timeout: 20s
    retry: {attempts: 1}
`,
  });
});

afterAll(async () => {
  await p.stop();
  await api.close();
  canaries.expectNoneIn(p.logs, 'provider logs');
  canaries.expectNoneIn(errors, 'gRPC error messages');
});

async function failMount(objects: string, pod: PodOptions) {
  const err = await p.client.mountError(driverRequest(objects, pod));
  errors.push(err.details);
  return err;
}

describe('kubernetes store through Mount', () => {
  it('reads a Secret in the pod namespace and one in another namespace the pod may read', async () => {
    const reply = await p.client.mount(
      driverRequest('- {name: db/password, ref: db, key: password}\n- {name: ca.crt, ref: platform/shared-ca, key: ca.crt}', asApp()),
    );
    const files = fileMap(reply);
    expect(files.get('db/password')?.contents.toString()).toBe(password);
    expect(files.get('ca.crt')?.contents.toString()).toBe(shared);
    for (const v of reply.objectVersion) expect(v.version).toMatch(/^\d+$/);
    const reads = api.requests.filter((r) => r.status === 200);
    expect(reads.every((r) => r.user === serviceAccountUser('shop', 'app'))).toBe(true);
  });

  it('writes the whole Secret as JSON without key, one file per key with expand', async () => {
    const reply = await p.client.mount(driverRequest('- {name: db.json, ref: db}\n- {name: tls, ref: tls, expand: keys}', asApp()));
    const files = fileMap(reply);
    expect(JSON.parse(files.get('db.json')!.contents.toString())).toEqual({ password, user: 'shop' });
    expect(files.get('tls/tls.crt')?.contents.toString()).toBe(tlsCrt);
    expect(files.get('tls/tls.key')?.contents.toString()).toBe(tlsKey);
  });

  it('keeps binary data byte-exact, and reads ConfigMaps (data and binaryData)', async () => {
    const reply = await p.client.mount(
      driverRequest(
        `- {name: blob, ref: db, key: password}
- {name: bin, ref: binary, key: blob}
- {name: app.conf, ref: settings, kind: configmap, key: app.conf}
- {name: logo.bin, ref: settings, kind: configmap, key: logo.bin}`,
        asApp(),
      ),
    );
    const files = fileMap(reply);
    expect(Buffer.compare(files.get('bin')!.contents, binary)).toBe(0);
    expect(files.get('app.conf')?.contents.toString()).toBe(setting);
    expect(Buffer.compare(files.get('logo.bin')!.contents, binary)).toBe(0);
  });

  it('denies a read the pod RBAC forbids, with a clear message and no token', async () => {
    const err = await failMount('- {name: key, ref: platform/root-key, key: key}', asApp());
    expect(err.code).toBe(status.PERMISSION_DENIED);
    expect(err.details).toContain('objects[0] "key" (store cluster, ref platform/root-key)');
    expect(err.details).toContain('service account shop/app may not get Secret platform/root-key');
  });

  it('stops a Mount the driver cancels at once, without waiting for the store', async () => {
    api.inject({ kind: 'hang' }, { times: 1 });
    const Client = grpc.makeGenericClientConstructor(loadProviderService(), 'CSIDriverProvider');
    const client = new Client(`unix:${p.socketPath}`, grpc.credentials.createInsecure());
    const from = p.logs.length;
    try {
      const mount = client['Mount'] as unknown as (req: unknown, opts: grpc.CallOptions, cb: (err: unknown) => void) => grpc.ClientUnaryCall;
      const call = mount.call(client, driverRequest('- {name: x, store: cluster-patient, ref: db, key: password}', asApp()), { deadline: Date.now() + 60_000 }, () => {});
      await sleep(300);
      call.cancel();
      const cancelledAt = Date.now();
      let line: string | undefined;
      while (!line && Date.now() - cancelledAt < 5_000) {
        line = p.logs.slice(from).find((l) => l.includes('"msg":"mount failed"'));
        await sleep(20);
      }
      // The store would have waited 20 s for the hung API server.
      expect(line, 'the Mount ended after the cancel').toBeDefined();
      expect(Date.now() - cancelledAt).toBeLessThan(5_000);
    } finally {
      client.close();
      api.faults.clear();
    }
  });

  it('NotFound for a missing object and for a missing key', async () => {
    let err = await failMount('- {name: x, ref: nothing-here}', asApp());
    expect(err.code).toBe(status.NOT_FOUND);
    err = await failMount('- {name: x, ref: db, key: nope}', asApp());
    expect(err.code).toBe(status.NOT_FOUND);
    expect(err.details).toContain('key "nope" is not in the secret');
  });

  it('refuses expired and missing tokens before calling the API server', async () => {
    const before = api.requests.length;
    let err = await failMount('- {name: x, ref: db, key: password}', { serviceAccount: 'app', tokens: podToken('shop', 'app', -60) });
    expect(err.code).toBe(status.PERMISSION_DENIED);
    expect(err.details).toContain('expired');
    err = await failMount('- {name: x, ref: db, key: password}', { serviceAccount: 'app' });
    expect(err.code).toBe(status.PERMISSION_DENIED);
    expect(err.details).toContain('no service-account token for audience ""');
    expect(err.details).toContain('tokenRequests');
    expect(api.requests.length).toBe(before);
  });

  it('refuses identity provider at config load unless access rules restrict namespaces', async () => {
    const config = join(p.dir, 'provider-identity.yaml');
    await writeFile(config, 'stores:\n  - {name: c, backend: kubernetes, identity: provider, kubeconfig: ./kubeconfig}\n');
    const result = await runUsp(['validate', '--config', config]);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('stores[0].identity: "provider" reads with the provider\'s own rights');
    await writeFile(
      config,
      'stores:\n  - {name: c, backend: kubernetes, identity: provider, kubeconfig: ./kubeconfig, access: [{allow: {namespaces: [shop]}}]}\n',
    );
    expect((await runUsp(['validate', '--config', config])).code).toBe(0);
  });

  /** The class file usp render reads: shop's SecretProviderClass with these objects. */
  const writeClass = (objects: string) =>
    writeFile(
      join(p.dir, 'class.yaml'),
      `apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: shop, namespace: shop}
spec:
  provider: universal
  parameters:
    objects: |
${objects.replace(/^/gm, '      ')}
`,
    );

  it('usp render reads through a kubeconfig store with --token', async () => {
    const tokenFile = join(p.dir, 'token');
    const { token } = api.issueToken({ namespace: 'shop', serviceAccount: 'app' });
    canaries.add(token);
    await writeFile(tokenFile, token);
    await writeClass('- {name: db/password, ref: db, key: password}\n- {name: ca.crt, ref: platform/shared-ca, key: ca.crt}');
    const args = ['render', '--class', join(p.dir, 'class.yaml'), '--config', p.configPath, '--namespace', 'shop', '--service-account', 'app'];
    const result = await runUsp([...args, '--token', `=${tokenFile}`]);
    errors.push(result.stdout, result.stderr);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(new RegExp(`^db/password\\s+${password.length}\\s+0644\\s+\\d+\\s+cluster\\s+db$`, 'm'));
    const withoutToken = await runUsp(args);
    errors.push(withoutToken.stdout, withoutToken.stderr);
    expect(withoutToken.code).toBe(1);
    expect(withoutToken.stderr).toContain('no service-account token for audience ""');

    // The built bin reads through its own client (src/backends/kubernetes/transport.ts): API
    // errors must still be told apart.
    for (const [ref, message] of [
      ['platform/root-key', 'service account shop/app may not get Secret platform/root-key'],
      ['nothing-here', 'not found'],
    ] as const) {
      await writeClass(`- {name: x, ref: ${ref}}`);
      const failed = await runUsp([...args, '--token', `=${tokenFile}`]);
      errors.push(failed.stdout, failed.stderr);
      expect(failed.code, failed.stderr).toBe(1);
      expect(failed.stderr).toContain(message);
    }
  });

  it('usp render reads as the provider with a client certificate and with an exec plugin (the bundled KubeConfig)', async () => {
    await api.addUser('usp-admin', 'certificate');
    await api.addUser('usp-exec', 'token');
    api.allow({ subject: 'usp-admin', namespace: 'shop', resource: 'secrets', names: ['db'] });
    api.allow({ subject: 'usp-exec', namespace: 'shop', resource: 'secrets', names: ['db'] });
    await api.writeKubeconfig(join(p.dir, 'cert.kubeconfig'), { user: 'usp-admin' });
    await api.writeKubeconfig(join(p.dir, 'token.kubeconfig'), { user: 'usp-exec' });
    const exec = await execPluginKubeconfig(join(p.dir, 'token.kubeconfig'));
    canaries.add(exec.token);
    await writeFile(join(p.dir, 'exec.kubeconfig'), exec.config);
    await writeClass('- {name: db/password, ref: db, key: password}');
    const config = join(p.dir, 'as-provider.yaml');
    for (const [kubeconfig, user] of [['cert.kubeconfig', 'usp-admin'], ['exec.kubeconfig', 'usp-exec']] as const) {
      const store = { name: 'cluster', backend: 'kubernetes', identity: 'provider', kubeconfig: `./${kubeconfig}`, access: [{ allow: { namespaces: ['shop'] } }] };
      await writeFile(config, JSON.stringify({ defaultStore: 'cluster', stores: [store] }));

      const result = await runUsp(['render', '--class', join(p.dir, 'class.yaml'), '--config', config, '--namespace', 'shop', '--service-account', 'app']);
      errors.push(result.stdout, result.stderr);

      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toMatch(new RegExp(`^db/password\\s+${password.length}\\s`, 'm'));
      expect(api.requests.at(-1)).toMatchObject({ path: '/api/v1/namespaces/shop/secrets/db', user, status: 200 });
    }
  });
});
