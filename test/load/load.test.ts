/**
 * Load and restart, against the built `usp` (run `npm run build` first) as its own process.
 *
 * Load: Mounts at concurrency 64 for USP_LOAD_SECONDS (8 s in CI; `npm run test:load` runs 60 s),
 * each reading a multi-key Kubernetes Secret (text and binary keys) and a file, while 1% of the
 * API server's answers are faults (5xx, resets, truncated and malformed bodies, latency). Zero
 * crashes, every successful reply checked byte for byte, failures only UNAVAILABLE, and the
 * provider process's RSS (from /proc) plateaus: the second half stays near the first.
 *
 * Restart: SIGTERM while Mounts are in flight; each of them completes or fails with UNAVAILABLE
 * (which the driver retries); a new process, started at the SIGTERM, serves on the same socket path
 * soon after (the figures are printed; the bound is in the test), and the old one, exiting after it,
 * leaves the new one's socket alone.
 */
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadProviderService } from '../../src/server/grpc.js';
import { spawnUsp, type ServingUsp } from '../helpers/bin.js';
import { createCanaries } from '../helpers/canary.js';
import { createDriverClient, driverRequest, type MountReply, type MountRequest } from '../helpers/driver-client.js';
import { fileStore, providerConfigYaml } from '../helpers/yaml.js';
import type { Fault } from '../servers/faults.js';
import { serviceAccountUser, startKubernetesTestServer, type KubernetesTestServer } from '../servers/kubernetes.js';

const loadSeconds = Number(process.env['USP_LOAD_SECONDS'] ?? 8);
const concurrency = 64;
const secretCount = 16;
const serviceAccounts = Array.from({ length: 8 }, (_, i) => `app-${i}`);

const canaries = createCanaries();
const secrets = Array.from({ length: secretCount }, (_, i) => ({
  name: `s-${i}`,
  data: { user: canaries.next(`user${i}`), password: canaries.next(`pw${i}`), 'blob.bin': randomBytes(512) },
}));
const fileValue = canaries.next('file');

let api: KubernetesTestServer;
let dir: string;
const output: string[] = [];

beforeAll(async () => {
  api = await startKubernetesTestServer();
  for (const s of secrets) api.putSecret({ namespace: 'shop', ...s });
  for (const sa of serviceAccounts) {
    api.allow({ subject: serviceAccountUser('shop', sa), namespace: 'shop', resource: 'secrets' });
  }
  dir = await mkdtemp(join(tmpdir(), 'usp-load-'));
  await api.writeKubeconfig(join(dir, 'kubeconfig'));
  await mkdir(join(dir, 'secrets'));
  await writeFile(join(dir, 'secrets', 'app.conf'), fileValue);
  await mkdir(join(dir, 'sockets'), { mode: 0o700 });
  // cache off: every Mount reaches the API server (identical concurrent reads still share one call).
  await writeFile(
    join(dir, 'config.yaml'),
    providerConfigYaml({
      versionKey: 'load-version-key-0123456789',
      stores: [
        {
          name: 'cluster',
          backend: 'kubernetes',
          kubeconfig: './kubeconfig',
          timeout: '3s',
          cache: { ttl: 0 },
          retry: { attempts: 3, baseDelay: '20ms', maxDelay: '200ms' },
          breaker: { failures: 50, openFor: '2s' },
        },
        fileStore('files', './secrets'),
      ],
    }),
  );
});

afterAll(async () => {
  await api?.close();
  await rm(dir, { recursive: true, force: true });
  canaries.expectNoneIn(output, 'provider process output');
});

function serve(): ServingUsp {
  const proc = spawnUsp(
    ['serve', '--config', join(dir, 'config.yaml'), '--socket-dir', join(dir, 'sockets'), '--http-addr', '127.0.0.1:0', '--grace-period', '10'],
    { cwd: dir },
  );
  void proc.exited.then(() => output.push(...proc.lines));
  return proc;
}

const socketPath = () => join(dir, 'sockets', 'universal.sock');

/**
 * A client with its own connection: grpc-js shares subchannels between clients of one target, so a
 * probe made with createDriverClient would wait out the reconnect backoff the load's client built
 * up while no socket existed, and measure that instead of the provider.
 */
