import { mkdir, writeFile, chmod } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { checkDriverPath } from '../mount/paths.js';
import type { Io } from './flags.js';

export interface ShownFile {
  readonly path: string;
  readonly mode: number;
  readonly contents: Buffer;
  readonly store?: string;
  readonly ref?: string;
  readonly version?: string;
}

/** A table of what a Mount produced: names, sizes, modes, versions, sources; never values. */
export function formatFileTable(files: readonly ShownFile[]): string {
  const rows = [
    ['FILE', 'BYTES', 'MODE', 'VERSION', 'STORE', 'REF'],
    ...files.map((f) => [
      f.path,
      String(f.contents.length),
      `0${f.mode.toString(8).padStart(3, '0')}`,
      f.version ?? '-',
      f.store ?? '-',
      f.ref ?? '-',
    ]),
  ];
  const widths = rows[0]!.map((_, col) => Math.max(...rows.map((r) => r[col]!.length)));
  return rows.map((r) => r.map((cell, col) => cell.padEnd(widths[col]!)).join('  ').trimEnd()).join('\n') + '\n';
}

/** Values, for `--show-values` only. Binary contents are shown as base64. */
export function formatValues(files: readonly ShownFile[]): string {
  return files
    .map((f) => {
      const text = f.contents.toString('utf8');
      const printable = Buffer.from(text, 'utf8').equals(f.contents) && !/[\0-\x08\x0e-\x1f]/.test(text);
      return printable ? `--- ${f.path}\n${text}${text.endsWith('\n') ? '' : '\n'}` : `--- ${f.path} (base64)\n${f.contents.toString('base64')}\n`;
    })
    .join('');
}

/** Writes the files under `dir` with their modes, as the driver would (minus its atomic swap). */
export async function writeFiles(dir: string, files: readonly ShownFile[]): Promise<void> {
  for (const file of files) {
    const problem = checkDriverPath(file.path);
    if (problem) throw new Error(`refusing to write ${JSON.stringify(file.path)}: ${problem}`);
    const target = join(dir, file.path);
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, file.contents, { mode: file.mode });
    await chmod(target, file.mode);
  }
}

/** Prints the table, values only with --show-values, and writes --out: the same for render and mount. */
export async function showFiles(io: Io, files: readonly ShownFile[], flags: { out?: unknown; 'show-values'?: unknown }): Promise<void> {
  io.stdout(formatFileTable(files));
  if (flags['show-values']) io.stdout(formatValues(files));
  if (typeof flags.out === 'string') {
    await writeFiles(flags.out, files);
    io.stdout(`wrote ${files.length} files to ${flags.out}\n`);
  }
}
