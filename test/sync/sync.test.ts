/**
 * Sync to native Kubernetes Secrets, replayed end to end without a cluster:
 *
 * 1. The CSI driver's `spec.secretObjects`: Mount through the real socket, write the returned files
 *    the way the driver does, build each Secret the way the driver's secretutil does (objectName is
 *    our file path; kubernetes.io/tls keys are split out of the PEM), and create it through the
 *    Kubernetes API test server, which validates it like the API server (1 MiB, required keys).
 * 2. The secrets-store-sync-controller: the Mount request it sends (its own pod, the SecretSync's
 *    namespace and service account, tokens it minted, target_path /mnt/secrets-store, secrets {},
 *    no secretProviderClass or ephemeral keys) gets the files back.
 *
 * docs/sync.md is the guide for both.
 */
import { createPrivateKey, randomBytes, X509Certificate, type KeyObject } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDocs } from '../deploy/render.js';
import { validateObject } from '../deploy/schema-validator.js';
import { createCanaries } from '../helpers/canary.js';
import { driverRequest, type DriverFile, type MountRequest } from '../helpers/driver-client.js';
import { startTestProvider, type TestProvider } from '../helpers/provider.js';
import { classDoc, fileStore, objectsYaml, providerConfigYaml } from '../helpers/yaml.js';
import { serviceAccountUser, startKubernetesTestServer, type KubernetesTestServer } from '../servers/kubernetes.js';
import { createTestCa, type TestCa } from '../servers/tls.js';

type Doc = Record<string, any>;

const canaries = createCanaries();
const dbPassword = canaries.next('sync-db');
const registryPassword = canaries.next('sync-registry');
const settingsValue = canaries.next('sync-settings');

/** The SecretProviderClass an app team writes: files from the file store, three synced Secrets. */
const secretProviderClass: Doc = classDoc({
  name: 'shop-sync',
  objects: [
    { name: 'tls/tls.crt', store: 'files', ref: 'shop/web.crt' },
    { name: 'tls/tls.key', store: 'files', ref: 'shop/web.key' },
    { name: 'bundle.pem', store: 'files', ref: 'shop/web-bundle.pem' },
    { name: 'db/username', store: 'files', ref: 'shop/db.json', key: 'username' },
    { name: 'db/password', store: 'files', ref: 'shop/db.json', key: 'password' },
    { name: 'registry.json', store: 'files', ref: 'shop/registry.json' },
  ],
  secretObjects: [
    {
      secretName: 'shop-web-tls',
      type: 'kubernetes.io/tls',
      labels: { app: 'shop' },
      annotations: { 'shop.example.com/owner': 'web' },
      data: [
        { objectName: 'tls/tls.crt', key: 'tls.crt' },
        { objectName: 'tls/tls.key', key: 'tls.key' },
      ],
    },
    {
      // One PEM file holding key and chain: the driver splits it by key.
      secretName: 'shop-web-tls-bundle',
      type: 'kubernetes.io/tls',
      data: [
        { objectName: 'bundle.pem', key: 'tls.crt' },
        { objectName: 'bundle.pem', key: 'tls.key' },
      ],
    },
    {
      secretName: 'shop-db',
      type: 'Opaque',
      data: [
        { objectName: 'db/username', key: 'username' },
        { objectName: 'db/password', key: 'password' },
      ],
    },
    {
      secretName: 'shop-registry',
      type: 'kubernetes.io/dockerconfigjson',
      data: [{ objectName: 'registry.json', key: '.dockerconfigjson' }],
    },
  ],
});

const driverUser = serviceAccountUser('kube-system', 'secrets-store-csi-driver');

let ca: TestCa;
let leaf: { cert: string; key: string };
let api: KubernetesTestServer;
let p: TestProvider;
let work: string;
let driverApi: k8s.CoreV1Api;

