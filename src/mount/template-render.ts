import { ProviderError } from '../errors.js';
import { describeObject, type MountObject } from './objects.js';
import { checkFile, hmacVersion } from './output.js';
import { createScope, renderSandboxed, TemplateProblem, templateLimits, type Text } from './template-sandbox.js';
import { describeTemplate, display, findObject, isLiteral, type MountTemplate, type PathSegment } from './templates.js';
import type { ObjectFile } from './transform.js';

/** A resolved object as templates see it: its files after key/select/decode/expand, and its version. */
export interface TemplateInput {
  readonly object: MountObject;
  readonly files: readonly ObjectFile[];
  readonly version: string;
}

export interface RenderedTemplate {
  readonly template: MountTemplate;
  readonly file: ObjectFile;
  readonly version: string;
}

/**
 * Renders every template against the Mount's resolved objects, after them, so that the volume
 * checks see template files like any other. `skipped`: optional objects that were not found.
 */
export function renderTemplates(
  templates: readonly MountTemplate[],
  inputs: readonly TemplateInput[],
  skipped: readonly MountObject[],
  options: { readonly defaultMode: number; readonly versionKey: Buffer },
): RenderedTemplate[] {
  if (templates.length === 0) return [];
  const deadline = performance.now() + templateLimits.renderMs;
  const texts = new Map<ObjectFile, Text>();
  const resolved = inputs.map((i) => i.object);
  return templates.map((template) => {
    const { scope, read } = createScope(inputs, texts);
    let text: string;
    try {
      text = renderSandboxed(template.engine, template.parsed, scope, deadline);
    } catch (err) {
      throw explain(err, template, resolved, skipped).within(describeTemplate(template));
    }
    const file = { path: template.name, mode: template.mode ?? options.defaultMode, contents: Buffer.from(text, 'utf8') };
    if (file.contents.length > templateLimits.outputBytes) {
      throw invalid(`template: the output is larger than ${templateLimits.outputBytes} bytes`).within(describeTemplate(template));
    }
    checkFile(file);
    // The objects it read, in class order: a new version of any of them is a new version of the file.
    const versions = inputs.filter((i) => read.has(i.object)).map((i) => `${i.object.name}\0${i.version}`);
    return { template, file, version: hmacVersion(options.versionKey, [file], versions) };
  });
}

/**
 * Our own message for a render failure. Liquid's messages may hold values (an undefined
 * `objects[objects.a]` names the content of a), so only template text and our words get out.
 */
function explain(err: unknown, template: MountTemplate, resolved: readonly MountObject[], skipped: readonly MountObject[]): ProviderError {
  const cause = rootCause(err);
  const at = `template${where(err)}`;
  if (cause instanceof TemplateProblem) return new ProviderError(cause.code, `${at}: ${cause.message}`);
  if (cause.name === 'InternalUndefinedVariableError') {
    const path = template.paths.get(String((cause as { variableName?: unknown }).variableName));
    return explainUndefined(path, at, resolved, skipped);
  }
  switch (cause.message) {
    case 'template render limit exceeded':
      return invalid(`${at}: rendering took longer than ${templateLimits.renderMs} ms (the limit for all templates of a Mount)`);
    case 'memory alloc limit exceeded':
      return invalid(`${at}: rendering built more than ${templateLimits.memoryUnits} characters or list items (a loop or filter does too much)`);
  }
  if (cause instanceof RangeError) return invalid(`${at}: rendering built a value too large for memory`);
  return invalid(`${at}: rendering failed (${cause.name})`);
}

function explainUndefined(
  path: readonly PathSegment[] | undefined,
  at: string,
  resolved: readonly MountObject[],
  skipped: readonly MountObject[],
): ProviderError {
  // Not a path written in the template: computed from values, so it is not quoted.
  if (!path) return invalid(`${at}: a computed reference is not defined (not quoted: it may hold secret values)`);
  const [root, key] = path;
  if (root !== 'objects' || path.length !== 2 || !isLiteral(key)) return invalid(`${at}: ${display(path)} is not defined`);
  const name = String(key);
  const missing = findObject(name, skipped);
  if (missing) {
    return new ProviderError(
      'NotFound',
      `${at}: objects[${JSON.stringify(name)}]: the optional object ${JSON.stringify(missing.name)} was not found; ` +
        `write objects[${JSON.stringify(name)}] | default: "" or test it with {% if %}`,
    );
  }
  const expanded = findObject(name, resolved);
  if (expanded && expanded.name !== name) {
    const key = name.slice(expanded.name.length + 1);
    return new ProviderError('NotFound', `${at}: objects[${JSON.stringify(name)}]: key ${JSON.stringify(key)} is not in the secret of ${describeObject(expanded)}`);
  }
  return invalid(`${at}: objects[${JSON.stringify(name)}] is not an object of this class`);
}

function rootCause(err: unknown): Error {
  let cause: unknown = err;
  while (cause instanceof Error && 'originalError' in cause && cause.originalError instanceof Error) cause = cause.originalError;
  return cause instanceof Error ? cause : new Error(typeof cause);
}

/** ` (line 2, column 5)` from the Liquid token that failed: positions only, never text. */
function where(err: unknown): string {
  const token = (err as { token?: { getPosition?: () => number[] } } | undefined)?.token;
  const position = typeof token?.getPosition === 'function' ? token.getPosition() : undefined;
  return position ? ` (line ${position[0]}, column ${position[1]})` : '';
}

function invalid(message: string): ProviderError {
  return new ProviderError('InvalidArgument', message);
}
