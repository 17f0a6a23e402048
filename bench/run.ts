import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { packageRoot, runtimeVersion } from '../src/package-info.js';
import { createDriverClient, driverRequest, type DriverClient, type MountRequest } from '../test/helpers/driver-client.js';
import { serviceAccountUser, startKubernetesTestServer, type KubernetesTestServer } from '../test/servers/kubernetes.js';
import { measureFind } from './find.js';
import { measureFootprint } from './footprint.js';
import { describeSettings, measureIdleCpu, readDaemonSetSettings, readRss, readSettledRss, round, sleep, startProvider } from './provider.js';

/**
 * `npm run bench`: the built provider in its own process on a real Unix socket, driven by this
 * process as the CSI driver would, next to a bare grpc-js baseline in the same run.
 * `--smoke` runs a few hundred Mounts so CI keeps the benchmark working; figures are for people.
 */
const smoke = process.argv.includes('--smoke');
/** `--only footprint` or `--only overhead`: one table alone, for working on memory or Mount cost. */
const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : undefined;
const counts = smoke
  ? { overhead: 100, leakTotal: 400, leakFirst: 100, fanoutRounds: 2, fairBurstPods: 10, idleCpuSeconds: 2 }
  : { overhead: 4000, leakTotal: 100_000, leakFirst: 10_000, fanoutRounds: 7, fairBurstPods: 60, idleCpuSeconds: 60 };

interface LatencyStats {
  p50: number;
  p99: number;
  perSecond: number;
}