beforeAll(async () => {
  ca = await createTestCa('usp sync test CA');
  leaf = await ca.issue({ commonName: 'web.shop.svc', dnsNames: ['web.shop.svc'] });
  api = await startKubernetesTestServer();
  work = await mkdtemp(join(tmpdir(), 'usp-sync-'));
  // The driver's service account may create and update Secrets in the pod's namespace.
  api.allow({ subject: driverUser, namespace: 'shop', resource: 'secrets', verbs: ['get', 'create', 'update'] });
  // The sync controller's case reads with the SecretSync's service account (identity: pod).
  api.allow({ subject: serviceAccountUser('shop', 'shop-sync'), namespace: 'shop', resource: 'secrets', names: ['shop-settings'] });
  api.putSecret({ namespace: 'shop', name: 'shop-settings', data: { region: 'eu-west', token: settingsValue } });
  await api.addUser(driverUser, 'token');
  const kubeconfig = join(work, 'driver.kubeconfig');
  await api.writeKubeconfig(kubeconfig, { user: driverUser });
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfig);
  driverApi = kc.makeApiClient(k8s.CoreV1Api);
  await api.writeKubeconfig(join(work, 'provider.kubeconfig'));

  const dockerConfig = {
    auths: {
      'registry.example.com': {
        username: 'shop',
        password: registryPassword,
        auth: Buffer.from(`shop:${registryPassword}`).toString('base64'),
      },
    },
  };
  p = await startTestProvider({
    config: providerConfigYaml({
      defaultStore: 'files',
      versionKey: 'sync-version-key-0123456789',
      stores: [
        fileStore('files', '../secrets', { cache: { ttl: 0 } }),
        { name: 'cluster', backend: 'kubernetes', identity: 'pod', audience: '', kubeconfig: join(work, 'provider.kubeconfig') },
      ],
    }),
    files: {
      'secrets/shop/web.crt': `${leaf.cert}${ca.cert}`,
      'secrets/shop/web.key': leaf.key,
      'secrets/shop/web-bundle.pem': `${leaf.key}${leaf.cert}${ca.cert}`,
      'secrets/shop/db.json': JSON.stringify({ username: 'shop', password: dbPassword }),
      'secrets/shop/registry.json': JSON.stringify(dockerConfig),
      'secrets/big/part-1': randomBytes(600 * 1024).toString('base64').slice(0, 600 * 1024),
      'secrets/big/part-2': randomBytes(600 * 1024).toString('base64').slice(0, 600 * 1024),
    },
  });
});

afterAll(async () => {
  await p?.stop();
  await api?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

/** The driver's request for a pod mounting `spc`: class parameters, then the kubelet's pod keys. */
function podRequest(spc: Doc): MountRequest {
  const { objects, ...parameters } = spc.spec.parameters as Record<string, string>;
  return driverRequest(objects!, { parameters, namespace: 'shop', serviceAccount: 'shop', podName: 'web-0' });
}

/** Writes the response into `target` as the driver does: relative paths, exactly our modes. */
async function writeLikeTheDriver(target: string, files: DriverFile[]): Promise<void> {
  for (const file of files) {
    const path = join(target, file.path);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, file.contents);
    await chmod(path, file.mode);
  }
}

/** objectName (path relative to the mount) -> absolute path, as the driver lists the target path. */
async function mountedFiles(target: string): Promise<Map<string, string>> {
  const entries = await readdir(target, { recursive: true, withFileTypes: true });
  return new Map(entries.filter((e) => e.isFile()).map((e) => [relative(target, join(e.parentPath, e.name)), join(e.parentPath, e.name)]));
}

interface PemBlock {
  type: string;
  der: Buffer;
}

function pemBlocks(text: string): PemBlock[] {
  return [...text.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)-----END \1-----/g)].map((m) => ({
    type: m[1]!,
    der: Buffer.from(m[2]!.replace(/\s+/g, ''), 'base64'),
  }));
}

