/**
 * The Liquid sandbox of templates: an engine without file access and with every limit set, and the
 * values templates see. Templates read own properties only, so values expose nothing but their data.
 */
import { isUtf8 } from 'node:buffer';
import type { Context, Emitter, Liquid, Template } from 'liquidjs';
import type { ErrorCode } from '../errors.js';
import { requireOnFirstUse, type MountObject } from './objects.js';
import type { ObjectFile } from './transform.js';

// liquidjs: a maintained, dependency-free Liquid engine: no code evaluation, own-property access only, built-in DoS limits.
// Loaded with the first class that has templates.
const liquidjs = requireOnFirstUse<typeof import('liquidjs')>('liquidjs');

export const templateLimits = {
  /** The `templates` parameter as a whole; also Liquid's parseLimit for one class. */
  parameterBytes: 256 * 1024,
  templates: 64,
  templateBytes: 64 * 1024,
  /** Rendered text of one template; the driver's 4 MiB budget for the whole volume applies too. */
  outputBytes: 1024 * 1024,
  /** Liquid's renderLimit, shared by all templates of one Mount: nothing legitimate comes close. */
  renderMs: 250,
  /** Liquid's memoryLimit per template: characters and list items that filters and ranges create. */
  memoryUnits: 8 * 1024 * 1024,
} as const;

interface ScopeInput {
  readonly object: MountObject;
  readonly files: readonly ObjectFile[];
}

/** Renders in Liquid's sync mode into a bounded output, within what is left of the Mount's time. */
export function renderSandboxed(engine: Liquid, parsed: Template[], scope: object, deadline: number): string {
  const emitter = new BoundedEmitter(templateLimits.outputBytes);
  const renderLimit = Math.max(0, deadline - performance.now());
  const { Context: LiquidContext, toValueSync } = liquidjs();
  const ctx = new LiquidContext(scope, engine.options, { sync: true, renderLimit, memoryLimit: templateLimits.memoryUnits }, { liquid: engine });
  toValueSync(engine.renderer.renderTemplates(parsed, ctx, emitter));
  return emitter.buffer;
}

/** What a template may read: `objects`, whose entries mark their object as read. */
export function createScope(inputs: readonly ScopeInput[], texts: Map<ObjectFile, Text>) {
  const read = new Set<MountObject>();
  const objects = Object.create(null) as Record<string, unknown>;
  const define = (target: object, key: string, object: MountObject, value: () => unknown) => {
    if (Object.prototype.hasOwnProperty.call(target, key)) return;
    Object.defineProperty(target, key, {
      enumerable: true,
      get: () => {
        read.add(object);
        return value();
      },
    });
  };
  for (const { object, files } of inputs) {
    if (object.expand !== 'keys') {
      define(objects, object.name, object, () => toText(files[0]!, texts));
      continue;
    }
    const fields = new ExpandedObject(object.name);
    for (const file of files) define(fields, file.path.slice(object.name.length + 1), object, () => toText(file, texts));
    define(objects, object.name, object, () => fields);
  }
  // An exact object name wins over an expanded key of the same path (the volume guard refuses both as files).
  for (const { object, files } of inputs) {
    if (object.expand === 'keys') for (const file of files) define(objects, file.path, object, () => toText(file, texts));
  }
  const scope = Object.create(null) as Record<string, unknown>;
  scope.objects = objects;
  return { scope, read };
}

export type Text = string | BinaryContent;

/** Content as text, decoded once per Mount; bytes that are not UTF-8 are never decoded with U+FFFD. */
function toText(file: ObjectFile, texts: Map<ObjectFile, Text>): Text {
  let text = texts.get(file);
  if (text === undefined) {
    text = isUtf8(file.contents) ? file.contents.toString('utf8') : new BinaryContent(file.path, file.contents);
    texts.set(file, text);
  }
  return text;
}

/**
 * Content that is not UTF-8 text. Printing it or using it as text fails with a clear error;
 * `base64` encodes its bytes. Private fields only: templates read own properties, so nothing.
 */
class BinaryContent {
  readonly #path: string;
  readonly #bytes: Buffer;
  constructor(path: string, bytes: Buffer) {
    this.#path = path;
    this.#bytes = bytes;
  }
  static bytesOf(value: BinaryContent): Buffer {
    return value.#bytes;
  }
  toString(): never {
    throw new TemplateProblem('InvalidArgument', `objects[${JSON.stringify(this.#path)}] is not UTF-8 text; embed it with | base64`);
  }
  toJSON(): never {
    return this.toString();
  }
}