function freshClient(path: string) {
  const Client = grpc.makeGenericClientConstructor(loadProviderService(), 'CSIDriverProvider');
  const client = new Client(`unix:${path}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
  const mount = client['Mount'] as unknown as (req: MountRequest, opts: grpc.CallOptions, cb: (err: Error | null, res: MountReply) => void) => void;
  return {
    mount: (req: MountRequest, deadlineMs: number) =>
      new Promise<MountReply>((resolve, reject) =>
        mount.call(client, req, { deadline: Date.now() + deadlineMs }, (err, res) => (err ? reject(err) : resolve(res))),
      ),
    close: () => client.close(),
  };
}

const tokens = new Map<string, { token: string; expirationTimestamp: string }>();
function requestFor(n: number): { request: MountRequest; secret: (typeof secrets)[number] } {
  const sa = serviceAccounts[n % serviceAccounts.length]!;
  let token = tokens.get(sa);
  if (!token) {
    const issued = api.issueToken({ namespace: 'shop', serviceAccount: sa, expiresInSeconds: 7200 });
    canaries.add(issued.token);
    token = { token: issued.token, expirationTimestamp: new Date(issued.expiresAt).toISOString() };
    tokens.set(sa, token);
  }
  const secret = secrets[n % secretCount]!;
  const objects = `- {name: k8s, store: cluster, ref: ${secret.name}, expand: keys}\n- {name: app.conf, store: files, ref: app.conf}`;
  return { request: driverRequest(objects, { serviceAccount: sa, tokens: { '': token } }), secret };
}

/** The exact expected volume; any difference in paths or bytes throws. */
function checkReply(reply: MountReply, secret: (typeof secrets)[number]): void {
  const expected = new Map<string, Buffer>([
    ['app.conf', Buffer.from(fileValue)],
    ...Object.entries(secret.data).map(([k, v]) => [`k8s/${k}`, Buffer.isBuffer(v) ? v : Buffer.from(v)] as [string, Buffer]),
  ]);
  const got = reply.files.map((f) => f.path).sort();
  if (got.join('\n') !== [...expected.keys()].sort().join('\n')) throw new Error(`unexpected paths ${got.join(', ')}`);
  for (const f of reply.files) if (!f.contents.equals(expected.get(f.path)!)) throw new Error(`content of ${f.path} differs`);
  if (reply.objectVersion.length !== 2) throw new Error('expected two object versions');
}

function rssOf(pid: number): Promise<number> {
  return readFile(`/proc/${pid}/status`, 'utf8').then((s) => Number(/VmRSS:\s+(\d+) kB/.exec(s)?.[1] ?? 0) * 1024);
}

const spoilers: Fault[] = [
  { kind: 'status', status: 503, retryAfterSeconds: 0 },
  { kind: 'status', status: 500 },
  { kind: 'reset' },
  { kind: 'truncated' },
  { kind: 'malformed', shape: 'text' },
  { kind: 'latency', ms: 200 },
];

/** Arms one fault per 100 API requests (1%), as the requests come in. */
function injectOnePercent(): () => number {
  let armed = 0;
  const timer = setInterval(() => {
    while (armed < Math.floor(api.requests.length / 100)) {
      api.inject(spoilers[armed % spoilers.length]!);
      armed += 1;
    }
  }, 20);
  return () => {
    clearInterval(timer);
    api.faults.clear();
    return armed;
  };
}

interface Tally {
  ok: number;
  failures: Map<number, number>;
}

async function runWorkers(
  client: ReturnType<typeof createDriverClient>,
  workers: number,
  until: () => boolean,
  onResult?: (started: number, ended: number, outcome: 'ok' | number) => void,
): Promise<Tally> {
  const tally: Tally = { ok: 0, failures: new Map() };
  let n = 0;
  const worker = async () => {
    while (!until()) {
      const { request, secret } = requestFor(n++);
      const started = Date.now();
      try {
        const reply = await client.mount(request, 15_000);
        checkReply(reply, secret);
        tally.ok += 1;
        onResult?.(started, Date.now(), 'ok');
      } catch (err) {
        const code = (err as { code?: number }).code;
        if (code === undefined) throw err;
        tally.failures.set(code, (tally.failures.get(code) ?? 0) + 1);
        onResult?.(started, Date.now(), code);
        // Like the driver, wait a little before asking again.
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };
  await Promise.all(Array.from({ length: workers }, worker));
  return tally;
}

describe('load', () => {
  it(`serves ${concurrency} concurrent Mounts for ${loadSeconds}s with 1% backend faults: no crash, exact bytes, flat memory`, async () => {
    const proc = serve();
    const ready = await proc.waitForLine(/"msg":"ready"/, 20_000);
    const httpAddress = (JSON.parse(ready) as { http: string }).http;
    const pid = proc.child.pid!;
    const client = createDriverClient(socketPath());
    const samples: Array<{ at: number; rss: number }> = [];
    const started = Date.now();
    const stopAt = started + loadSeconds * 1000;
    const sampler = setInterval(() => void rssOf(pid).then((rss) => rss > 0 && samples.push({ at: Date.now() - started, rss })), 200);
    const stopFaults = injectOnePercent();
    let tally: Tally;
    try {
      tally = await runWorkers(client, concurrency, () => Date.now() >= stopAt);
    } finally {
      clearInterval(sampler);
    }
    const faults = stopFaults();
    const metrics = await (await fetch(`http://${httpAddress}/metrics`)).text();
    client.close();
    expect(proc.child.exitCode, 'the provider exited during the load').toBeNull();
    proc.child.kill('SIGTERM');
    expect(await proc.exited).toBe(0);

    const failed = [...tally.failures.values()].reduce((a, b) => a + b, 0);
    const mib = (b: number) => Math.round((b / 2 ** 20) * 10) / 10;
    // Ignore the warm-up (start-up, JIT, the V8 heap finding its size); compare the halves of the rest.
    const warmupMs = Math.max(1_000, loadSeconds * 250);
    const steady = samples.filter((s) => s.at >= warmupMs);
    const half = Math.floor(steady.length / 2);
    const firstMax = Math.max(...steady.slice(0, half).map((s) => s.rss));
    const secondMax = Math.max(...steady.slice(half).map((s) => s.rss));
    console.info(
      `load: ${loadSeconds}s at concurrency ${concurrency}: ${tally.ok} Mounts ok (${Math.round(tally.ok / loadSeconds)}/s), ${failed} failed ${JSON.stringify(Object.fromEntries(tally.failures))}, ` +
        `${api.requests.length} API requests, ${faults} faults injected; provider RSS max ${mib(firstMax)} MiB (first half) -> ${mib(secondMax)} MiB (second half)`,
    );

    expect(tally.ok).toBeGreaterThan(loadSeconds * 20);
    expect(faults).toBeGreaterThan(0);
    for (const code of tally.failures.keys()) expect(code).toBe(status.UNAVAILABLE);
    expect(failed).toBeLessThan(tally.ok / 100);
    expect(Number(/usp_mount_requests_total\{outcome="ok",code="OK"\} (\d+)/.exec(metrics)?.[1] ?? /usp_mount_requests_total\{outcome="ok"[^}]*\} (\d+)/.exec(metrics)?.[1])).toBe(tally.ok);
    expect(steady.length).toBeGreaterThan(4);
    // Generous (the short form still sees the heap settle): a leak of a few kB per Mount adds tens of
    // MiB per half at these rates. The 60 s form measured 253.3 -> 253.4 MiB.
    expect(secondMax).toBeLessThan(firstMax * 1.3 + 32 * 2 ** 20);
    expect(proc.lines.filter((l) => /uncaught|unhandled|"level":(50|60)/i.test(l))).toEqual([]);
  }, (loadSeconds + 60) * 1000);
});

