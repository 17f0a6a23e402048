import { ProviderError } from '../errors.js';
import type { ProviderConfig } from '../config/load.js';
import type { ProviderState } from '../stores/stores.js';
import type { Metrics } from '../observability/metrics.js';
import type { MountInput } from './input.js';
import { parseObjects, type MountObject } from './objects.js';
import { parseTemplates, type MountTemplate } from './templates.js';

/** Parameters a class may set; anything else is a typo we report rather than ignore. */
const knownParameters = new Set(['objects', 'role', 'templates']);

export interface ClassContent {
  readonly objects: MountObject[];
  readonly templates: MountTemplate[];
}

type ParsedClass = ReturnType<typeof parseClass>;

const maxParsedClasses = 1024;

/**
 * Parses a class once per config: rotation Mounts repeat the same parameters every poll, so they
 * reuse the parsed objects and compiled templates instead of parsing again. Keyed by the exact
 * parameters; a MountInput that is itself reused (server/request-cache.ts) finds its class at once.
 */
export function createClassParser(metrics: Metrics): (input: MountInput, state: ProviderState) => ClassContent {
  const byState = new WeakMap<ProviderState, Map<string, ParsedClass>>();
  const byInput = new WeakMap<MountInput, { readonly state: ProviderState; readonly parsed: ParsedClass }>();
  const lookUp = (parameters: ReadonlyMap<string, string>, state: ProviderState): ParsedClass => {
    let parsedClasses = byState.get(state);
    if (!parsedClasses) byState.set(state, (parsedClasses = new Map()));
    const key = parametersKey(parameters);
    let parsed = parsedClasses.get(key);
    if (parsed) {
      metrics.classParses.inc({ outcome: 'reused' });
      return parsed;
    }
    parsed = parseClass(parameters, state.config);
    metrics.classParses.inc({ outcome: 'parsed' });
    if (parsedClasses.size >= maxParsedClasses) parsedClasses.delete(parsedClasses.keys().next().value!);
    parsedClasses.set(key, parsed);
    return parsed;
  };
  return (input, state) => {
    const known = byInput.get(input);
    let parsed: ParsedClass;
    if (known?.state === state) {
      parsed = known.parsed;
      metrics.classParses.inc({ outcome: 'reused' });
    } else {
      parsed = lookUp(input.parameters, state);
      byInput.set(input, { state, parsed });
    }
    if (!parsed.ok) throw new ProviderError('InvalidArgument', parsed.problems.join('; '));
    return parsed;
  };
}

/**
 * The parameters as one exact string, each name and value prefixed by its length, so no two
 * different sets share a key. In the driver's order: it sends one volume's attributes the same way
 * every time, and a class's problems are listed in that order. A string key instead of a SHA-256
 * digest of the sorted parameters: no hashing, no sorting, and equal keys mean equal parameters.
 */
function parametersKey(parameters: ReadonlyMap<string, string>): string {
  let key = '';
  for (const [name, value] of parameters) key += `${name.length}:${name}${value.length}:${value}`;
  return key;
}

/** Checks a class's parameters, objects and templates against the stores, listing every problem. */
export function parseClass(
  parameters: ReadonlyMap<string, string>,
  config: ProviderConfig,
): ({ ok: true } & ClassContent) | { ok: false; problems: string[] } {
  const unknown = [...parameters.keys()].filter((k) => !knownParameters.has(k));
  const problems = unknown.map(
    (k) => `parameters.${k.slice(0, 100)}: unknown parameter (known: ${[...knownParameters].join(', ')})`,
  );
  const stores = new Map(config.stores.map((store) => [store.name, store]));
  const parsed = parseObjects(parameters.get('objects'), {
    stores,
    defaultStore: config.defaultStore,
    maxObjects: config.limits.maxObjects,
  });
  if (!parsed.ok) problems.push(...parsed.problems);
  const templates = parseTemplates(parameters.get('templates'), parsed.ok ? parsed.objects : undefined);
  if (!templates.ok) problems.push(...templates.problems);
  return problems.length > 0 || !parsed.ok || !templates.ok
    ? { ok: false, problems }
    : { ok: true, objects: parsed.objects, templates: templates.templates };
}
