import { open, readdir, realpath, stat } from 'node:fs/promises';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { z } from 'zod';
import { ProviderError } from '../errors.js';
import { bytesContent } from './kit/content.js';
import type { BackendDefinition, ListedSecret, ListRequest } from './types.js';

const options = z.strictObject({
  root: z
    .string()
    .min(1)
    .describe('Directory that holds the secrets (relative to the config file); refs are paths relative to it. Symlinks leaving it are refused.'),
  maxBytes: z
    .number()
    .int()
    .positive()
    .max(4 * 1024 * 1024)
    .default(1024 * 1024)
    .describe('Largest file served, in bytes.'),
});

/** The file store has no object fields of its own. */
export const fileObjectFields = z.strictObject({});

/** Serves files from a local directory: the store for local runs, tests and mounted volumes. */
export const fileBackend: BackendDefinition<z.infer<typeof options>, z.infer<typeof fileObjectFields>> = {
  kind: 'file',
  options,
  objectFields: fileObjectFields,
  audiences: () => [],
  docs: {
    summary: 'Files of a local directory, read by the provider itself: local runs, tests, mounted volumes.',
    guide: '[README](../README.md#stores)',
    ref: 'A path relative to `root`.',
  },
  create({ name, options: opts }, { baseDir }) {
    const root = resolve(baseDir, opts.root);
    return {
      name,
      async fetch({ ref }) {
        const path = await resolveInsideRoot(root, ref);
        return { content: bytesContent(await readBounded(path, opts.maxBytes)) };
      },
      async list(request) {
        return { items: await listFiles(root, request) };
      },
      async close() {},
    };
  },
};

/** Folders below the prefix's own that a recursive listing descends into. */
const maxDepth = 16;

/**
 * The regular files under the prefix's folder whose names start with the rest of the prefix.
 * Symlinks count where they resolve to a file inside the root; linked folders are not descended
 * into (a loop or a way out). Names starting with `..` are kubelet's atomic-writer internals.
 */
async function listFiles(root: string, { prefix, recursive, labels }: ListRequest<unknown>): Promise<ListedSecret[]> {
  if (Object.keys(labels).length > 0) throw new ProviderError('InvalidArgument', 'the file store has no labels; remove find.labels');
  const slash = prefix.lastIndexOf('/');
  const folder = prefix.slice(0, slash + 1);
  const namePrefix = prefix.slice(slash + 1);
  let realRoot: string;
  let start: string;
  try {
    realRoot = await realpath(root);
    start = folder === '' ? realRoot : await resolveInsideRoot(root, folder);
  } catch (err) {
    if (err instanceof ProviderError && err.code === 'NotFound') return [];
    throw fileError(err);
  }
  const found: ListedSecret[] = [];
  const walk = async (dir: string, refDir: string, depth: number): Promise<void> => {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      throw fileError(err);
    }
    for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
      if (entry.name.startsWith('..') || (depth === 0 && !entry.name.startsWith(namePrefix))) continue;
      const ref = `${refDir}${entry.name}`;
      if (entry.isFile()) found.push({ ref });
      else if (entry.isDirectory() && recursive && depth < maxDepth) await walk(resolve(dir, entry.name), `${ref}/`, depth + 1);
      else if (entry.isSymbolicLink() && (await isFileInside(realRoot, resolve(dir, entry.name)))) found.push({ ref });
    }
  };
  await walk(start, folder, 0);
  return found;
}

async function isFileInside(realRoot: string, path: string): Promise<boolean> {
  try {
    const real = await realpath(path);
    const rel = relative(realRoot, real);
    if (rel === '' || rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) return false;
    return (await stat(real)).isFile();
  } catch {
    return false;
  }
}

async function resolveInsideRoot(root: string, ref: string): Promise<string> {
  if (isAbsolute(ref) || ref.split(/[\\/]/).includes('..') || ref.includes('\0')) {
    throw new ProviderError('InvalidArgument', 'ref must be a relative path without ".." elements');
  }
  let realRoot: string;
  let real: string;
  try {
    realRoot = await realpath(root);
    real = await realpath(resolve(realRoot, ref));
  } catch (err) {
    throw fileError(err);
  }
  const rel = relative(realRoot, real);
  if (rel === '' || rel.startsWith(`..${sep}`) || rel === '..' || isAbsolute(rel)) {
    throw new ProviderError('PermissionDenied', 'ref resolves outside the store root');
  }
  return real;
}

async function readBounded(path: string, maxBytes: number): Promise<Buffer> {
  let handle;
  try {
    handle = await open(path, 'r');
    const info = await handle.stat();
    if (!info.isFile()) throw new ProviderError('InvalidArgument', 'ref is not a regular file');
    if (info.size > maxBytes) {
      throw new ProviderError('InvalidArgument', `file is ${info.size} bytes, above the store limit of ${maxBytes}`);
    }
    return await handle.readFile();
  } catch (err) {
    throw fileError(err);
  } finally {
    await handle?.close();
  }
}

function fileError(err: unknown): ProviderError {
  if (err instanceof ProviderError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  switch (code) {
    case 'ENOENT':
    case 'ENOTDIR':
      return new ProviderError('NotFound', 'no such file in the store');
    case 'EACCES':
    case 'EPERM':
      return new ProviderError('PermissionDenied', 'the provider may not read this file');
    case 'ELOOP':
      return new ProviderError('InvalidArgument', 'ref is a symlink loop');
    default:
      return new ProviderError('Unavailable', `reading the file failed (${code ?? 'unknown error'})`);
  }
}
