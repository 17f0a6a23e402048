import { createRequire } from 'node:module';
import type { JSONValue } from '@jmespath-community/jmespath';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { firstLine } from '../util.js';
import { describeIssues, parseWith } from '../schema.js';
import { checkDriverPath } from './paths.js';
import { checkFind, findFields, type FindSelection } from './find-spec.js';

export type Decoding = 'base64' | 'hex';

/** One parsed entry of the class's `objects`. */
export interface MountObject {
  readonly index: number;
  /** File path in the mount (a directory when expanded). */
  readonly name: string;
  readonly store: string;
  /** The ref; for a find object, its prefix. */
  readonly ref: string;
  /** Set on a find object: the secrets it selects; each found one becomes a file under `name`. */
  readonly find?: FindSelection;
  /** Set on the object of one secret a find object found: that find object. */
  readonly foundBy?: MountObject;
  readonly version?: string;
  readonly key?: string;
  readonly select?: { readonly expression: string; search(data: JSONValue): JSONValue };
  readonly decode?: Decoding;
  readonly mode?: number;
  readonly optional: boolean;
  readonly expand?: 'keys';
  readonly mount: boolean;
  /** Backend-specific fields, validated by the store's backend. */
  readonly spec: unknown;
}

/** What parsing an object needs of a store: its backend's object fields. No live store. */
export interface ObjectStore {
  readonly definition: { readonly objectFields: z.ZodType };
}

export interface ObjectsContext {
  readonly stores: ReadonlyMap<string, ObjectStore>;
  readonly defaultStore?: string;
  readonly maxObjects: number;
}

export type ObjectsResult = { ok: true; objects: MountObject[] } | { ok: false; problems: string[] };

const maxObjectsBytes = 256 * 1024;

/** Object fields every backend shares; the rest of an entry belongs to the store's backend. */
export const commonFields = z.object({
  name: z
    .string()
    .min(1)
    .max(4096)
    .describe(
      'File path in the volume (`a/b.txt`), also the objectName for secretObjects sync. Must pass the driver\'s path rules: relative, no `..`, `.` or empty elements, no first element starting with `..`, at most 255 bytes per element.',
    ),
  store: z.string().min(1).optional().describe('Name of the store to read from; default: the config\'s defaultStore.'),
  ref: z
    .string()
    .min(1)
    .max(2048)
    .optional()
    .describe('The locator in the store; its form is the backend\'s (see `ref` under each backend in docs/reference.md). Required unless find is set.'),
  find: findFields.optional(),
  version: z
    .union([z.string().min(1), z.number().int().nonnegative()])
    .transform(String)
    .optional()
    .describe('Pin a version where the store has versions (KV v2 version, AWS VersionId, parameter version or label).'),
  key: z
    .string()
    .min(1)
    .optional()
    .describe('Pick one top-level field of a structured secret (a JSON field, a Kubernetes Secret key, a Vault field).'),
  select: z
    .string()
    .min(1)
    .max(1024)
    .optional()
    .describe('JMESPath expression over the secret\'s JSON; strings are written as they are, anything else as JSON. Not with key.'),
  decode: z.enum(['base64', 'hex']).optional().describe('Decode the extracted value before writing it.'),
  mode: z
    .union([z.string(), z.number()])
    .optional()
    .describe('Octal file mode, quoted or not (`0400`, `"0440"`); default: the driver\'s permission (0644).'),
  optional: z.boolean().default(false).describe('A missing object (NotFound) is skipped and logged instead of failing the Mount.'),
  expand: z.literal('keys').optional().describe('`keys`: one file per top-level field of the secret, `<name>/<field>`.'),
  mount: z
    .boolean()
    .default(true)
    .describe('`false`: fetch and check the object but write no file; templates can still read it.'),
});
const commonKeys = Object.keys(commonFields.shape);

/** Human label of an object for messages: `objects[2] "db/password"`. */
export function describeObject(o: { index: number; name?: string }): string {
  return o.name === undefined ? `objects[${o.index}]` : `objects[${o.index}] ${JSON.stringify(o.name)}`;
}

/** Parses the `objects` parameter, collecting every problem rather than stopping at the first. */
export function parseObjects(text: string | undefined, ctx: ObjectsContext): ObjectsResult {
  if (text === undefined || text.trim() === '') return { ok: false, problems: ['parameters.objects: required'] };
  const list = readYamlList(text, 'objects', { maxBytes: maxObjectsBytes, maxItems: ctx.maxObjects });
  if (!list.ok) return list;
  const problems: string[] = [];
  const objects = list.items.flatMap((entry, index) => {
    const parsed = parseObject(entry, index, ctx, problems);
    return parsed ? [parsed] : [];
  });
  checkNames(objects, problems);
  return problems.length > 0 ? { ok: false, problems } : { ok: true, objects };
}