async function main() {
  const dir = await mkdtemp(join(tmpdir(), 'usp-bench-'));
  const api = await startKubernetesTestServer();
  try {
    if (only === 'footprint') {
      await setUpStores(dir, api);
      const footprint = await measureFootprint({ dir, api, settings: daemonSet, start: startProvider, readIdleRss: (pid) => readSettledRss(pid, { smoke }) });
      process.stdout.write(`${formatFootprint(footprint).join('\n')}\n`);
      return;
    }
    if (only === 'overhead') {
      await setUpStores(dir, api);
      const { proc } = await startProvider(dir);
      const client = createDriverClient(join(dir, 'sock', 'universal.sock'));
      const cached = driverRequest(fileObjects(10), { podName: 'bench' });
      const baseline = await startBaseline(dir, (await client.mount(cached)).files);
      try {
        const overhead = await measureOverhead(baseline.client, client, cached);
        process.stdout.write(`${formatOverhead(overhead).join('\n')}\npeak RSS ${readRss(proc.pid!, 'VmHWM')} MiB\n`);
      } finally {
        for (const p of [proc, baseline.proc]) p.kill('SIGTERM');
        client.close();
        baseline.client.close();
      }
      return;
    }
    const results = await runAll(dir, api);
    const text = formatResults(results);
    process.stdout.write(text);
    if (!smoke) await writeFile(join(packageRoot, 'bench', 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  } finally {
    await api.close();
    await rm(dir, { recursive: true, force: true });
  }
}

async function runAll(dir: string, api: KubernetesTestServer) {
  await setUpStores(dir, api);
  const startup = await startProvider(dir);
  const provider = startup.proc;
  const client = createDriverClient(join(dir, 'sock', 'universal.sock'));
  try {
    const idleRss = await readSettledRss(provider.pid!, { smoke });
    const cached = driverRequest(fileObjects(10), { podName: 'bench' });
    const first = await client.mount(cached);
    const baseline = await startBaseline(dir, first.files);
    try {
      const overhead = await measureOverhead(baseline.client, client, cached);
      const peakRss = readRss(provider.pid!, 'VmHWM');
      const fanout = await measureFanout(client, api);
      const amplification = await measureAmplification(client, api);
      const find = await measureFind(client, api, { store: 'amp' });
      const fairness = await measureFairness(client, api, startup.address);
      const lean = await measureLean(dir);
      const footprint = await measureFootprint({ dir, api, settings: daemonSet, start: startProvider, readIdleRss: (pid) => readSettledRss(pid, { smoke }) });
      return {
        machine: { cpus: cpus().length, model: cpus()[0]?.model ?? 'unknown', memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version },
        provider: runtimeVersion,
        mode: smoke ? 'smoke' : 'full',
        startupMs: startup.readyMs,
        memoryMiB: { idle: idleRss, peakUnder128: peakRss },
        lean,
        overhead,
        fanout,
        amplification,
        find,
        fairness,
        footprint,
      };
    } finally {
      baseline.client.close();
      baseline.proc.kill('SIGTERM');
      await once(baseline.proc, 'exit');
    }
  } finally {
    client.close();
    provider.kill('SIGTERM');
    await once(provider, 'exit');
  }
}

const fileObjects = (n: number) => Array.from({ length: n }, (_, i) => `- {name: s/${i}, store: files, ref: s${i}}`).join('\n');

async function setUpStores(dir: string, api: KubernetesTestServer) {
  await mkdir(join(dir, 'secrets'), { recursive: true });
  await mkdir(join(dir, 'sock'), { mode: 0o700 });
  for (let i = 0; i < 10; i++) await writeFile(join(dir, 'secrets', `s${i}`), `secret-${i}-`.padEnd(64, 'x'));
  for (let i = 0; i < 20; i++) api.putSecret({ namespace: 'bench', name: `slow${i}`, data: { v: `v${i}` } });
  for (let i = 0; i < 20; i++) api.putSecret({ namespace: 'bench', name: `amp${i}`, data: { v: `v${i}` } });
  for (let i = 0; i < 10; i++) api.allow({ subject: serviceAccountUser('bench', `sa${i}`), namespace: 'bench', resource: 'secrets' });
  for (let pod = 0; pod < counts.fairBurstPods; pod++) {
    for (let j = 0; j < 10; j++) api.putSecret({ namespace: 'noisy', name: `p${pod}-s${j}`, data: { v: `v${j}` } });
  }
  for (const ns of ['noisy', 'quiet']) for (let j = 0; j < 10; j++) api.putSecret({ namespace: ns, name: `q${j}`, data: { v: `v${j}` } });
  api.allow({ subject: serviceAccountUser('noisy', 'deployer'), namespace: 'noisy', resource: 'secrets' });
  api.allow({ subject: serviceAccountUser('quiet', 'web'), namespace: 'quiet', resource: 'secrets' });
  await api.writeKubeconfig(join(dir, 'kubeconfig'));
  await writeFile(
    join(dir, 'config.yaml'),
    `versionKey: bench-version-key-0123456789
stores:
  - {name: files, backend: file, root: ./secrets, cache: {ttl: 1h}}
  - {name: slow, backend: kubernetes, kubeconfig: ./kubeconfig, cache: {ttl: 0}, concurrency: 32}
  - {name: amp, backend: kubernetes, kubeconfig: ./kubeconfig, cache: {ttl: 1h}}
  - {name: fair, backend: kubernetes, kubeconfig: ./kubeconfig, cache: {ttl: 0}}
`,
  );
}

async function startBaseline(dir: string, files: Array<{ path: string; mode: number; contents: Buffer }>, name = 'baseline') {
  const socket = join(dir, 'sock', `${name}.sock`);
  const json = JSON.stringify(files.map((f) => ({ path: f.path, mode: f.mode, contents: f.contents.toString('base64') })));
  const proc = spawn(process.execPath, [join(packageRoot, 'dist/bench/baseline-server.js'), socket, json], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve) => proc.stdout!.once('data', () => resolve()));
  return { proc, client: createDriverClient(socket) };
}

/** The cache-hit Mount against the bare baseline, back to back at each concurrency. */
async function measureOverhead(baseline: DriverClient, provider: DriverClient, request: MountRequest) {
  const overhead = [];
  for (const concurrency of [1, 16, 128]) {
    const base = await measure(baseline, request, concurrency, counts.overhead);
    const ours = await measure(provider, request, concurrency, counts.overhead);
    overhead.push({ concurrency, baseline: base, provider: ours, p50Ratio: ours.p50 / base.p50, throughputRatio: ours.perSecond / base.perSecond });
  }
  return overhead;
}

/** Mount latency and throughput with `concurrency` callers sharing one channel, as the driver does. */
async function measure(client: DriverClient, request: MountRequest, concurrency: number, total: number): Promise<LatencyStats> {
  for (let i = 0; i < 50; i++) await client.mount(request);
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        next += 1;
        const t = performance.now();
        await client.mount(request);
        latencies.push(performance.now() - t);
      }
    }),
  );
  const elapsed = performance.now() - started;
  latencies.sort((a, b) => a - b);
  return {
    p50: round(latencies[Math.floor(latencies.length * 0.5)]!),
    p99: round(latencies[Math.floor(latencies.length * 0.99)]!),
    perSecond: Math.round((latencies.length / elapsed) * 1000),
  };
}