/** Go's pem.EncodeToMemory: base64 in lines of 64. */
function encodePem(type: string, der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${type}-----\n${lines.join('\n')}\n-----END ${type}-----\n`;
}

/**
 * The driver's secretutil.GetCertPart: `tls.crt` is every CERTIFICATE block of the file, `tls.key`
 * the last other block, re-encoded as PKCS#1 (RSA) or SEC 1 (EC). PKCS#12 input is not replayed.
 */
function certPart(content: Buffer, key: string): Buffer {
  const blocks = pemBlocks(content.toString('utf8'));
  if (key === 'tls.crt') {
    const certs = blocks.filter((b) => b.type === 'CERTIFICATE');
    if (certs.length === 0) throw new Error('no PEM certificate (PKCS#12 is not replayed here)');
    return Buffer.from(certs.map((b) => encodePem(b.type, b.der)).join(''));
  }
  if (key === 'tls.key') {
    const der = blocks.filter((b) => b.type !== 'CERTIFICATE').at(-1)?.der;
    if (!der) throw new Error('no PEM private key (PKCS#12 is not replayed here)');
    const parsed: KeyObject = blocks.some((b) => b.type === 'RSA PRIVATE KEY')
      ? createPrivateKey({ key: der, format: 'der', type: 'pkcs1' })
      : createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
    if (parsed.asymmetricKeyType === 'rsa') return Buffer.from(encodePem('RSA PRIVATE KEY', parsed.export({ format: 'der', type: 'pkcs1' })));
    if (parsed.asymmetricKeyType === 'ec') return Buffer.from(encodePem('EC PRIVATE KEY', parsed.export({ format: 'der', type: 'sec1' })));
    throw new Error('unknown private key type found while getting key. Only rsa and ecdsa are supported');
  }
  throw new Error(`key '${key}' is not supported. Only 'tls.key' and 'tls.crt' are supported`);
}

/** The Secret the driver creates for one secretObjects entry (secretutil.GetSecretData and the sync controller). */
async function buildSecret(namespace: string, secretObject: Doc, files: Map<string, string>): Promise<k8s.V1Secret> {
  if (!secretObject.secretName || !secretObject.type || !(secretObject.data?.length > 0)) {
    throw new Error('secret name, type and data are required');
  }
  const data: Record<string, string> = {};
  for (const { objectName, key } of secretObject.data as Array<{ objectName: string; key: string }>) {
    const file = files.get(objectName.trim());
    if (!file) throw new Error(`file matching objectName ${objectName} not found in the pod`);
    let content: Buffer = await readFile(file);
    if (secretObject.type === 'kubernetes.io/tls') content = certPart(content, key.trim());
    data[key.trim()] = content.toString('base64');
  }
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: secretObject.secretName,
      namespace,
      labels: { ...secretObject.labels, 'secrets-store.csi.k8s.io/managed': 'true' },
      ...(secretObject.annotations && { annotations: secretObject.annotations }),
    },
    type: secretObject.type,
    data,
  };
}

/** The API server's answer to a create, as {status, body}. */
async function create(secret: k8s.V1Secret): Promise<{ code: number; body: Doc }> {
  try {
    const created = await driverApi.createNamespacedSecret({ namespace: secret.metadata!.namespace!, body: secret });
    return { code: 201, body: created as Doc };
  } catch (err) {
    if (!(err instanceof k8s.ApiException)) throw err;
    return { code: err.code, body: typeof err.body === 'string' ? JSON.parse(err.body) : err.body };
  }
}

const decoded = (secret: Doc, key: string) => Buffer.from(secret.data[key], 'base64');

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`http://${p.httpAddress}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? 0 : Number(line.split(' ')[1]);
}

