import { spawnSync } from 'node:child_process';
import { mkdtemp, mkdir, readdir, rm, writeFile, lstat, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKubernetesTestServer, serviceAccountUser, type KubernetesTestServer } from '../servers/kubernetes.js';
import { spawnUsp, runUsp } from '../helpers/bin.js';
import { createCanaries } from '../helpers/canary.js';
import { createDriverClient, driverRequest, fileMap } from '../helpers/driver-client.js';
import { fileStore, providerConfigYaml } from '../helpers/yaml.js';

const canaries = createCanaries();
const value = canaries.next('lifecycle');
let dir: string;
let api: KubernetesTestServer;
const allOutput: string[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'usp-life-'));
  await mkdir(join(dir, 'sockets'), { mode: 0o700 });
  await mkdir(join(dir, 'secrets/shop'), { recursive: true });
  await writeFile(join(dir, 'secrets/shop/password'), value);
  api = await startKubernetesTestServer();
  api.putSecret({ namespace: 'shop', name: 'db', data: { password: value } });
  api.allow({ subject: serviceAccountUser('shop', 'app'), namespace: 'shop', resource: 'secrets' });
  await api.writeKubeconfig(join(dir, 'kubeconfig'));
  await writeFile(
    join(dir, 'config.yaml'),
    providerConfigYaml({
      defaultStore: 'files',
      versionKey: 'lifecycle-version-key-0123456789',
      stores: [fileStore('files', './secrets'), { name: 'cluster', backend: 'kubernetes', kubeconfig: './kubeconfig' }],
    }),
  );
});

afterAll(async () => {
  await api.close();
  await rm(dir, { recursive: true, force: true });
  canaries.expectNoneIn(allOutput, 'provider process output');
});

function serve(extra: string[] = []) {
  const proc = spawnUsp([
    'serve',
    '--config', join(dir, 'config.yaml'),
    '--socket-dir', join(dir, 'sockets'),
    '--http-addr', '127.0.0.1:0',
    ...extra,
  ]);
  void proc.exited.then(() => allOutput.push(...proc.lines));
  return proc;
}

const socketPath = () => join(dir, 'sockets', 'universal.sock');

/** grpc.health.v1 Check, as kubelet's gRPC probe or grpc-health-probe would send it. */
function checkHealth(path: string): Promise<number> {
  const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(healthProtoPath)) as unknown as {
    grpc: { health: { v1: { Health: new (target: string, creds: grpc.ChannelCredentials) => grpc.Client } } };
  };
  const client = new pkg.grpc.health.v1.Health(`unix:${path}`, grpc.credentials.createInsecure());
  const check = (client as unknown as Record<string, Function>)['Check']!;
  return new Promise<number>((resolve, reject) =>
    check.call(client, { service: '' }, { deadline: Date.now() + 5_000 }, (err: Error | null, reply: { status: number | string }) => {
      client.close();
      if (err) reject(err);
      else resolve(Number(reply.status === 'SERVING' ? 1 : reply.status));
    }),
  );
}