/** A cold 20-object Mount against a store that takes 50 ms per call, next to a cold 1-object Mount. */
async function measureFanout(client: DriverClient, api: KubernetesTestServer) {
  const pod = podFor(api, 'sa0');
  const one = driverRequest('- {name: a, store: slow, ref: slow0, key: v}', pod);
  const twenty = driverRequest(Array.from({ length: 20 }, (_, i) => `- {name: f${i}, store: slow, ref: slow${i}, key: v}`).join('\n'), pod);
  const time = async (request: MountRequest, calls: number) => {
    const samples = [];
    for (let i = 0; i < counts.fanoutRounds; i++) {
      api.inject({ kind: 'latency', ms: 50 }, { times: calls });
      const t = performance.now();
      await client.mount(request);
      samples.push(performance.now() - t);
    }
    return round(samples.sort((a, b) => a - b)[Math.floor(samples.length / 2)]!);
  };
  const oneMs = await time(one, 1);
  const twentyMs = await time(twenty, 20);
  return { oneObjectMs: oneMs, twentyObjectsMs: twentyMs, ratio: round(twentyMs / oneMs) };
}

/** Store calls made by 100 concurrent cold Mounts of a 10-object class: by one identity, then by ten. */
async function measureAmplification(client: DriverClient, api: KubernetesTestServer) {
  // Each scenario reads its own secrets, so the first cannot warm the cache for the second.
  const calls = async (pods: ReturnType<typeof podFor>[], first: number) => {
    const objects = Array.from({ length: 10 }, (_, i) => `- {name: f${i}, store: amp, ref: amp${first + i}, key: v}`).join('\n');
    const before = api.requests.length;
    api.inject({ kind: 'latency', ms: 20 }, { times: 1000 });
    await Promise.all(Array.from({ length: 100 }, (_, i) => client.mount(driverRequest(objects, { ...pods[i % pods.length]!, podName: `p${i}` }))));
    api.faults.clear();
    return api.requests.length - before;
  };
  const oneIdentity = await calls([podFor(api, 'sa1')], 0);
  const tenIdentities = await calls(Array.from({ length: 10 }, (_, i) => podFor(api, `sa${i}`)), 10);
  return { oneIdentityCalls: oneIdentity, tenIdentitiesCalls: tenIdentities };
}

/**
 * The DaemonSet's setting, file stores only: what a node pays when no heavy client library is
 * loaded, with the V8 heap cap the manifests set (deploy/base/daemonset.yaml NODE_OPTIONS).
 */
const daemonSet = readDaemonSetSettings();

async function measureLean(dir: string) {
  await writeFile(join(dir, 'lean.yaml'), 'versionKey: bench-version-key-0123456789\nstores:\n  - {name: files, backend: file, root: ./secrets, cache: {ttl: 1h}}\n');
  await mkdir(join(dir, 'lean-sock'), { mode: 0o700 });
  const { proc, readyMs } = await startProvider(dir, 'lean.yaml', daemonSet, 'lean-sock');
  const client = createDriverClient(join(dir, 'lean-sock', 'universal.sock'));
  try {
    const idle = await readSettledRss(proc.pid!, { smoke });
    // Idle CPU beside a bare baseline process idling over the same seconds.
    const idleBaseline = await startBaseline(dir, [], 'idle-baseline');
    const [idleCpu, baselineIdleCpu] = await Promise.all([measureIdleCpu(proc.pid!, counts.idleCpuSeconds), measureIdleCpu(idleBaseline.proc.pid!, counts.idleCpuSeconds)]);
    idleBaseline.client.close();
    idleBaseline.proc.kill('SIGTERM');
    const stats = await measure(client, driverRequest(fileObjects(10), { podName: 'lean' }), 128, smoke ? 200 : 10_000);
    const peak = readRss(proc.pid!, 'VmHWM');
    // Leaks show under the production heap cap; without it RSS follows V8's heap growth policy.
    const leak = await measureLeak(client, proc.pid!);
    return { nodeFlags: describeSettings(daemonSet), startupMs: readyMs, idleMiB: idle, peakUnder128MiB: peak, perSecondAt128: stats.perSecond, leak, idleCpu, baselineIdleCpu };
  } finally {
    client.close();
    proc.kill('SIGTERM');
    await once(proc, 'exit');
  }
}