describe('restart under load', () => {
  it('finishes or fails in-flight Mounts with UNAVAILABLE on SIGTERM; a new process serves the same socket path', async () => {
    const old = serve();
    await old.waitForLine(/"msg":"ready"/, 20_000);
    const oldSocket = await lstat(socketPath());
    // Slow answers keep Mounts in flight when SIGTERM comes.
    api.inject({ kind: 'latency', ms: 300 }, { times: Infinity });
    const client = createDriverClient(socketPath());
    let stop = false;
    let sigtermAt = 0;
    const inFlightAtSigterm: Array<'ok' | number> = [];
    const outcomes: Array<'ok' | number> = [];
    const load = runWorkers(client, 16, () => stop, (startedAt, endedAt, outcome) => {
      outcomes.push(outcome);
      if (sigtermAt > 0 && startedAt < sigtermAt && endedAt >= sigtermAt) inFlightAtSigterm.push(outcome);
    });
    await new Promise((r) => setTimeout(r, 1_000));

    let oldGone = false;
    void old.exited.then(() => (oldGone = true));
    sigtermAt = Date.now();
    old.child.kill('SIGTERM');
    const next = serve();
    let readyAfterMs = -1;
    void next.waitForLine(/"msg":"ready"/, 20_000).then(() => (readyAfterMs = Date.now() - sigtermAt), () => {});
    // Serving = a fresh connection on the socket path gets a Mount answered by the new process.
    let servingAfterMs = -1;
    const probeErrors: string[] = [];
    const probeDeadline = Date.now() + 10_000;
    while (Date.now() < probeDeadline) {
      const probe = freshClient(socketPath());
      try {
        // Only the file store: the API server's injected latency would be counted otherwise.
        const reply = await probe.mount(driverRequest('- {name: app.conf, store: files, ref: app.conf}'), 1_000);
        if (reply.files.length !== 1 || !reply.files[0]!.contents.equals(Buffer.from(fileValue))) throw new Error('wrong file');
        const socket = await lstat(socketPath());
        // Inode numbers are reused once the old socket is gone, so an exited old process also
        // proves the answer came from the new one.
        if (socket.ino !== oldSocket.ino || oldGone) {
          servingAfterMs = Date.now() - sigtermAt;
          break;
        }
      } catch (err) {
        // not yet: no socket, or the old process refusing while it drains
        probeErrors.push(`${Date.now() - sigtermAt}ms ${(err as Error).message}`);
      } finally {
        probe.close();
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    // And the Kubernetes store, through the API server's injected 300 ms.
    let storeServingAfterMs = -1;
    if (servingAfterMs > 0) {
      const probe = freshClient(socketPath());
      const { request, secret } = requestFor(0);
      checkReply(await probe.mount(request, 5_000), secret);
      storeServingAfterMs = Date.now() - sigtermAt;
      probe.close();
    }
    await new Promise((r) => setTimeout(r, 1_000));
    stop = true;
    const tally = await load;
    api.faults.clear();
    client.close();

    const oldExit = await old.exited;
    console.info(
      `restart: new process ready ${readyAfterMs} ms, serving ${servingAfterMs} ms (a Kubernetes Mount ${storeServingAfterMs} ms) after SIGTERM to the old one; ${inFlightAtSigterm.length} Mounts in flight at SIGTERM ` +
        `(${inFlightAtSigterm.filter((o) => o === 'ok').length} completed, ${inFlightAtSigterm.filter((o) => o !== 'ok').length} UNAVAILABLE); ` +
        `${tally.ok} ok and ${JSON.stringify(Object.fromEntries(tally.failures))} failed in all`,
    );
    if (servingAfterMs < 0) console.info(probeErrors.slice(-5).join('\n'));
    expect(servingAfterMs).toBeGreaterThan(0);
    // The new process, started at SIGTERM while the load goes on, serves soon: the figure above is
    // the measurement. Measured on 2 cores (Node 20, bundled build): 0.27-0.35 s alone, 1.07 s with
    // other sessions' tests beside it, 1.12-1.74 s with both cores also running a busy loop. The
    // former 1 s bound failed at 1.07 s; 4 s is 2.3 times the worst of these. Slower starts within
    // it show in the printed figure (docs/performance.md keeps the history).
    expect(servingAfterMs).toBeLessThan(4_000);
    expect(inFlightAtSigterm.length).toBeGreaterThan(0);
    for (const outcome of inFlightAtSigterm) expect(outcome === 'ok' || outcome === status.UNAVAILABLE).toBe(true);
    for (const code of tally.failures.keys()) expect(code).toBe(status.UNAVAILABLE);
    expect(outcomes.filter((o) => o === 'ok').length).toBeGreaterThan(10);

    // The old process exited cleanly and left the new one's socket in place.
    expect(oldExit).toBe(0);
    const after = await lstat(socketPath());
    expect(after.isSocket()).toBe(true);
    // (Not an inode comparison: the number of the old, removed socket may be reused by the new one.)
    const check = createDriverClient(socketPath());
    try {
      const { request, secret } = requestFor(1);
      checkReply(await check.mount(request), secret);
    } finally {
      check.close();
    }
    next.child.kill('SIGTERM');
    expect(await next.exited).toBe(0);
    await expect(lstat(socketPath())).rejects.toThrow();
  }, 60_000);

  it('a provider stopping after another replaced its socket leaves the new socket in place', async () => {
    // The order of a rolling update that overlaps: the new process binds first, the old one stops later.
    const old = serve();
    await old.waitForLine(/"msg":"ready"/, 20_000);
    const next = serve();
    await next.waitForLine(/"msg":"ready"/, 20_000);
    const replaced = await lstat(socketPath());
    old.child.kill('SIGTERM');
    expect(await old.exited).toBe(0);
    const after = await lstat(socketPath());
    expect(after.isSocket()).toBe(true);
    expect(after.ino).toBe(replaced.ino);
    expect((after.mode & 0o777).toString(8)).toBe('600');
    const probe = freshClient(socketPath());
    try {
      const { request, secret } = requestFor(2);
      checkReply(await probe.mount(request, 10_000), secret);
    } finally {
      probe.close();
    }
    next.child.kill('SIGTERM');
    expect(await next.exited).toBe(0);
    expect(await readdir(join(dir, 'sockets'))).toEqual([]);
  }, 60_000);
});