/** An `expand: keys` object: a map of key to content, for `objects["NAME"].KEY` and loops; not text itself. */
class ExpandedObject {
  readonly #name: string;
  constructor(name: string) {
    this.#name = name;
  }
  toString(): never {
    const name = this.#name;
    throw new TemplateProblem(
      'InvalidArgument',
      `objects[${JSON.stringify(name)}] is an expanded object: write objects[${JSON.stringify(`${name}/KEY`)}] or loop over it`,
    );
  }
}

/** A failure whose message is ours (never a value), raised from inside Liquid. */
export class TemplateProblem extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Liquid's output, refused as soon as it passes the limit rather than after it is built. */
class BoundedEmitter implements Emitter {
  buffer = '';
  readonly #limit: number;
  constructor(limit: number) {
    this.#limit = limit;
  }
  write(html: unknown): void {
    this.buffer += stringify(html);
    // UTF-16 units never outnumber UTF-8 bytes, so this never refuses output within the limit.
    if (this.buffer.length > this.#limit) throw new TemplateProblem('InvalidArgument', `the output is larger than ${this.#limit} bytes`);
  }
}

/** Liquid's own rule for writing a value. */
function stringify(value: unknown): string {
  const v: unknown = liquidjs().toValue(value);
  if (typeof v === 'string') return v;
  if (v === null || v === undefined) return '';
  if (Array.isArray(v)) return v.map(stringify).join('');
  return String(v);
}

/** `base64` (and Shopify's `base64_encode`): the bytes of text or of binary content. */
function base64(this: { context: Context }, value: unknown): string {
  const bytes = value instanceof BinaryContent ? BinaryContent.bytesOf(value) : Buffer.from(stringify(value), 'utf8');
  this.context.memoryLimit.use(Math.ceil(bytes.length / 3) * 4);
  return bytes.toString('base64');
}

/** Shopify's `base64_decode`, refusing bytes that are not UTF-8 text rather than writing U+FFFD for them. */
function base64Decode(this: { context: Context }, value: unknown): string {
  const text = stringify(value).replace(/\s+/g, '');
  this.context.memoryLimit.use(text.length);
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.replace(/=+$/, '').length % 4 === 1) {
    throw new TemplateProblem('InvalidArgument', 'base64_decode: the value is not valid base64');
  }
  const bytes = Buffer.from(text, 'base64');
  if (!isUtf8(bytes)) throw new TemplateProblem('InvalidArgument', 'base64_decode: the decoded bytes are not UTF-8 text');
  return bytes.toString('utf8');
}

const noFiles = {
  exists: () => Promise.reject(refusedFiles()),
  existsSync: () => {
    throw refusedFiles();
  },
  readFile: () => Promise.reject(refusedFiles()),
  readFileSync: () => {
    throw refusedFiles();
  },
  resolve: () => {
    throw refusedFiles();
  },
};

function refusedFiles(): Error {
  return new Error('templates cannot read files');
}

/**
 * One engine per parsed class: Liquid's parseLimit counts every parse of an engine. The tags that
 * read files fail when parsed, and the file system behind them refuses anyway.
 */
export function createEngine(): Liquid {
  const engine = new (liquidjs().Liquid)({
    fs: noFiles,
    relativeReference: false,
    root: [],
    partials: [],
    layouts: [],
    strictVariables: true,
    // With strictVariables, lets `{% if objects["x"] %}` and `| default` handle a skipped optional object.
    lenientIf: true,
    strictFilters: true,
    ownPropertyOnly: true,
    parseLimit: templateLimits.parameterBytes,
    renderLimit: templateLimits.renderMs,
    memoryLimit: templateLimits.memoryUnits,
  });
  for (const tag of ['include', 'render', 'layout']) {
    engine.registerTag(tag, {
      parse(token) {
        throw new Error(`{% ${token.name} %} is not available: templates cannot read files`);
      },
      render() {
        throw refusedFiles();
      },
    });
  }
  engine.registerFilter('base64', base64);
  engine.registerFilter('base64_encode', base64);
  engine.registerFilter('base64_decode', base64Decode);
  return engine;
}