describe("the driver's secretObjects, replayed", () => {
  let target: string;
  const created = new Map<string, Doc>();

  beforeAll(async () => {
    expect(validateObject(secretProviderClass), 'the class is valid against the CRD schema').toEqual([]);
    const reply = await p.client.mount(podRequest(secretProviderClass));
    expect(reply.error?.code ?? '').toBe('');
    target = await mkdtemp(join(work, 'pod-'));
    await writeLikeTheDriver(target, reply.files);
    const files = await mountedFiles(target);
    for (const secretObject of secretProviderClass.spec.secretObjects as Doc[]) {
      const secret = await buildSecret('shop', secretObject, files);
      expect(validateObject(secret as Doc), `Secret ${secretObject.secretName}`).toEqual([]);
      const result = await create(secret);
      expect(result.code, JSON.stringify(result.body.message ?? '')).toBe(201);
      created.set(secretObject.secretName, api.getObject('secrets', 'shop', secretObject.secretName)!);
    }
  });

  it('finds every objectName among the files we returned (our object names are the paths)', async () => {
    const files = await mountedFiles(target);
    const names = (secretProviderClass.spec.secretObjects as Doc[]).flatMap((s) => s.data.map((d: Doc) => d.objectName));
    for (const name of names) expect(files.has(name), name).toBe(true);
    expect((await stat(join(target, 'db/password'))).mode & 0o777).toBe(0o644);
  });

  it('builds an Opaque Secret with the bytes of the files, labels and the managed label', () => {
    const secret = created.get('shop-db')!;
    expect(secret.type).toBe('Opaque');
    expect(decoded(secret, 'username').toString()).toBe('shop');
    expect(decoded(secret, 'password').toString()).toBe(dbPassword);
    expect(secret.metadata.labels).toEqual({ 'secrets-store.csi.k8s.io/managed': 'true' });
  });

  it('builds kubernetes.io/tls Secrets whose tls.crt and tls.key are a matching, parseable PEM pair', () => {
    for (const name of ['shop-web-tls', 'shop-web-tls-bundle']) {
      const secret = created.get(name)!;
      expect(secret.type).toBe('kubernetes.io/tls');
      expect(Object.keys(secret.data).sort()).toEqual(['tls.crt', 'tls.key']);
      const crt = decoded(secret, 'tls.crt').toString();
      const keyPem = decoded(secret, 'tls.key').toString();
      // The chain is kept in order (leaf first), and no key material is left in tls.crt.
      expect(pemBlocks(crt).map((b) => b.type)).toEqual(['CERTIFICATE', 'CERTIFICATE']);
      expect(pemBlocks(keyPem).map((b) => b.type)).toEqual(['EC PRIVATE KEY']);
      const cert = new X509Certificate(crt);
      const key = createPrivateKey(keyPem);
      expect(cert.subject).toBe('CN=web.shop.svc');
      expect(cert.checkPrivateKey(key), `${name}: the key matches the certificate`).toBe(true);
      expect(cert.verify(new X509Certificate(ca.cert).publicKey), `${name}: issued by the CA`).toBe(true);
      expect(new X509Certificate(pemBlocks(crt)[1]!.der).subject).toBe('CN=usp sync test CA');
    }
    expect(created.get('shop-web-tls')!.metadata.labels).toEqual({ app: 'shop', 'secrets-store.csi.k8s.io/managed': 'true' });
    expect(created.get('shop-web-tls')!.metadata.annotations).toEqual({ 'shop.example.com/owner': 'web' });
  });

  it('builds a kubernetes.io/dockerconfigjson Secret the kubelet can use as an image pull secret', () => {
    const secret = created.get('shop-registry')!;
    expect(secret.type).toBe('kubernetes.io/dockerconfigjson');
    const config = JSON.parse(decoded(secret, '.dockerconfigjson').toString());
    const auth = config.auths['registry.example.com'];
    expect(auth.password).toBe(registryPassword);
    expect(Buffer.from(auth.auth, 'base64').toString()).toBe(`shop:${registryPassword}`);
  });

  it('updates the Secret after a rotation Mount returns new content', async () => {
    const rotated = canaries.next('sync-db-rotated');
    await p.write('secrets/shop/db.json', JSON.stringify({ username: 'shop', password: rotated }));
    const reply = await p.client.mount(podRequest(secretProviderClass));
    const again = await mkdtemp(join(work, 'rotated-'));
    await writeLikeTheDriver(again, reply.files);
    const secretObject = (secretProviderClass.spec.secretObjects as Doc[]).find((s) => s.secretName === 'shop-db')!;
    const secret = await buildSecret('shop', secretObject, await mountedFiles(again));
    const before = created.get('shop-db')!.metadata.resourceVersion;
    await driverApi.replaceNamespacedSecret({ name: 'shop-db', namespace: 'shop', body: secret });
    const updated = api.getObject('secrets', 'shop', 'shop-db') as Doc;
    expect(decoded(updated, 'password').toString()).toBe(rotated);
    expect(updated.metadata.resourceVersion).not.toBe(before);
    expect(updated.metadata.uid).toBe(created.get('shop-db')!.metadata.uid);
    await p.write('secrets/shop/db.json', JSON.stringify({ username: 'shop', password: dbPassword }));
  });

  it('fails the way the driver does when an objectName is not one of our file paths', async () => {
    const files = await mountedFiles(target);
    const wrong = { secretName: 'shop-db', type: 'Opaque', data: [{ objectName: 'password', key: 'password' }] };
    await expect(buildSecret('shop', wrong, files)).rejects.toThrow('file matching objectName password not found in the pod');
  });

  it('is refused by the API server when a tls Secret lacks tls.key', async () => {
    const files = await mountedFiles(target);
    const half = { secretName: 'shop-half-tls', type: 'kubernetes.io/tls', data: [{ objectName: 'tls/tls.crt', key: 'tls.crt' }] };
    const result = await create(await buildSecret('shop', half, files));
    expect(result.code).toBe(422);
    expect(result.body.message).toBe('Secret "shop-half-tls" is invalid: data[tls.key]: Required value');
  });

  it('counts a response above 1 MiB in usp_mount_large_responses_total, and such a Secret is refused', async () => {
    const before = await metric('usp_mount_large_responses_total');
    const objects = objectsYaml([
      { name: 'part-1', store: 'files', ref: 'big/part-1' },
      { name: 'part-2', store: 'files', ref: 'big/part-2' },
    ]);
    const reply = await p.client.mount(driverRequest(objects, { namespace: 'shop', serviceAccount: 'shop' }));
    const bytes = reply.files.reduce((sum, f) => sum + f.contents.length, 0);
    expect(bytes).toBeGreaterThan(1024 * 1024);
    expect(await metric('usp_mount_large_responses_total')).toBe(before + 1);

    const big = await mkdtemp(join(work, 'big-'));
    await writeLikeTheDriver(big, reply.files);
    const secretObject = {
      secretName: 'shop-big',
      type: 'Opaque',
      data: [
        { objectName: 'part-1', key: 'part-1' },
        { objectName: 'part-2', key: 'part-2' },
      ],
    };
    const result = await create(await buildSecret('shop', secretObject, await mountedFiles(big)));
    expect(result.code).toBe(422);
    expect(result.body.message).toBe('Secret "shop-big" is invalid: data: Too long: must have at most 1048576 bytes');
  });
});

