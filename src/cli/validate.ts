import { loadProviderConfig } from '../config/load.js';
import { parseClass } from '../mount/class.js';
import { findDenied } from '../mount/policy.js';
import { readClassFile } from './class-file.js';
import { parseFlags, requireFlag, type Io } from './flags.js';

export const validateUsage = `usage: usp validate --config CONFIG.yaml [--class SPC.yaml] [--namespace NS --service-account SA]
                    [--provider-name NAME]
Checks the provider config and a SecretProviderClass offline and lists every problem.
`;

/** `usp validate`: every problem of the config and the class, from the backends' static definitions: no store is created or called. */
export async function runValidate(args: string[], io: Io): Promise<number> {
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
    if (spc.provider !== flags['provider-name']) {
      problems.push(`class: spec.provider is "${spc.provider}", but this provider is "${flags['provider-name']}"`);
    }
    const parsed = parseClass(new Map(Object.entries(spc.parameters)), loaded.config);
    if (!parsed.ok) problems.push(...parsed.problems.map((p) => `class: ${p}`));
    if (parsed.ok && typeof flags.namespace === 'string') {
      const identity = {
        namespace: flags.namespace,
        serviceAccount: requireFlag(flags['service-account'], 'service-account'),
        podName: '',
        podUid: '',
      };
      problems.push(...findDenied(parsed.objects, identity, loaded.config).map((p) => `access: ${p}`));
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
