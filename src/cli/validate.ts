import type { Logger } from 'pino';
import { loadProviderConfig } from '../config/load.js';
import { closeStores, createStores, type ProviderState, type Store } from '../config/stores.js';
import { findDenied, parseClass } from '../mount/handler.js';
import { createMetrics } from '../observability/metrics.js';
import { readClassFile } from './class-file.js';
import { parseFlags, requireFlag, type Io } from './flags.js';

export const validateUsage = `usage: usp validate --config CONFIG.yaml [--class SPC.yaml] [--namespace NS --service-account SA]
                    [--provider-name NAME]
Checks the provider config and a SecretProviderClass offline and lists every problem.
`;

/** `usp validate`: every problem of the config and the class, without contacting any store. */
export async function runValidate(args: string[], io: Io, logger: Logger): Promise<number> {
  const flags = parseFlags(args, {
    class: { type: 'string' },
    config: { type: 'string' },
    namespace: { type: 'string' },
    'service-account': { type: 'string' },
    'provider-name': { type: 'string', default: 'universal' },
  });
  const configPath = requireFlag(flags.config, 'config');
  const spc = typeof flags.class === 'string' ? await readClassFile(flags.class) : undefined;
  const problems: string[] = [];
  const loaded = await loadProviderConfig(configPath);
  if (!loaded.ok) {
    problems.push(...loaded.problems.map((p) => `config: ${p}`));
  } else if (spc) {
    const state = await createStoresLeniently(loaded.config, logger, problems);
    try {
      if (spc.provider !== flags['provider-name']) {
        problems.push(`class: spec.provider is "${spc.provider}", but this provider is "${flags['provider-name']}"`);
      }
      const parsed = parseClass(new Map(Object.entries(spc.parameters)), state);
      if (!parsed.ok) problems.push(...parsed.problems.map((p) => `class: ${p}`));
      if (parsed.ok && typeof flags.namespace === 'string') {
        const identity = {
          namespace: flags.namespace,
          serviceAccount: requireFlag(flags['service-account'], 'service-account'),
          podName: '',
          podUid: '',
        };
        problems.push(...findDenied(parsed.objects, identity, state).map((p) => `access: ${p}`));
      }
    } finally {
      await closeStores(state.stores.values());
    }
  }
  if (problems.length > 0) {
    io.stdout(problems.map((p) => `${p}\n`).join(''));
    io.stdout(`${problems.length} problem${problems.length === 1 ? '' : 's'} found\n`);
    return 1;
  }
  io.stdout(spc ? `ok: config and class ${spc.name} are valid\n` : 'ok: config is valid\n');
  return 0;
}

/** A store that cannot start (no cluster here) is one problem, not the end of the check. */
async function createStoresLeniently(
  config: Parameters<typeof createStores>[0],
  logger: Logger,
  problems: string[],
): Promise<ProviderState> {
  const stores = new Map<string, Store>();
  const metrics = createMetrics({ defaultMetrics: false });
  for (const store of config.stores) {
    try {
      const single = await createStores({ ...config, stores: [store] }, { logger, metrics, now: Date.now });
      for (const [name, s] of single.stores) stores.set(name, s);
    } catch (err) {
      problems.push(`config: store ${store.name}: cannot be created here (${(err as Error).message.split('\n', 1)[0]})`);
    }
  }
  return { config, stores };
}
