/**
 * The Secrets Store CSI Driver's checks on a MountResponse's files (PROTOCOL.md 3.5), written
 * again here on purpose: the tests compare the provider against this list, not against its own
 * `checkDriverPath`. The driver is Go, so lengths are UTF-8 bytes (Go's `len`), and paths travel
 * as proto3 strings, which must be valid UTF-8 (a lone UTF-16 surrogate cannot be sent faithfully).
 */
export function driverRejects(path: string): string | undefined {
  if (path === '') return 'empty';
  if (loneSurrogate.test(path)) return 'not valid UTF-8 on the wire';
  if (path.startsWith('/')) return 'absolute';
  if (Buffer.byteLength(path, 'utf8') > 4096) return 'longer than 4096 bytes';
  const elements = path.split('/');
  for (const element of elements) {
    if (element === '..') return 'has a ".." element';
    if (Buffer.byteLength(element, 'utf8') > 255) return 'has an element longer than 255 bytes';
  }
  if (elements[0]!.startsWith('..')) return 'first element starts with ".." (reserved for ..data)';
  // Not already clean (Go's path.Clean would change it): empty or "." elements, trailing slash.
  if (elements.some((e) => e === '' || e === '.')) return 'not clean';
  return undefined;
}

/** A UTF-16 surrogate without its pair: no UTF-8 encoding exists. */
export const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

export const driverMaxResponseBytes = 4 * 1024 * 1024;

/** Whole-volume checks: every path, duplicates, a file that is also a directory, modes, size. */
export function volumeProblems(files: ReadonlyArray<{ path: string; mode: number; contents: Buffer }>): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  let total = 0;
  for (const f of files) {
    const bad = driverRejects(f.path);
    if (bad) problems.push(`path ${JSON.stringify(f.path.slice(0, 80))}: ${bad}`);
    if (seen.has(f.path)) problems.push(`path ${JSON.stringify(f.path.slice(0, 80))}: duplicate`);
    seen.add(f.path);
    if (!Number.isInteger(f.mode) || f.mode < 0 || f.mode > 0o777) problems.push(`path ${JSON.stringify(f.path.slice(0, 80))}: mode ${f.mode}`);
    if (!Buffer.isBuffer(f.contents)) problems.push(`path ${JSON.stringify(f.path.slice(0, 80))}: contents not bytes`);
    else total += f.contents.length;
  }
  for (const path of seen) {
    for (let i = path.indexOf('/'); i > 0; i = path.indexOf('/', i + 1)) {
      if (seen.has(path.slice(0, i))) problems.push(`path ${JSON.stringify(path.slice(0, i))} is a file and a directory`);
    }
  }
  if (total > driverMaxResponseBytes) problems.push(`total ${total} bytes above 4 MiB`);
  return problems;
}
