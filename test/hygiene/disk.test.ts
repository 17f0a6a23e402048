/**
 * The provider never writes a secret to disk. The built `usp` runs as its own process with its own
 * working directory and TMPDIR, serves Mounts of canary values from a file store, a Kubernetes API
 * and Vault (successful ones, failing ones, and ones whose content fails a transform), and stops.
 * Then every file under its working directory, config directory, socket directory and TMPDIR, and
 * every entry of the system temporary directory created during the test, is searched for every
 * canary (as text and as base64). The file store's own directory is the one place they may be.
 */
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnUsp, type ServingUsp } from '../helpers/bin.js';
import { createCanaries } from '../helpers/canary.js';
import { createDriverClient, driverRequest, fileMap, type PodOptions } from '../helpers/driver-client.js';
import { fileStore, providerConfigYaml } from '../helpers/yaml.js';
import { serviceAccountUser, startKubernetesTestServer, type KubernetesTestServer } from '../servers/kubernetes.js';
import { startVaultTestServer, type VaultTestServer } from '../servers/vault.js';

const canaries = createCanaries();
const fileSecret = canaries.next('file');
const fileJson = { password: canaries.next('file-json') };
const kubeSecret = { user: canaries.next('kube-user'), password: canaries.next('kube-pw') };
const vaultSecret = { password: canaries.next('vault-pw'), api: canaries.next('vault-api') };
const notJson = canaries.next('not-json');

let api: KubernetesTestServer;
let vault: VaultTestServer;
let storeRoot: string;
let dir: string;
let tmpBefore: Set<string>;
let proc: ServingUsp;

const systemTmp = tmpdir();

beforeAll(async () => {
  storeRoot = await mkdtemp(join(systemTmp, 'usp-hygiene-store-'));
  await writeFile(join(storeRoot, 'plain'), fileSecret);
  await writeFile(join(storeRoot, 'doc.json'), JSON.stringify(fileJson));
  await writeFile(join(storeRoot, 'not-json'), notJson);
  dir = await mkdtemp(join(systemTmp, 'usp-hygiene-'));
  tmpBefore = new Set(await readdir(systemTmp));

  api = await startKubernetesTestServer();
  api.putSecret({ namespace: 'shop', name: 'db', data: kubeSecret });
  api.allow({ subject: serviceAccountUser('shop', 'app'), namespace: 'shop', resource: 'secrets', names: ['db'] });
  vault = await startVaultTestServer();
  vault.enableKv('secret', 2);
  vault.writeKv('secret', 'shop/app', vaultSecret);
  vault.definePolicy('app', { 'secret/data/shop/*': ['read'] });
  vault.defineRole({ name: 'app', boundServiceAccountNames: ['app'], boundNamespaces: ['shop'], policies: ['app'] });

  for (const sub of ['work', 'config', 'sockets', 'tmp']) await mkdir(join(dir, sub), { mode: 0o700 });
  await api.writeKubeconfig(join(dir, 'config', 'kubeconfig'));
  await writeFile(join(dir, 'config', 'vault-ca.pem'), vault.ca.cert);
  await writeFile(
    join(dir, 'config', 'config.yaml'),
    providerConfigYaml({
      versionKey: 'hygiene-version-key-0123456789',
      stores: [
        fileStore('files', storeRoot),
        { name: 'cluster', backend: 'kubernetes', kubeconfig: './kubeconfig', cache: { ttl: '60s' } },
        { name: 'vault', backend: 'vault', address: vault.url, tls: { caFile: './vault-ca.pem' }, auth: { method: 'kubernetes', role: 'app' } },
      ],
    }),
  );
  proc = spawnUsp(
    ['serve', '--config', join(dir, 'config', 'config.yaml'), '--socket-dir', join(dir, 'sockets'), '--http-addr', '127.0.0.1:0', '--log-level', 'debug'],
    { cwd: join(dir, 'work'), env: { TMPDIR: join(dir, 'tmp') } },
  );
  await proc.waitForLine(/"msg":"ready"/, 20_000);
}, 60_000);

afterAll(async () => {
  if (proc && proc.child.exitCode === null) proc.child.kill('SIGKILL');
  await api?.close();
  await vault?.close();
  await rm(dir, { recursive: true, force: true });
  await rm(storeRoot, { recursive: true, force: true });
});