describe('process lifecycle', () => {
  it('binds a private socket, replaces a stale one after a crash, and serves again', async () => {
    const first = serve();
    await first.waitForLine(/"msg":"ready"/);
    expect((await stat(socketPath())).mode & 0o777).toBe(0o600);
    first.child.kill('SIGKILL');
    await first.exited;
    expect((await lstat(socketPath())).isSocket()).toBe(true);

    const second = serve();
    await second.waitForLine(/"msg":"ready"/);
    const client = createDriverClient(socketPath());
    try {
      const reply = await client.mount(driverRequest('- {name: pw, ref: shop/password}'));
      expect(fileMap(reply).get('pw')?.contents.toString()).toBe(value);
      // The built bin answers grpc.health.v1 (src/server/health.ts) on the same socket.
      expect(await checkHealth(socketPath())).toBe(1); // SERVING
    } finally {
      client.close();
      second.child.kill('SIGTERM');
    }
    expect(await second.exited).toBe(0);
    await expect(lstat(socketPath())).rejects.toThrow();
  });

  it('removes private socket names left by a provider killed before its rename, and keeps live ones', async () => {
    const sockets = join(dir, 'sockets');
    const dead = join(sockets, '.universal.sock.1-0badc0de');
    // A process killed while listening leaves its socket file behind, with nobody accepting.
    const killed = spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(dead)}, () => process.kill(process.pid, 'SIGKILL'))`]);
    expect(killed.signal).toBe('SIGKILL');
    expect((await lstat(dead)).isSocket()).toBe(true);
    const livePath = join(sockets, '.universal.sock.1-5ca1ab1e');
    const live = createServer();
    await new Promise<void>((resolve) => live.listen(livePath, resolve));
    const proc = serve();
    try {
      await proc.waitForLine(/"msg":"ready"/);
      const names = await readdir(sockets);
      expect(names).not.toContain('.universal.sock.1-0badc0de');
      expect(names).toContain('.universal.sock.1-5ca1ab1e');
      expect(names.filter((n) => n.startsWith('.universal.sock.') && n !== '.universal.sock.1-5ca1ab1e')).toEqual([]);
    } finally {
      proc.child.kill('SIGTERM');
      await proc.exited;
      await new Promise((resolve) => live.close(resolve));
    }
  });

  it('lets in-flight Mounts finish on SIGTERM, then removes the socket and exits 0', async () => {
    const proc = serve();
    await proc.waitForLine(/"msg":"ready"/);
    const { token, expiresAt } = api.issueToken({ namespace: 'shop', serviceAccount: 'app' });
    const request = driverRequest('- {name: db, store: cluster, ref: db, key: password}', {
      serviceAccount: 'app',
      tokens: { '': { token, expirationTimestamp: new Date(expiresAt).toISOString() } },
    });
    canaries.add(token);
    api.inject({ kind: 'latency', ms: 1500 }, { times: 3 });
    const client = createDriverClient(socketPath());
    try {
      const inFlight = Promise.all([client.mount(request), client.mount(request), client.mount(request)]);
      await new Promise((r) => setTimeout(r, 500));
      proc.child.kill('SIGTERM');
      await proc.waitForLine(/"msg":"draining"/);
      const replies = await inFlight;
      for (const reply of replies) expect(fileMap(reply).get('db')?.contents.toString()).toBe(value);
    } finally {
      client.close();
    }
    expect(await proc.exited).toBe(0);
    expect(proc.lines.some((l) => /"inFlight":3/.test(l))).toBe(true);
    await expect(lstat(socketPath())).rejects.toThrow();
  });

  it('refuses to start with a bad config, naming the field', async () => {
    await writeFile(join(dir, 'bad.yaml'), 'stores:\n  - {name: x, backend: file}\n  - {name: Y, backend: nope}\n');
    const result = await runUsp(['serve', '--config', join(dir, 'bad.yaml'), '--socket-dir', join(dir, 'sockets'), '--http-addr', '127.0.0.1:0']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('stores[0].root');
    expect(result.stderr).toContain('stores[1].name');
  });

  it('refuses to start when a store cannot start, naming the store and the cause', async () => {
    await writeFile(join(dir, 'no-cluster.yaml'), 'stores:\n  - {name: cluster, backend: kubernetes, kubeconfig: ./missing-kubeconfig}\n');
    const result = await runUsp(['serve', '--config', join(dir, 'no-cluster.yaml'), '--socket-dir', join(dir, 'sockets'), '--http-addr', '127.0.0.1:0']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('store cluster cannot start: kubeconfig');
    expect(result.stderr).not.toContain('internal error');
  });

  it('refuses a socket directory writable by everyone and a bad provider name', async () => {
    const open = join(dir, 'open');
    await mkdir(open, { mode: 0o777 });
    const { chmod } = await import('node:fs/promises');
    await chmod(open, 0o777);
    let result = await runUsp(['serve', '--config', join(dir, 'config.yaml'), '--socket-dir', open, '--http-addr', '127.0.0.1:0']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('writable by every user');
    result = await runUsp(['serve', '--config', join(dir, 'config.yaml'), '--provider-name', 'bad/name', '--socket-dir', join(dir, 'sockets')]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('--provider-name');
  });

  it('takes every flag from the environment too', async () => {
    const proc = spawnUsp(['serve'], {
      env: {
        USP_CONFIG: join(dir, 'config.yaml'),
        USP_SOCKET_DIR: join(dir, 'sockets'),
        USP_PROVIDER_NAME: 'envname',
        USP_HTTP_ADDR: '127.0.0.1:0',
        USP_LOG_LEVEL: 'debug',
      },
    });
    const ready = await proc.waitForLine(/"msg":"ready"/);
    expect(ready).toContain('envname.sock');
    proc.child.kill('SIGINT');
    expect(await proc.exited).toBe(0);
  });
});
