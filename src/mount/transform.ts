import { TreeInterpreter, type JSONValue } from '@jmespath-community/jmespath';
import { ProviderError } from '../errors.js';
import type { Content } from '../backends/types.js';
import type { Decoding, MountObject } from './objects.js';
import { isPlainObject } from './request.js';

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
  const whole: Value = content.kind === 'bytes' ? content.data : content.fields;
  if (object.key !== undefined) {
    const fields = content.kind === 'fields' ? content.fields : parseJsonObject(content.data, 'key');
    if (!Object.prototype.hasOwnProperty.call(fields, object.key)) {
      throw new ProviderError('NotFound', `key ${JSON.stringify(object.key)} is not in the secret`);
    }
    return fields[object.key] as Value;
  }
  if (object.select !== undefined) {
    const data = content.kind === 'fields' ? toJsonView(content.fields) : parseJsonValue(content.data, 'select');
    let result: JSONValue;
    try {
      result = TreeInterpreter.search(object.select.ast, data as JSONValue);
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
  try {
    return JSON.parse(data.toString('utf8'));
  } catch {
    // JSON.parse's own message quotes the text, which is the secret: never pass it on.
    throw invalid(`${field}: the secret is not JSON`);
  }
}

function parseJsonObject(data: Buffer, field: string): Record<string, unknown> {
  const value = parseJsonValue(data, field);
  if (!isPlainObject(value)) throw invalid(`${field}: the secret is not a JSON object`);
  return value;
}

function invalid(message: string): ProviderError {
  return new ProviderError('InvalidArgument', message);
}
