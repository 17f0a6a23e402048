import { readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { createCanaries } from '../helpers/canary.js';
import { driverRequest, type PodOptions } from '../helpers/driver-client.js';
import { startTestProvider, type TestProvider } from '../helpers/provider.js';
import { createMetrics } from '../../src/observability/metrics.js';

/** Accepts connections and never answers: a store that hangs until the store's timeout. */
async function startSilentServer(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    port,
    close: () => {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function config(silentPort: number): string {
  return `versionKey: monitoring-version-key-0123456789
defaultStore: files
stores:
  - name: files
    backend: file
    root: ../secrets
    access:
      - allow: {namespaces: [shop], refs: ["shop/**"]}
  # Nothing listens on port 9: every call fails with Unavailable, and the breaker opens after two.
  - name: down
    backend: vault
    address: http://127.0.0.1:9
    auth: {method: kubernetes, role: app}
    cache: {ttl: 0}
    retry: {attempts: 1}
    breaker: {failures: 2, openFor: 10m}
  - name: hanging
    backend: vault
    address: http://127.0.0.1:${silentPort}
    timeout: 200ms
    auth: {method: kubernetes, role: app}
    retry: {attempts: 1}
`;
}

export type MonitoredProvider = TestProvider & {
  /** A pod of namespace shop with a token for the vault stores. */
  readonly pod: PodOptions;
  /** Stops the provider and the hanging store. */
  stopAll(): Promise<void>;
};

/**
 * The real provider with the production metric set: the test helper's registry, plus the default
 * process and Node.js metrics exactly as `createMetrics()` registers them for `usp serve`.
 */
export async function startMonitoredProvider(): Promise<MonitoredProvider> {
  const silent = await startSilentServer();
  // The secret and the pod token are markers: the suite's hygiene scan fails if either reaches a log, an error or a metric.
  const canaries = createCanaries();
  const token = canaries.next('monitoring-token');
  const p = await startTestProvider({ config: config(silent.port), files: { 'secrets/shop/db': canaries.next('monitoring') } });
  const served = p.metrics.registry;
  const production = createMetrics().registry;
  for (const { name } of production.getMetricsAsArray()) {
    const metric = production.getSingleMetric(name);
    if (metric && !served.getSingleMetric(name)) served.registerMetric(metric);
  }
  return {
    ...p,
    pod: { namespace: 'shop', serviceAccount: 'app', tokens: { vault: { token } } },
    async stopAll() {
      await p.stop();
      await silent.close();
    },
  };
}

/** Mounts of every outcome (ok and each error code a Mount can get without a bug), and config reloads of each outcome. */
export async function mountEveryOutcome(p: MonitoredProvider): Promise<Set<string>> {
  const { pod } = p;
  const codes = new Set<string>();
  const mount = async (objects: string, options = pod) => {
    try {
      await p.client.mount(driverRequest(objects, options), 10_000);
      codes.add('OK');
    } catch (err) {
      codes.add(String((err as { code: number }).code));
    }
  };
  await mount('- {name: db, ref: shop/db}');
  await mount('- {name: db, ref: shop/missing}');
  await mount('- {name: db, ref: shop/db, mode: "0999"}');
  await mount('- {name: db, ref: shop/db}', { ...pod, namespace: 'web' });
  for (let i = 0; i < 3; i++) await mount('- {name: db, ref: secret/data/shop/db, store: down}');
  await mount('- {name: db, ref: secret/data/shop/db, store: hanging}');
  const good = await readFile(p.configPath, 'utf8');
  await writeFile(p.configPath, 'stores: [');
  await p.provider.reload();
  await writeFile(p.configPath, `${good}# changed\n`);
  await p.provider.reload();
  return codes;
}

/** GET /metrics of the provider, as Prometheus scrapes it. */
export async function scrape(p: TestProvider): Promise<string> {
  const response = await fetch(`http://${p.httpAddress}/metrics`);
  if (response.status !== 200) throw new Error(`GET /metrics answered ${response.status}`);
  return response.text();
}

const sampleSuffixes: Record<string, string[]> = { histogram: ['_bucket', '_sum', '_count'], summary: ['', '_sum', '_count'] };

/** The sample names an exposition declares (`# TYPE` lines), histograms and summaries expanded. */
export function exportedNames(exposition: string): Set<string> {
  const names = new Set<string>();
  for (const [, name, type] of exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    for (const suffix of sampleSuffixes[type!] ?? ['']) names.add(`${name}${suffix}`);
  }
  return names;
}

/** The metric names a provider exports once every Mount outcome has happened, read from a real scrape. */
export async function scrapeEveryOutcome(): Promise<Set<string>> {
  const p = await startMonitoredProvider();
  try {
    await mountEveryOutcome(p);
    return exportedNames(await scrape(p));
  } finally {
    await p.stopAll();
  }
}
