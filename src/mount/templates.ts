import type { Liquid, Template } from 'liquidjs';
import { z } from 'zod';
import { firstLine, isPlainObject, isWellFormed } from '../util.js';
import { describeIssues } from '../schema.js';
import { describeObject, parseMode, readYamlList, type MountObject } from './objects.js';
import { checkDriverPath } from './paths.js';
import { createEngine, templateLimits } from './template-sandbox.js';

/** One parsed entry of the class's `templates`: a file rendered from the class's objects. */
export interface MountTemplate {
  readonly index: number;
  /** File path in the mount. */
  readonly name: string;
  readonly mode?: number;
  readonly engine: Liquid;
  readonly parsed: Template[];
  /** The template's own variable paths as Liquid joins them in errors, to quote only template text. */
  readonly paths: ReadonlyMap<string, readonly PathSegment[]>;
}

export type PathSegment = string | number;

export type TemplatesResult = { ok: true; templates: MountTemplate[] } | { ok: false; problems: string[] };

export const templateFields = z.strictObject({
  name: z
    .string()
    .min(1)
    .max(4096)
    .describe(
      'File path of the rendered text in the volume, also the objectName for secretObjects sync. Same path rules as an object name; must not be the name of an object or of another template.',
    ),
  template: z
    .string()
    .min(1)
    .describe(
      'Liquid text (at most 64 KiB). `{{ objects["NAME"] }}` is the content of the object NAME of this class as UTF-8 text; `objects["NAME/KEY"]` a key of an `expand: keys` object; `objects["NAME"]` of a find object iterates over the files it found (`{% for f in objects["NAME"] %}{{ f[0] }}={{ f[1] }}{% endfor %}`). No file access; bounded time, memory and output (1 MiB).',
    ),
  mode: z
    .union([z.string(), z.number()])
    .optional()
    .describe('Octal file mode, quoted or not (`0400`, `"0440"`); default: the driver\'s permission (0644).'),
});

/** Human label of a template for messages: `templates[0] "app.env"`. */
export function describeTemplate(t: { index: number; name?: string }): string {
  return t.name === undefined ? `templates[${t.index}]` : `templates[${t.index}] ${JSON.stringify(t.name)}`;
}

/**
 * Parses and compiles the `templates` parameter, collecting every problem. `objects` are the
 * class's parsed objects (undefined when they had problems: references are then not checked).
 */
export function parseTemplates(text: string | undefined, objects: readonly MountObject[] | undefined): TemplatesResult {
  if (text === undefined || text.trim() === '') return { ok: true, templates: [] };
  const list = readYamlList(text, 'templates', { maxBytes: templateLimits.parameterBytes, maxItems: templateLimits.templates });
  if (!list.ok) return list;
  const engine = createEngine();
  const problems: string[] = [];
  // Names are checked against each other even when a template has other problems.
  const named: TemplateName[] = [];
  const templates = list.items.flatMap((entry, index) => {
    const parsed = parseTemplate(entry, index, { engine, objects, named, problems });
    return parsed ? [parsed] : [];
  });
  if (objects) checkNames(named, objects, problems);
  return problems.length > 0 ? { ok: false, problems } : { ok: true, templates };
}

interface TemplateName {
  readonly index: number;
  readonly name: string;
}

function parseTemplate(
  entry: unknown,
  index: number,
  { engine, objects, named, problems }: { engine: Liquid; objects?: readonly MountObject[]; named: TemplateName[]; problems: string[] },
): MountTemplate | undefined {
  if (!isPlainObject(entry)) {
    problems.push(`templates[${index}]: must be a mapping with name and template`);
    return undefined;
  }
  const label = describeTemplate({ index, name: typeof entry.name === 'string' ? entry.name : undefined });
  const fields = templateFields.safeParse(entry);
  if (!fields.success) {
    problems.push(...describeIssues(fields.error, '').map((line) => `${label}: ${line}`));
    return undefined;
  }
  const t = fields.data;
  const before = problems.length;
  const pathProblem = checkDriverPath(t.name);
  if (pathProblem) problems.push(`${label}: name: ${pathProblem}`);
  else named.push({ index, name: t.name });
  const mode = t.mode === undefined ? undefined : parseMode(t.mode, `${label}: mode`, problems);
  const parsed = compile(t.template, engine, `${label}: template`, problems);
  if (parsed && objects) checkReferences(engine, parsed, objects, `${label}: template`, problems);
  if (problems.length > before || !parsed) return undefined;
  return { index, name: t.name, mode, engine, parsed, paths: quotablePaths(engine, parsed) };
}

