import { isWellFormed } from '../util.js';

/** Why the driver would reject `path` as a file path in the mount, or undefined when it is fine. */
export function checkDriverPath(path: string): string | undefined {
  if (path === '') return 'must not be empty';
  // Paths travel as proto3 strings (UTF-8): a lone UTF-16 surrogate has no UTF-8 form, so the
  // driver would get U+FFFD (or refuse the message) instead of the name checked here. Found by fuzzing.
  if (!isWellFormed(path)) return 'must be valid Unicode (it has an unpaired surrogate)';
  // The driver (Go) and the filesystem count bytes, not UTF-16 units: "€".repeat(86) is one
  // 258-byte element. Found by fuzzing.
  if (Buffer.byteLength(path, 'utf8') > 4096) return 'longer than 4096 bytes';
  if (path.startsWith('/')) return 'must be a relative path';
  if (path.includes('\0')) return 'must not contain NUL';
  if (path.includes('\\')) return 'must not contain backslashes';
  const elements = path.split('/');
  if (elements.some((e) => e === '')) return 'must not have empty elements (a//b, a/ or /a)';
  if (elements.some((e) => e === '.')) return 'must not have "." elements';
  if (elements.some((e) => e === '..')) return 'must not have ".." elements';
  if (elements.some((e) => Buffer.byteLength(e, 'utf8') > 255)) return 'has an element longer than 255 bytes';
  if (elements[0]!.startsWith('..')) return 'must not start with ".." (reserved by the driver)';
  return undefined;
}
