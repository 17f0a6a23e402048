import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { loadProviderConfig } from '../config/load.js';
import { closeStores, createStores } from '../stores/stores.js';
import { toProviderError } from '../errors.js';
import { createMountHandler } from '../mount/handler.js';
import { createMetrics } from '../observability/metrics.js';
import { readClassFile } from './class-file.js';
import { buildDriverRequest, podFlags, readPodFlags } from './driver-request.js';
import { parseFlags, requireFlag, type Io } from './flags.js';
import { showFiles } from './output.js';

export const renderUsage = `usage: usp render --class SPC.yaml --config CONFIG.yaml --namespace NS --service-account SA
                  [--token AUDIENCE=FILE]... [--out DIR] [--show-values]
Runs the Mount pipeline locally and prints the files a pod would get (values only with --show-values).
`;

/** `usp render`: the real pipeline, in process, against the real stores. */
export async function runRender(args: string[], io: Io, logger: Logger): Promise<number> {
  const flags = parseFlags(args, { ...podFlags, config: { type: 'string' } });
  const spc = await readClassFile(requireFlag(flags.class, 'class'));
  const configPath = requireFlag(flags.config, 'config');
  const pod = await readPodFlags(flags);
  const loaded = await loadProviderConfig(configPath);
  if (!loaded.ok) {
    io.stderr(`config ${configPath} has problems:\n${loaded.problems.map((p) => `  ${p}\n`).join('')}`);
    return 1;
  }
  const metrics = createMetrics({ defaultMetrics: false });
  const state = await createStores(loaded.config, { logger, metrics, now: Date.now });
  try {
    const mount = createMountHandler({
      state: () => state,
      logger,
      metrics,
      now: Date.now,
      fallbackVersionKey: loaded.config.versionKey ?? randomBytes(32),
    });
    const result = await mount(buildDriverRequest(spc, pod), AbortSignal.timeout(loaded.config.limits.mountTimeout));
    await showFiles(io, result.files.map((f) => ({ ...f, ...result.sources.get(f.path) })), flags);
    return 0;
  } catch (err) {
    const error = toProviderError(err);
    io.stderr(`mount failed: ${error.code}: ${error.message}\n`);
    return 1;
  } finally {
    await closeStores(state.stores.values());
  }
}