/** A class parameter holding a YAML list (`objects`, `templates`), bounded in size and length. */
export function readYamlList(
  text: string,
  parameter: string,
  limits: { maxBytes: number; maxItems: number },
): { ok: true; items: unknown[] } | { ok: false; problems: string[] } {
  const at = `parameters.${parameter}`;
  if (text.length > limits.maxBytes) return { ok: false, problems: [`${at}: larger than ${limits.maxBytes} bytes`] };
  let raw: unknown;
  try {
    // logLevel error: YAML warnings would otherwise go to stderr through process.emitWarning with a
    // code frame of the class text (request attributes are never logged). Found by fuzzing.
    raw = parseYaml(text, { maxAliasCount: 0, uniqueKeys: true, schema: 'core', logLevel: 'error' });
  } catch (err) {
    return { ok: false, problems: [`${at}: not valid YAML: ${firstLine(err)}`] };
  }
  if (!Array.isArray(raw)) return { ok: false, problems: [`${at}: must be a YAML list of ${parameter}`] };
  if (raw.length === 0) return { ok: false, problems: [`${at}: the list is empty`] };
  if (raw.length > limits.maxItems) {
    return { ok: false, problems: [`${at}: ${raw.length} ${parameter}, more than the limit of ${limits.maxItems}`] };
  }
  return { ok: true, items: raw };
}

function parseObject(entry: unknown, index: number, ctx: ObjectsContext, problems: string[]): MountObject | undefined {
  const at = `objects[${index}]`;
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
    problems.push(`${at}: must be a mapping with name, store and ref`);
    return undefined;
  }
  const fields = entry as Record<string, unknown>;
  const common = commonFields.safeParse(fields);
  if (!common.success) {
    problems.push(...describeIssues(common.error, at));
    return undefined;
  }
  const o = common.data;
  const before = problems.length;
  const pathProblem = checkDriverPath(o.name);
  if (pathProblem) problems.push(`${at}.name: ${pathProblem}`);
  if (o.key !== undefined && o.select !== undefined) problems.push(`${at}.select: use key or select, not both`);
  if (o.find !== undefined && o.ref !== undefined) problems.push(`${at}.find: use ref or find, not both`);
  const find = checkFind(o, at, ctx.maxObjects, problems);
  const mode = o.mode === undefined ? undefined : parseMode(o.mode, `${at}.mode`, problems);
  const select = o.select === undefined ? undefined : compileSelect(o.select, `${at}.select`, problems);
  const storeName = o.store ?? ctx.defaultStore;
  const store = storeName === undefined ? undefined : ctx.stores.get(storeName);
  if (storeName === undefined) {
    problems.push(`${at}.store: required (the provider config sets no defaultStore)`);
  } else if (!store) {
    problems.push(`${at}.store: no store named "${storeName}" (stores: ${[...ctx.stores.keys()].join(', ')})`);
  }
  const spec = store ? parseSpec(store, fields, at, problems) : undefined;
  if (problems.length > before || storeName === undefined) return undefined;
  return {
    index,
    name: o.name,
    store: storeName,
    ref: find ? find.prefix : o.ref!,
    ...(find && { find }),
    version: o.version,
    key: o.key,
    select,
    decode: o.decode,
    mode,
    optional: o.optional,
    expand: o.expand,
    mount: o.mount,
    spec,
  };
}

function parseSpec(store: ObjectStore, fields: Record<string, unknown>, at: string, problems: string[]): unknown {
  const rest = Object.fromEntries(Object.entries(fields).filter(([k]) => !commonKeys.includes(k)));
  const parsed = parseWith(store.definition.objectFields, rest, at);
  if (!parsed.ok) problems.push(...parsed.problems);
  return parsed.ok ? parsed.value : undefined;
}

/** Modes are octal whether quoted or not: 0400, "0400", 400 and "0o400" all mean r--------. */
export function parseMode(value: string | number, at: string, problems: string[]): number | undefined {
  const text = String(value).trim().replace(/^0o/i, '');
  if (!/^[0-7]{1,4}$/.test(text) || Number.parseInt(text, 8) > 0o777) {
    problems.push(`${at}: ${JSON.stringify(String(value))} is not an octal file mode between 0000 and 0777`);
    return undefined;
  }
  return Number.parseInt(text, 8);
}

/**
 * Loads a package on its first use rather than at start: most classes use neither `select` nor
 * templates. Class parsing is synchronous (a parsed class is reused without awaiting), so the
 * package comes through `require`, which Node serves synchronously, as its CommonJS build.
 */
export function requireOnFirstUse<T>(name: string): () => T {
  let loaded: T | undefined;
  return () => (loaded ??= createRequire(import.meta.url)(name) as T);
}

const jmespath = requireOnFirstUse<typeof import('@jmespath-community/jmespath')>('@jmespath-community/jmespath');

function compileSelect(expression: string, at: string, problems: string[]): MountObject['select'] {
  try {
    const { compile, TreeInterpreter } = jmespath();
    const ast = compile(expression);
    return { expression, search: (data) => TreeInterpreter.search(ast, data) };
  } catch (err) {
    problems.push(`${at}: not a valid JMESPath expression: ${firstLine(err)}`);
    return undefined;
  }
}

function checkNames(objects: readonly MountObject[], problems: string[]): void {
  const seen = new Map<string, MountObject>();
  for (const o of objects) {
    const earlier = seen.get(o.name);
    if (earlier) problems.push(`objects[${o.index}].name: "${o.name}" is also the name of objects[${earlier.index}]`);
    else seen.set(o.name, o);
  }
}
