import { Secret } from '../../secret.js';
import type { Content } from '../types.js';

/** An opaque value (a file, a string or binary secret). */
export function bytesContent(data: Buffer | string): Secret<Content> {
  return new Secret<Content>({ kind: 'bytes', data: typeof data === 'string' ? Buffer.from(data, 'utf8') : data });
}

/** A structured value: top-level fields are Buffers (exact bytes) or JSON values. */
export function fieldsContent(fields: Record<string, unknown>): Secret<Content> {
  return new Secret<Content>({ kind: 'fields', fields });
}
