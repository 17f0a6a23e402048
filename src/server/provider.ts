import { randomBytes } from 'node:crypto';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { parseProviderConfig } from '../config/load.js';
import { createStores, reportStoreClients } from '../stores/stores.js';
import { holdStates } from '../stores/holder.js';
import { watchConfigFile } from '../config/watch.js';
import { toProviderError } from '../errors.js';
import { createMountHandler } from '../mount/handler.js';
import type { Metrics } from '../observability/metrics.js';
import { runtimeName, runtimeVersion } from '../package-info.js';
import { createDriverMount } from './driver-mount.js';
import { createGrpcServer, loadProviderService } from './grpc.js';
import { createHttpServer } from './http.js';

export interface ProviderOptions {
  readonly configPath: string;
  readonly socketDir: string;
  readonly providerName: string;
  /** HOST:PORT for health and metrics; port 0 picks a free one. */
  readonly httpAddr: string;
  /** How long in-flight Mounts may run after SIGTERM. */
  readonly graceMs: number;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly now?: () => number;
}

export interface RunningProvider {
  readonly socketPath: string;
  readonly httpAddress: string;
  /** Applies the config file now (normally triggered by file changes). */
  reload(): Promise<void>;
  /** Flips readiness, drains, closes stores and removes the socket. */
  stop(): Promise<void>;
}

/** The driver's name rule for providers: it becomes the socket's file name. */
export const providerNamePattern = /^[a-zA-Z0-9_-]{1,30}$/;

export class StartupError extends Error {}

export async function startProvider(options: ProviderOptions): Promise<RunningProvider> {
  const { logger, metrics } = options;
  if (!providerNamePattern.test(options.providerName)) {
    throw new StartupError(`--provider-name: "${options.providerName}" must match ${providerNamePattern.source}`);
  }
  await checkSocketDir(options.socketDir);
  let configText = await readFile(options.configPath, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new StartupError(`--config: cannot read ${options.configPath} (${err.code ?? 'error'})`);
  });
  const loaded = await parseProviderConfig(configText, dirname(resolve(options.configPath)));
  if (!loaded.ok) throw new StartupError(`invalid config ${options.configPath}:\n  ${loaded.problems.join('\n  ')}`);
  if (!loaded.config.versionKey) {
    logger.warn('no versionKey in the config: object versions use a per-process key and change on restart');
  }
  const now = options.now ?? Date.now;
  const storeDeps = { logger, metrics, now };
  const initial = await createStores(loaded.config, storeDeps).catch((err: unknown) => {
    throw new StartupError(toProviderError(err).message);
  });
  const states = holdStates(initial, logger);
  const reportStores = () => reportStoreClients(states.current, now);
  metrics.watchStoreClients(reportStores);
  let ready = false;

  const handler = createMountHandler({ states, logger, metrics, now, fallbackVersionKey: randomBytes(32) });
  const grpcServer = createGrpcServer({ mount: createDriverMount(handler), logger, runtimeName, runtimeVersion });
  const socketPath = join(options.socketDir, `${options.providerName}.sock`);
  await grpcServer.listen(socketPath);

  const selfClient = createSelfClient(socketPath);
  const http = createHttpServer({ checkHealth: () => selfClient.ping(), isReady: () => ready, reportStores, registry: metrics.registry });
  const httpAddress = await http.listen(options.httpAddr);

  let reloading = Promise.resolve();
  const reload = () => {
    reloading = reloading.then(async () => {
      const text = await readFile(options.configPath, 'utf8').catch(() => undefined);
      if (text === undefined || text === configText) return;
      const parsed = await parseProviderConfig(text, loaded.config.baseDir);
      if (!parsed.ok) {
        metrics.configReloads.inc({ outcome: 'rejected' });
        logger.error({ problems: parsed.problems }, 'config change rejected; keeping the last good config');
        configText = text;
        return;
      }
      try {
        const next = await createStores(parsed.config, storeDeps, states.current);
        // Mounts in flight keep the stores they started with; those close as the last one ends.
        states.replace(next);
        configText = text;
        metrics.configReloads.inc({ outcome: 'applied' });
        logger.info({ stores: [...next.stores.keys()] }, 'config reloaded');
      } catch (err) {
        metrics.configReloads.inc({ outcome: 'rejected' });
        logger.error({ error: (err as Error).message }, 'config change could not be applied; keeping the last good config');
      }
    });
    return reloading;
  };
  const watcher = watchConfigFile(options.configPath, () => void reload());

  grpcServer.setServing(true);
  ready = true;
  logger.info({ socket: socketPath, http: httpAddress, version: runtimeVersion, stores: [...initial.stores.keys()] }, 'ready');
  // Scripts and people wait for this line: do not leave it in a batch of the log destination.
  logger.flush();

  let stopping: Promise<void> | undefined;
  return {
    socketPath,
    httpAddress,
    reload,
    stop() {
      stopping ??= (async () => {
        ready = false;
        grpcServer.setServing(false);
        watcher.close();
        logger.info({ inFlight: grpcServer.inFlight }, 'draining');
        await grpcServer.drain(options.graceMs);
        selfClient.close();
        await http.close();
        await states.close();
        logger.info('stopped');
      })();
      return stopping;
    },
  };
}

/** Anyone who can write the socket directory could swap our socket for theirs. */
async function checkSocketDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 }).catch(() => undefined);
  const info = await stat(dir).catch(() => undefined);
  if (!info?.isDirectory()) throw new StartupError(`--socket-dir: ${dir} is not a directory`);
  if ((info.mode & 0o002) !== 0) throw new StartupError(`--socket-dir: ${dir} is writable by every user; refusing to serve there`);
}

function createSelfClient(socketPath: string) {
  const Client = grpc.makeGenericClientConstructor(loadProviderService(), 'CSIDriverProvider');
  let client: grpc.Client | undefined;
  return {
    ping(): Promise<boolean> {
      client ??= new Client(`unix:${socketPath}`, grpc.credentials.createInsecure());
      const call = client as unknown as {
        Version(req: object, opts: grpc.CallOptions, cb: (err: unknown) => void): void;
      };
      return new Promise((resolve) =>
        call.Version({ version: 'v1alpha1' }, { deadline: Date.now() + 2_000 }, (err) => resolve(!err)),
      );
    },
    close() {
      client?.close();
    },
  };
}
