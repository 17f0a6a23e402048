import { mkdtemp, mkdir, rm, writeFile, chmod, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { createLogger } from '../../src/observability/log.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { startProvider, type RunningProvider } from '../../src/server/provider.js';
import { recordText } from './capture.js';
import { createDriverClient, type DriverClient } from './driver-client.js';

/** Log lines written by the provider under test, for assertions and the canary check. */
export function createLogCapture() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  return { lines, logger: createLogger({ level: 'debug', destination: stream }) };
}

export interface TestProvider {
  readonly dir: string;
  readonly configPath: string;
  readonly socketPath: string;
  readonly httpAddress: string;
  readonly client: DriverClient;
  readonly logs: string[];
  readonly metrics: ReturnType<typeof createMetrics>;
  readonly provider: RunningProvider;
  /** Writes a file under the test directory (for file stores). */
  write(path: string, contents: string | Buffer, mode?: number): Promise<string>;
  stop(): Promise<void>;
}

/** Starts the real provider in this process on a real Unix socket in a fresh directory. */
export async function startTestProvider(options: {
  config: string;
  files?: Record<string, string | Buffer>;
  graceMs?: number;
  now?: () => number;
  /** Lay the config out as kubelet mounts a ConfigMap: config.yaml -> ..data/config.yaml, ..data -> ..<timestamp>. */
  configMap?: boolean;
}): Promise<TestProvider> {
  const dir = await mkdtemp(join(tmpdir(), 'usp-test-'));
  const write = async (path: string, contents: string | Buffer, mode = 0o600) => {
    const target = join(dir, path);
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, contents);
    await chmod(target, mode);
    return target;
  };
  for (const [path, contents] of Object.entries(options.files ?? {})) await write(path, contents);
  let configPath: string;
  if (options.configMap) {
    await write('config/..2026_01_01/config.yaml', options.config);
    await symlink('..2026_01_01', join(dir, 'config/..data'));
    configPath = join(dir, 'config/config.yaml');
    await symlink('..data/config.yaml', configPath);
  } else {
    configPath = await write('config/config.yaml', options.config);
  }
  const socketDir = join(dir, 'sockets');
  await mkdir(socketDir, { mode: 0o700 });
  const { lines, logger } = createLogCapture();
  const metrics = createMetrics({ defaultMetrics: false });
  const provider = await startProvider({
    configPath,
    socketDir,
    providerName: 'universal',
    httpAddr: '127.0.0.1:0',
    graceMs: options.graceMs ?? 5_000,
    logger,
    metrics,
    now: options.now,
  });
  const client = createDriverClient(provider.socketPath);
  return {
    dir,
    configPath,
    socketPath: provider.socketPath,
    httpAddress: provider.httpAddress,
    client,
    logs: lines,
    metrics,
    provider,
    write,
    async stop() {
      client.close();
      recordText('metrics', await metrics.registry.metrics());
      await provider.stop();
      recordText('provider logs', lines.join('\n'));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