/** RSS after the first part of many Mounts and at the end: growth shows a leak. */
async function measureLeak(client: DriverClient, pid: number) {
  const request = driverRequest(fileObjects(10), { podName: 'leak' });
  let done = 0;
  let afterFirst = 0;
  const worker = async () => {
    while (done < counts.leakTotal) {
      done += 1;
      await client.mount(request);
      if (done === counts.leakFirst) afterFirst = readRss(pid, 'VmRSS');
    }
  };
  await Promise.all(Array.from({ length: 64 }, worker));
  const atEnd = readRss(pid, 'VmRSS');
  return { afterFirstMounts: afterFirst, afterAllMounts: atEnd, mounts: counts.leakTotal, growthPercent: round(((atEnd - afterFirst) / afterFirst) * 100) };
}

/**
 * Issue #17's scenario on the `fair` store (defaults: concurrency 16, fairness maxShare 0.75), every
 * secret read taking 100 ms: a 10-object pod of namespace `quiet` alone, then during a burst of 60
 * pods (10 in smoke runs) x 10 objects of namespace `noisy`. First-in-first-out is the same run with
 * the quiet pod in the burst's namespace and service account: one lane of the fair queue, which is
 * served in order.
 */
async function measureFairness(client: DriverClient, api: KubernetesTestServer, httpAddress: string) {
  const storeLoads = async () => Number(/usp_cache_misses_total\{store="fair"\} (\d+)/.exec(await (await fetch(`http://${httpAddress}/metrics`)).text())?.[1] ?? 0);
  const objects = (names: string[]) => names.map((name, i) => `- {name: f${i}, store: fair, ref: ${name}, key: v}`).join('\n');
  const quietNames = Array.from({ length: 10 }, (_, j) => `q${j}`);
  const timed = async (request: MountRequest) => {
    const t = performance.now();
    await client.mount(request);
    return performance.now() - t;
  };
  api.inject({ kind: 'latency', ms: 100 }, { times: Infinity, match: '/secrets/' });
  try {
    const quiet = driverRequest(objects(quietNames), podFor(api, 'web', 'quiet-0', 'quiet'));
    const aloneMs = [await timed(quiet), await timed(quiet), await timed(quiet)].sort((a, b) => a - b)[1]!;
    const burst = async (quietPod: MountRequest) => {
      const loadsBefore = await storeLoads();
      const started = performance.now();
      const pods = Array.from({ length: counts.fairBurstPods }, (_, pod) =>
        client.mount(driverRequest(objects(quietNames.map((_, j) => `p${pod}-s${j}`)), podFor(api, 'deployer', `noisy-${pod}`, 'noisy'))),
      );
      // The quiet pod starts once every call of the burst has reached the store's queue, as in the issue.
      while ((await storeLoads()) < loadsBefore + counts.fairBurstPods * 10) await sleep(5);
      const quietMs = await timed(quietPod);
      await Promise.all(pods);
      return { quietMs: round(quietMs), burstMs: round(performance.now() - started) };
    };
    const fair = await burst(quiet);
    const fifo = await burst(driverRequest(objects(quietNames), podFor(api, 'deployer', 'quiet-0', 'noisy')));
    return { quietAloneMs: round(aloneMs), fair, fifo, quietRatio: round(fair.quietMs / aloneMs), burstRatio: round(fair.burstMs / fifo.burstMs) };
  } finally {
    api.faults.clear();
  }
}

function podFor(api: KubernetesTestServer, serviceAccount: string, podName = 'bench', namespace = 'bench') {
  const { token, expiresAt } = api.issueToken({ namespace, serviceAccount, expiresInSeconds: 3600 });
  return { namespace, serviceAccount, podName, tokens: { '': { token, expirationTimestamp: new Date(expiresAt).toISOString() } } };
}

