import { ProviderError } from '../../errors.js';
import { fieldsContent } from '../kit/content.js';
import { isObject, shapeOf, stringProblem } from '../kit/json-shape.js';
import type { FetchResult } from '../types.js';
import type { ObjectKind } from './errors.js';

/** A Secret or ConfigMap as JSON on the wire: only the fields the store reads, none of them checked yet. */
export interface WireObject {
  readonly metadata?: unknown;
  readonly data?: unknown;
  readonly binaryData?: unknown;
}

/** A Secret's or ConfigMap's keys as exact bytes, versioned by its resourceVersion. */
export function toFetchResult(kind: ObjectKind, object: WireObject): FetchResult {
  const fields = kind === 'secret' ? secretFields(object) : configMapFields(object);
  return { content: fieldsContent(fields), version: metadataString(object, 'resourceVersion') };
}

/** A string field of the object's metadata (name, resourceVersion); undefined when absent. */
export function metadataString(object: WireObject, field: string): string | undefined {
  const { metadata } = object;
  if (metadata === undefined) return undefined;
  if (!isObject(metadata)) throw malformed(`metadata is ${shapeOf(metadata)}, not an object`);
  const problem = stringProblem(metadata[field], `metadata.${field}`);
  if (problem) throw malformed(problem);
  return metadata[field] as string | undefined;
}

function malformed(problem: string): ProviderError {
  return new ProviderError('Unavailable', `the API server sent a malformed answer (${problem})`);
}

function secretFields(secret: WireObject): Record<string, Buffer> {
  return Object.fromEntries(Object.entries(stringMap(secret.data, 'data')).map(([key, value]) => [key, decodeBase64(value, key)]));
}

function configMapFields(configMap: WireObject): Record<string, Buffer> {
  return Object.fromEntries([
    ...Object.entries(stringMap(configMap.data, 'data')).map(([key, value]) => [key, Buffer.from(value, 'utf8')] as const),
    ...Object.entries(stringMap(configMap.binaryData, 'binaryData')).map(([key, value]) => [key, decodeBase64(value, key)] as const),
  ]);
}

/**
 * Answers are checked, not trusted: a map of non-strings used to crash the decoding with a
 * TypeError (Internal). Found by fault injection (test/faults, wrong-shape JSON); it is a malformed answer.
 */
function stringMap(value: unknown, field: string): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value) || Object.values(value).some((v) => typeof v !== 'string')) {
    throw malformed(`${field} is not a map of strings`);
  }
  return value as Record<string, string>;
}

/** Node's base64 decoder skips invalid characters; a round trip catches a corrupted value instead. */
function decodeBase64(value: string, key: string): Buffer {
  const bytes = Buffer.from(value, 'base64');
  if (bytes.toString('base64') !== value) {
    throw malformed(`key ${JSON.stringify(key)} is not valid base64`);
  }
  return bytes;
}
