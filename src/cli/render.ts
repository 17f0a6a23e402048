import { randomBytes, randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { loadProviderConfig } from '../config/load.js';
import { createStores } from '../stores/stores.js';
import { holdStates } from '../stores/holder.js';
import { toProviderError } from '../errors.js';
import { createMountHandler } from '../mount/handler.js';
import { podNameRules, type MountInput } from '../mount/input.js';
import { createMetrics } from '../observability/metrics.js';
import { Secret } from '../secret.js';
import { readClassFile, UsageError, type ClassFile } from './class-file.js';
import { podFlags, readPodFlags, tokenExpiry, type PodDescription } from './driver-request.js';
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
  const input = toMountInput(spc, await readPodFlags(flags));
  const loaded = await loadProviderConfig(configPath);
  if (!loaded.ok) {
    io.stderr(`config ${configPath} has problems:\n${loaded.problems.map((p) => `  ${p}\n`).join('')}`);
    return 1;
  }
  const metrics = createMetrics({ defaultMetrics: false });
  const states = holdStates(await createStores(loaded.config, { logger, metrics, now: Date.now }));
  try {
    const handler = createMountHandler({
      states,
      logger,
      metrics,
      now: Date.now,
      fallbackVersionKey: loaded.config.versionKey ?? randomBytes(32),
    });
    const result = await handler.mount(input, AbortSignal.timeout(loaded.config.limits.mountTimeout));
    await showFiles(io, result.files.map((f) => ({ ...f, ...result.sources.get(f.path) })), flags);
    return 0;
  } catch (err) {
    const error = toProviderError(err);
    io.stderr(`mount failed: ${error.code}: ${error.message}\n`);
    return 1;
  } finally {
    await states.close();
  }
}

/** The Mount a pod described by the flags would make for this class, with the driver's default mode (0644). */
function toMountInput(spc: ClassFile, pod: PodDescription): MountInput {
  if (!podNameRules.namespace.test(pod.namespace)) throw new UsageError(`--namespace: "${pod.namespace}" is not a valid Kubernetes namespace name`);
  if (!podNameRules.serviceAccount.test(pod.serviceAccount)) {
    throw new UsageError(`--service-account: "${pod.serviceAccount}" is not a valid Kubernetes service account name`);
  }
  return {
    identity: { namespace: pod.namespace, serviceAccount: pod.serviceAccount, podName: pod.podName ?? 'usp-local', podUid: randomUUID() },
    className: spc.name,
    parameters: new Map(Object.entries(spc.parameters)),
    tokens: new Map([...pod.tokens].map(([audience, token]) => [audience, { token: new Secret(token), expiresAt: tokenExpiry(token) }])),
    secrets: new Map(),
    defaultMode: 0o644,
  };
}