function formatResults(r: Awaited<ReturnType<typeof runAll>>): string {
  const lines = [
    `usp ${r.provider} benchmark (${r.mode}) on ${r.machine.cpus} x ${r.machine.model}, ${r.machine.memoryGiB} GiB, Node ${r.machine.node}`,
    '',
    ...formatOverhead(r.overhead),
    '',
    `fan-out: cold 1-object Mount ${r.fanout.oneObjectMs} ms, cold 20-object Mount ${r.fanout.twentyObjectsMs} ms (ratio ${r.fanout.ratio}; 50 ms per store call)`,
    `amplification: 100 concurrent Mounts x 10 objects: one identity ${r.amplification.oneIdentityCalls} store calls, ten identities ${r.amplification.tenIdentitiesCalls}`,
    `find: ${r.find.mounts} concurrent Mounts by one identity of a find over ${r.find.secrets} Secrets: ${r.find.listCalls} listing calls, ${r.find.readCalls} single reads, ${r.find.filesPerMount} files each`,
    `fairness (${counts.fairBurstPods} pods x 10 objects of one namespace, 100 ms per store call, concurrency 16): a 10-object Mount of another namespace ${r.fairness.fair.quietMs} ms (alone ${r.fairness.quietAloneMs} ms, ${r.fairness.quietRatio}x; first-in-first-out ${r.fairness.fifo.quietMs} ms); the burst ${r.fairness.fair.burstMs} ms (first-in-first-out ${r.fairness.fifo.burstMs} ms, ${r.fairness.burstRatio}x)`,
    `memory (default V8 flags, file and kubernetes stores configured, no Mount yet): idle ${r.memoryMiB.idle} MiB, peak ${r.memoryMiB.peakUnder128} MiB`,
    `startup: ${r.startupMs} ms from process start to /readyz ready`,
    ...formatFootprint(r.footprint),
    `idle CPU over ${r.lean.idleCpu.seconds} s with no Mount (file store, default metrics and timers): ${r.lean.idleCpu.cpuSecondsPerMinute} CPU s per minute, ${r.lean.idleCpu.wakeupsPerSecond} wakeups/s; bare baseline ${r.lean.baselineIdleCpu.cpuSecondsPerMinute} s, ${r.lean.baselineIdleCpu.wakeupsPerSecond}/s (${r.lean.idleCpu.source})`,
    `file stores only, ${r.lean.nodeFlags} (the DaemonSet's): startup ${r.lean.startupMs} ms, idle ${r.lean.idleMiB} MiB, peak ${r.lean.peakUnder128MiB} MiB at 128 concurrent Mounts (${r.lean.perSecondAt128}/s); RSS ${r.lean.leak.afterFirstMounts} MiB after ${counts.leakFirst} Mounts, ${r.lean.leak.afterAllMounts} MiB after ${r.lean.leak.mounts} (${r.lean.leak.growthPercent}%)`,
    '',
  ];
  return lines.join('\n');
}

function formatOverhead(overhead: Awaited<ReturnType<typeof measureOverhead>>): string[] {
  return [
    'overhead: 10-object class from cache vs bare grpc-js server with the same response',
    'concurrency  baseline p50/p99 ms  provider p50/p99 ms  p50 ratio  baseline/s  provider/s  throughput ratio',
    ...overhead.map((o) =>
      [
        String(o.concurrency).padEnd(11),
        `${o.baseline.p50} / ${o.baseline.p99}`.padEnd(19),
        `${o.provider.p50} / ${o.provider.p99}`.padEnd(19),
        o.p50Ratio.toFixed(2).padEnd(9),
        String(o.baseline.perSecond).padEnd(10),
        String(o.provider.perSecond).padEnd(10),
        o.throughputRatio.toFixed(2),
      ].join('  '),
    ),
  ];
}

function formatFootprint(f: Awaited<ReturnType<typeof measureFootprint>>): string[] {
  return [
    `footprint by store kind (${f.nodeFlags}; a file store plus one store of the kind; RSS MiB, added over file stores only):`,
    'kind                  idle    added  after one Mount  added  start to ready',
    ...f.rows.map((r) => `${r.kind.padEnd(20)}  ${String(r.idleMiB).padEnd(6)}  ${String(r.addedIdleMiB).padEnd(5)}  ${String(r.afterMountMiB).padEnd(15)}  ${String(r.addedAfterMountMiB).padEnd(5)}  ${r.startupMs} ms`),
    `every kind configured: idle ${f.every.idleMiB} MiB, after one Mount per kind ${f.every.afterMountMiB} MiB, start to ready ${f.every.startupMs} ms`,
  ];
}

await main();
