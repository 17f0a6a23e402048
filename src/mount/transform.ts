import type { JSONValue } from '@jmespath-community/jmespath';
import { ProviderError } from '../errors.js';
import type { Content } from '../backends/types.js';
import type { Decoding, MountObject } from './objects.js';
import { isPlainObject } from '../util.js';

/** One file an object produces, before the output guard. Contents are secret: never log them. */
export interface ObjectFile {
  readonly path: string;
  readonly mode: number;
  readonly contents: Buffer;
}

type Value = Buffer | JSONValue | Record<string, unknown>;

/** Applies key, select, decode and expand to a store's content, yielding the object's files. */
export function toObjectFiles(object: MountObject, content: Content, defaultMode: number): ObjectFile[] {
  const mode = object.mode ?? defaultMode;
  const value = extract(object, content);
  if (object.expand === 'keys') {
    const fields = Buffer.isBuffer(value) ? parseJsonObject(value, 'expand') : value;
    if (!isPlainObject(fields)) throw invalid('expand: keys needs a structured secret (an object of fields)');
    return Object.entries(fields).map(([field, v]) => ({
      path: `${object.name}/${field}`,
      mode,
      contents: decode(render(v as Value), object.decode),
    }));
  }
  return [{ path: object.name, mode, contents: decode(render(value), object.decode) }];
}

function extract(object: MountObject, content: Content): Value {
  if (content.kind === 'fields') checkDepth(content.fields, 'the secret');
  const whole: Value = content.kind === 'bytes' ? content.data : content.fields;
  if (object.key !== undefined) {
    const fields = content.kind === 'fields' ? content.fields : parseJsonObject(content.data, 'key');
    if (!Object.prototype.hasOwnProperty.call(fields, object.key)) {
      throw new ProviderError('NotFound', `key ${JSON.stringify(object.key)} is not in the secret`);
    }
    return fields[object.key] as Value;
  }
  if (object.select !== undefined) {
    const data = content.kind === 'fields' ? content.fields : parseJsonValue(content.data, 'select');
    let result: JSONValue;
    try {
      result = object.select.search(toSearchable(data) as JSONValue);
    } catch (err) {
      throw invalid(`select: the expression failed on the secret's data (${(err as Error).name})`);
    }
    if (result === null || result === undefined) throw new ProviderError('NotFound', 'select matched nothing in the secret');
    return result;
  }
  return whole;
}

/** Strings are written as they are, bytes exactly, anything else as JSON. */
function render(value: Value): Buffer {
  if (Buffer.isBuffer(value)) return value;
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  return Buffer.from(JSON.stringify(toJsonView(value)), 'utf8');
}

/** Buffers inside structured values read as UTF-8 text, so JSON output and JMESPath see strings. */
function toJsonView(value: unknown): unknown {
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  if (Array.isArray(value)) return value.map(toJsonView);
  if (isPlainObject(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toJsonView(v)]));
  return value;
}

/**
 * The JMESPath interpreter reads fields as `value[name]`, so on plain objects `constructor` and
 * `__proto__` found Object's own (a function made the Mount fail as Internal; `__proto__` wrote
 * "{}" instead of NotFound). Search a copy whose objects have no prototype. Found by the corpus.
 */
function toSearchable(value: unknown): unknown {
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  if (Array.isArray(value)) return value.map(toSearchable);
  if (isPlainObject(value)) {
    const out = Object.create(null) as Record<string, unknown>;
    for (const [k, v] of Object.entries(value)) out[k] = toSearchable(v);
    return out;
  }
  return value;
}

/**
 * Deeper than any real secret, shallow enough for the recursive steps that follow (select,
 * rendering as JSON). JSON.parse itself takes 100,000 levels; rendering them overflowed the stack
 * and the Mount failed as Internal. Checked without recursion. Found by the corpus.
 */
const maxDepth = 256;

function checkDepth(value: unknown, what: string): void {
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (depth > maxDepth) throw invalid(`${what} nests deeper than ${maxDepth} levels`);
    if (Array.isArray(v)) for (const item of v) stack.push([item, depth + 1]);
    else if (isPlainObject(v)) for (const item of Object.values(v)) stack.push([item, depth + 1]);
  }
}

function decode(data: Buffer, decoding: Decoding | undefined): Buffer {
  if (decoding === undefined) return data;
  const text = data.toString('latin1').replace(/\s+/g, '');
  switch (decoding) {
    case 'base64': {
      const standard = text.replace(/-/g, '+').replace(/_/g, '/');
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(standard) || standard.replace(/=+$/, '').length % 4 === 1) {
        throw invalid('decode: the value is not valid base64');
      }
      return Buffer.from(standard, 'base64');
    }
    case 'hex':
      if (!/^(?:[0-9a-fA-F]{2})*$/.test(text)) throw invalid('decode: the value is not valid hex');
      return Buffer.from(text, 'hex');
  }
}

function parseJsonValue(data: Buffer, field: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(data.toString('utf8'));
  } catch {
    // JSON.parse's own message quotes the text, which is the secret: never pass it on.
    throw invalid(`${field}: the secret is not JSON`);
  }
  checkDepth(value, `${field}: the secret`);
  return value;
}

function parseJsonObject(data: Buffer, field: string): Record<string, unknown> {
  const value = parseJsonValue(data, field);
  if (!isPlainObject(value)) throw invalid(`${field}: the secret is not a JSON object`);
  return value;
}

function invalid(message: string): ProviderError {
  return new ProviderError('InvalidArgument', message);
}
