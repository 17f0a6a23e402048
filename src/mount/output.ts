import { createHmac } from 'node:crypto';
import { ProviderError } from '../errors.js';
import { checkDriverPath } from './paths.js';
import type { ObjectFile } from './transform.js';

/** The driver refuses responses above 4 MiB; keep room for the message framing. */
export const maxResponseBytes = 4 * 1024 * 1024 - 64 * 1024;
/** Above this the response cannot be synced into a Kubernetes Secret. */
export const largeResponseBytes = 1024 * 1024;

/** Checks one file as the driver would (path rules, mode); done once when an object is rendered. */
export function checkFile(file: ObjectFile): void {
  const problem = checkDriverPath(file.path);
  if (problem) throw invalid(`file ${JSON.stringify(file.path.slice(0, 300))}: path ${problem}`);
  if (!Number.isInteger(file.mode) || file.mode < 0 || file.mode > 0o777) {
    throw invalid(`file ${JSON.stringify(file.path)}: mode must be between 0000 and 0777`);
  }
}

/**
 * Checks the volume as a whole as the driver would (every file passed checkFile): no path twice,
 * no file that is also a directory, and the size limit. Returns the total bytes.
 */
export function guardOutput(files: readonly ObjectFile[]): number {
  const paths = new Set<string>();
  let total = 0;
  for (const file of files) {
    if (paths.has(file.path)) throw invalid(`file ${JSON.stringify(file.path)}: written twice`);
    paths.add(file.path);
    total += file.contents.length;
  }
  for (const path of paths) {
    for (let slash = path.indexOf('/'); slash > 0; slash = path.indexOf('/', slash + 1)) {
      const parent = path.slice(0, slash);
      if (paths.has(parent)) throw invalid(`file ${JSON.stringify(parent)}: is also a directory of ${JSON.stringify(path)}`);
    }
  }
  if (total > maxResponseBytes) {
    throw invalid(`the volume would hold ${total} bytes, above the driver's limit of ${maxResponseBytes}`);
  }
  return total;
}

/**
 * A version that changes exactly when the content does, without revealing it: an HMAC keyed by
 * the admin's key (a bare hash of a low-entropy secret could be brute-forced from the status object).
 * `inputs` (a template's: the versions of the objects it read) change it too; without them the
 * version is what it always was, so upgrades cause no rotation.
 */
export function hmacVersion(key: Buffer, files: readonly ObjectFile[], inputs: readonly string[] = []): string {
  const mac = createHmac('sha256', key);
  for (const file of files) {
    mac.update(`${file.path}\0${file.mode}\0${file.contents.length}\0`);
    mac.update(file.contents);
  }
  for (const input of inputs) mac.update(`\0input\0${input.length}\0${input}`);
  return `hmac-${mac.digest('base64url').slice(0, 32)}`;
}

function invalid(message: string): ProviderError {
  return new ProviderError('InvalidArgument', message);
}