function compile(text: string, engine: Liquid, at: string, problems: string[]): Template[] | undefined {
  if (Buffer.byteLength(text, 'utf8') > templateLimits.templateBytes) {
    problems.push(`${at}: larger than ${templateLimits.templateBytes} bytes`);
    return undefined;
  }
  if (!isWellFormed(text)) {
    problems.push(`${at}: must be valid Unicode (it has an unpaired surrogate)`);
    return undefined;
  }
  try {
    return engine.parse(text);
  } catch (err) {
    // Liquid quotes the template (class text, not a secret); keep it short.
    problems.push(`${at}: ${clip(firstLine(err))}`);
    return undefined;
  }
}

/** Every literal `objects["NAME"]` must name an object of the class; `objects` is the only variable. */
function checkReferences(engine: Liquid, parsed: Template[], objects: readonly MountObject[], at: string, problems: string[]): void {
  const found = new Set<string>();
  for (const segments of engine.globalVariableSegmentsSync(parsed)) {
    const [root, key] = segments;
    if (root !== 'objects') {
      found.add(`${at}: ${display(segments.slice(0, 1))} is not defined; the only variable is objects (objects["NAME"])`);
    } else if (isLiteral(key) && !findObject(String(key), objects)) {
      const names = objects.slice(0, 20).map((o) => JSON.stringify(o.name)).join(', ');
      found.add(`${at}: objects[${JSON.stringify(String(key))}] is not an object of this class (objects: ${names}${objects.length > 20 ? ', ...' : ''})`);
    }
  }
  problems.push(...found);
}

/** The object a key of `objects` belongs to: its name, or a key of an expanded or find object under it. */
export function findObject(key: string, objects: readonly MountObject[]): MountObject | undefined {
  return (
    objects.find((o) => o.name === key) ??
    objects.find((o) => (o.expand === 'keys' || o.find) && key.length > o.name.length + 1 && key.startsWith(`${o.name}/`))
  );
}

/** Template names are files beside the objects' files: no name twice, no file that is also a directory. */
function checkNames(templates: readonly TemplateName[], objects: readonly MountObject[], problems: string[]): void {
  const owners = new Map<string, string>(objects.map((o) => [o.name, describeObject(o)]));
  const files = [
    ...objects.filter((o) => o.mount).map((o) => ({ name: o.name, label: describeObject(o), directory: o.expand === 'keys' || o.find !== undefined })),
    ...templates.map((t) => ({ name: t.name, label: describeTemplate(t), directory: false })),
  ];
  for (const t of templates) {
    const label = describeTemplate(t);
    const earlier = owners.get(t.name);
    if (earlier) {
      problems.push(`${label}: name: is also the name of ${earlier}`);
      continue;
    }
    owners.set(t.name, label);
    for (const other of files) {
      if (other.name.startsWith(`${t.name}/`)) problems.push(`${label}: name: is also a directory of ${other.label}`);
      else if (t.name.startsWith(`${other.name}/`) && !other.directory) problems.push(`${label}: name: is inside ${other.label}, which is a file`);
    }
  }
}

/** Each variable path of the template, keyed as Liquid names an undefined one (`objects.db/user`). */
function quotablePaths(engine: Liquid, parsed: Template[]): Map<string, PathSegment[]> {
  const paths = new Map<string, PathSegment[]>();
  for (const segments of engine.variableSegmentsSync(parsed)) {
    const literal: PathSegment[] = [];
    for (const segment of segments) {
      if (!isLiteral(segment)) break;
      literal.push(segment);
      paths.set(literal.join('.'), [...literal]);
    }
  }
  return paths;
}

export function isLiteral(segment: unknown): segment is PathSegment {
  return typeof segment === 'string' || typeof segment === 'number';
}

/** A variable path as a template writes it: `objects["db/user"].size`. */
export function display(path: readonly unknown[]): string {
  return path
    .map((segment, i) => {
      if (typeof segment === 'number') return `[${segment}]`;
      if (typeof segment !== 'string') return '[...]';
      return i === 0 ? segment : `[${JSON.stringify(segment)}]`;
    })
    .join('');
}

function clip(text: string): string {
  return text.length > 300 ? `${text.slice(0, 300)}...` : text;
}
