import { open, realpath } from 'node:fs/promises';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { z } from 'zod';
import { ProviderError } from '../errors.js';
import { bytesContent } from './kit/content.js';
import type { BackendDefinition } from './types.js';

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
      async close() {},
    };
  },
};

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