function pod(): PodOptions {
  const kube = api.issueToken({ namespace: 'shop', serviceAccount: 'app' });
  const v = vault.issuePodToken({ namespace: 'shop', serviceAccount: 'app' });
  canaries.add(kube.token, v.token);
  return {
    serviceAccount: 'app',
    tokens: {
      '': { token: kube.token, expirationTimestamp: new Date(kube.expiresAt).toISOString() },
      vault: { token: v.token, expirationTimestamp: new Date(v.expiresAt).toISOString() },
    },
  };
}

/** Every regular file under `root`, not following symlinks; unreadable entries are skipped. */
async function filesUnder(root: string): Promise<string[]> {
  const info = await lstat(root).catch(() => undefined);
  if (!info) return [];
  if (info.isFile()) return [root];
  if (!info.isDirectory()) return [];
  const entries = await readdir(root).catch(() => [] as string[]);
  return (await Promise.all(entries.map((e) => filesUnder(join(root, e))))).flat();
}

describe('secret hygiene on disk', () => {
  it('writes no secret anywhere it could: cwd, config dir, socket dir, TMPDIR, new entries of the system tmp', async () => {
    const client = createDriverClient(join(dir, 'sockets', 'universal.sock'));
    try {
      const reply = await client.mount(
        driverRequest(
          [
            '- {name: plain, store: files, ref: plain}',
            '- {name: doc, store: files, ref: doc.json, key: password}',
            '- {name: kube, store: cluster, ref: db, expand: keys}',
            '- {name: vault/password, store: vault, ref: secret/data/shop/app, key: password}',
            '- {name: vault/api, store: vault, ref: secret/data/shop/app, select: api}',
          ].join('\n'),
          pod(),
        ),
      );
      const files = fileMap(reply);
      expect(files.get('plain')?.contents.toString()).toBe(fileSecret);
      expect(files.get('kube/password')?.contents.toString()).toBe(kubeSecret.password);
      expect(files.get('vault/api')?.contents.toString()).toBe(vaultSecret.api);
      // Failures that handle secret content: a parse error of the content, a missing key.
      const parseError = await client.mountError(driverRequest('- {name: x, store: files, ref: not-json, key: a}', pod()));
      expect(parseError.code).toBe(status.INVALID_ARGUMENT);
      const missing = await client.mountError(driverRequest('- {name: x, store: vault, ref: secret/data/shop/app, key: nope}', pod()));
      expect(missing.code).toBe(status.NOT_FOUND);
      canaries.expectNoneIn([parseError.details, missing.details], 'error messages');
    } finally {
      client.close();
    }
    proc.child.kill('SIGTERM');
    expect(await proc.exited).toBe(0);

    const created = (await readdir(systemTmp)).filter((e) => !tmpBefore.has(e)).map((e) => join(systemTmp, e));
    const roots = [join(dir, 'work'), join(dir, 'config'), join(dir, 'sockets'), join(dir, 'tmp'), ...created];
    const files = (await Promise.all(roots.map(filesUnder))).flat();
    const needles = canaries.all.flatMap((c) => [Buffer.from(c), Buffer.from(Buffer.from(c).toString('base64').slice(0, -4))]);
    const holding = async (candidates: string[]) => {
      const found: string[] = [];
      for (const file of candidates) {
        const info = await lstat(file).catch(() => undefined);
        if (!info || info.size > 16 * 1024 * 1024) continue;
        const bytes = await readFile(file).catch(() => undefined);
        if (bytes && needles.some((n) => bytes.includes(n))) found.push(file);
      }
      return found;
    };
    // The scan finds canaries where they are: the file store's own directory.
    expect(await holding(await filesUnder(storeRoot))).toHaveLength(3);
    const hits = await holding(files);
    console.info(`hygiene: scanned ${files.length} files under ${roots.length} roots for ${canaries.all.length} canaries`);
    expect(hits).toEqual([]);
    // The provider's own directories hold nothing but what we put there.
    expect(await filesUnder(join(dir, 'work'))).toEqual([]);
    expect(await filesUnder(join(dir, 'tmp'))).toEqual([]);
    expect(await readdir(join(dir, 'sockets'))).toEqual([]);
    canaries.expectNoneIn(proc.lines, 'provider process output');
  });
});