describe('the secrets-store-sync-controller request shape', () => {
  /** A class used with a SecretSync: flat object names (SecretSync sourcePath allows no directories). */
  const syncClass: Doc = classDoc({
    name: 'shop-settings',
    objects: [
      { name: 'region', store: 'cluster', ref: 'shop-settings', key: 'region' },
      { name: 'token', store: 'cluster', ref: 'shop-settings', key: 'token' },
      { name: 'db-password', store: 'files', ref: 'shop/db.json', key: 'password' },
    ],
  });
  const secretSync: Doc = {
    apiVersion: 'secret-sync.x-k8s.io/v1alpha1',
    kind: 'SecretSync',
    metadata: { name: 'shop-settings', namespace: 'shop' },
    spec: {
      serviceAccountName: 'shop-sync',
      secretProviderClassName: 'shop-settings',
      secretObject: {
        type: 'Opaque',
        data: [
          { sourcePath: 'region', targetKey: 'region' },
          { sourcePath: 'token', targetKey: 'token' },
          { sourcePath: 'db-password', targetKey: 'password' },
        ],
      },
    },
  };

  /**
   * The controller's prepareCSIProviderParams and MountContent: the class's parameters, its own pod
   * name and uid (downward API), the SecretSync's namespace and service account, the tokens it minted
   * for its configured audiences; secrets "{}", target_path /mnt/secrets-store, permission "420".
   * No secretProviderClass, no csi.storage.k8s.io/ephemeral.
   */
  function controllerRequest(audiences: string[]): MountRequest {
    const { namespace, name } = secretSync.metadata;
    const serviceAccount = secretSync.spec.serviceAccountName as string;
    const tokens = Object.fromEntries(
      audiences.map((audience) => {
        const { token, expiresAt } = api.issueToken({
          namespace,
          serviceAccount,
          ...(audience !== '' && { audience }),
          podName: 'secrets-store-sync-controller-7d4b9c-x2x4z',
        });
        canaries.add(token);
        return [audience, { token, expirationTimestamp: new Date(expiresAt).toISOString() }];
      }),
    );
    expect(name).toBe(syncClass.metadata.name);
    const attributes: Record<string, string> = {
      ...syncClass.spec.parameters,
      'csi.storage.k8s.io/pod.name': 'secrets-store-sync-controller-7d4b9c-x2x4z',
      'csi.storage.k8s.io/pod.uid': '0d5c3c3e-5f3a-4c1e-9d55-2b0a8a3f1c11',
      'csi.storage.k8s.io/pod.namespace': namespace,
      'csi.storage.k8s.io/serviceAccount.name': serviceAccount,
      'csi.storage.k8s.io/serviceAccount.tokens': JSON.stringify(tokens),
    };
    return { attributes: JSON.stringify(attributes), secrets: '{}', targetPath: '/mnt/secrets-store', permission: '420' };
  }

  it('uses a class and a SecretSync that are valid against their CRD schemas', () => {
    expect(validateObject(syncClass)).toEqual([]);
    expect(validateObject(secretSync)).toEqual([]);
    // A file path with a directory is not a valid sourcePath: classes for the controller use flat names.
    const nested = structuredClone(secretSync);
    nested.spec.secretObject.data[0].sourcePath = 'db/password';
    expect(validateObject(nested).join()).toMatch(/sourcePath/);
  });

  it('gets every file back, read as the SecretSync service account, and the Secret data builds from them', async () => {
    const request = controllerRequest(['']);
    const attributes = JSON.parse(request.attributes) as Record<string, string>;
    expect(attributes).not.toHaveProperty('secretProviderClass');
    expect(attributes).not.toHaveProperty('csi.storage.k8s.io/ephemeral');
    const reply = await p.client.mount(request);
    expect(reply.error?.code ?? '').toBe('');
    expect(reply.objectVersion.length).toBeGreaterThan(0);
    const files = new Map(reply.files.map((f) => [f.path, f]));
    expect([...files.keys()].sort()).toEqual(['db-password', 'region', 'token']);
    expect(files.get('region')!.contents.toString()).toBe('eu-west');
    expect(files.get('token')!.contents.toString()).toBe(settingsValue);
    expect(files.get('db-password')!.contents.toString()).toBe(dbPassword);
    // The API server saw the SecretSync's service account, not the controller's.
    const reads = api.requests.filter((r) => r.path === '/api/v1/namespaces/shop/secrets/shop-settings');
    expect(reads.at(-1)?.user).toBe(serviceAccountUser('shop', 'shop-sync'));
    // The controller's secretutil: data[targetKey] = the file at sourcePath.
    for (const { sourcePath, targetKey } of secretSync.spec.secretObject.data as Array<{ sourcePath: string; targetKey: string }>) {
      expect(files.has(sourcePath), `${targetKey} <- ${sourcePath}`).toBe(true);
    }
  });

  it('names the missing audience when the controller was not configured to mint it', async () => {
    const error = await p.client.mountError(controllerRequest(['some-other-audience']));
    expect(error.details).toMatch(/no service-account token for audience ""/);
    expect(error.details).not.toContain('eyJ');
  });

  it('never logs the tokens or the values', () => {
    canaries.expectNoneIn(p.logs, 'provider logs');
  });
});

describe('the guide', () => {
  it('docs/sync.md shows secretObjects with our provider and a SecretSync, and its classes parse', async () => {
    const guide = await readFile(join(import.meta.dirname, '../../docs/sync.md'), 'utf8');
    expect(guide).toMatch(/secretObjects:/);
    expect(guide).toMatch(/kind: SecretSync/);
    expect(guide).toMatch(/1 MiB/);
    const docs = [...guide.matchAll(/^```yaml\n([\s\S]*?)^```/gm)].flatMap((m) => parseDocs(m[1]!, 'docs/sync.md'));
    expect(docs.some((d) => d.kind === 'SecretProviderClass' && d.spec?.secretObjects)).toBe(true);
    expect(docs.some((d) => d.kind === 'SecretSync')).toBe(true);
    // Each object there is schema-checked by test/deploy/schemas.test.ts with the other docs.
    for (const doc of docs) expect(validateObject(doc), `${doc.kind} ${doc.metadata?.name}`).toEqual([]);
  });
});
