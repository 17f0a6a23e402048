import type * as K8s from '@kubernetes/client-node';
import { ProviderError } from '../../errors.js';
import { fieldsContent } from '../kit/content.js';
import type { FetchResult } from '../types.js';
import type { ObjectKind } from './errors.js';

/** A Secret's or ConfigMap's keys as exact bytes, versioned by its resourceVersion. */
export function toFetchResult(kind: ObjectKind, object: K8s.V1Secret | K8s.V1ConfigMap): FetchResult {
  const fields = kind === 'secret' ? secretFields(object as K8s.V1Secret) : configMapFields(object as K8s.V1ConfigMap);
  return { content: fieldsContent(fields), version: object.metadata?.resourceVersion };
}

function secretFields(secret: K8s.V1Secret): Record<string, Buffer> {
  return Object.fromEntries(Object.entries(stringMap(secret.data, 'data')).map(([key, value]) => [key, decodeBase64(value, key)]));
}

function configMapFields(configMap: K8s.V1ConfigMap): Record<string, Buffer> {
  return Object.fromEntries([
    ...Object.entries(stringMap(configMap.data, 'data')).map(([key, value]) => [key, Buffer.from(value, 'utf8')] as const),
    ...Object.entries(stringMap(configMap.binaryData, 'binaryData')).map(([key, value]) => [key, decodeBase64(value, key)] as const),
  ]);
}

/**
 * client-node does not check value types: a map of non-strings used to crash the decoding with a
 * TypeError (Internal). Found by fault injection (test/faults, wrong-shape JSON); it is a malformed answer.
 */
function stringMap(value: unknown, field: string): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value) || Object.values(value).some((v) => typeof v !== 'string')) {
    throw new ProviderError('Unavailable', `the API server sent a malformed answer (${field} is not a map of strings)`);
  }
  return value as Record<string, string>;
}

/** Node's base64 decoder skips invalid characters; a round trip catches a corrupted value instead. */
function decodeBase64(value: string, key: string): Buffer {
  const bytes = Buffer.from(value, 'base64');
  if (bytes.toString('base64') !== value) {
    throw new ProviderError('Unavailable', `the API server sent a malformed answer (key ${JSON.stringify(key)} is not valid base64)`);
  }
  return bytes;
}
