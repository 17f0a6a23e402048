import { randomBytes, randomUUID } from 'node:crypto';
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { fileBackend } from '../../src/backends/file.js';
import { ProviderError } from '../../src/errors.js';
import { createTokenSource } from '../../src/identity.js';
import { runBackendContract } from './contract.js';

const logger = pino({ level: 'silent' });
const identity = { namespace: 'shop', serviceAccount: 'app', podName: 'app-0', podUid: randomUUID() };

/** A store root with a value and a binary file, and a file outside it that a symlink points at. */
async function createRoot(): Promise<{ dir: string; root: string; value: string; binary: Buffer }> {
  const dir = await mkdtemp(join(tmpdir(), 'usp-file-contract-'));
  const root = join(dir, 'root');
  await mkdir(join(root, 'shop'), { recursive: true });
  const value = `value-${randomUUID()}`;
  const binary = Buffer.concat([Buffer.from([0x80, 0xc0, 0xaf, 0xff, 0x00]), randomBytes(64)]);
  await writeFile(join(root, 'shop', 'db'), value);
  await writeFile(join(root, 'shop', 'blob.bin'), binary);
  await writeFile(join(dir, 'outside'), `outside-${randomUUID()}`);
  await symlink(join(dir, 'outside'), join(root, 'shop', 'escape'));
  return { dir, root, value, binary };
}

const createStore = (root: string) =>
  fileBackend.create({ name: 'files', options: fileBackend.options.parse({ root }), restrictsNamespaces: false }, { logger, baseDir: root, now: Date.now });

runBackendContract('file', async () => {
  const { dir, root, value, binary } = await createRoot();
  return {
    definition: fileBackend,
    create: async () => createStore(root),
    pod: { identity },
    objects: {
      value: { ref: 'shop/db', content: { kind: 'bytes', data: Buffer.from(value) } },
      binary: { ref: 'shop/blob.bin', content: { kind: 'bytes', data: binary } },
      pinned: { skip: 'files have no versions' },
      missing: { ref: 'shop/nothing-here' },
      // The store's own boundary: a symlink leaving the root is refused whoever runs the provider.
      denied: { ref: 'shop/escape' },
    },
    faults: { skip: 'no network: the store reads a local directory' },
    listing: {
      // The symlink leaving the root is not found.
      found: { prefix: 'shop/', refs: ['shop/blob.bin', 'shop/db'] },
      withValues: false,
      empty: { prefix: 'nothing-here/' },
      denied: { skip: 'the provider reads the directory as itself; only its file modes apply' },
    },
    async teardown() {
      await rm(dir, { recursive: true, force: true });
    },
  };
});

const runsAsRoot = process.getuid?.() === 0;

describe('file store: file modes', () => {
  it.skipIf(runsAsRoot)('maps a file the provider may not read (mode 000) to PermissionDenied (not applicable as root: root reads any file)', async () => {
    const { dir, root } = await createRoot();
    try {
      await writeFile(join(root, 'shop', 'locked'), 'locked');
      await chmod(join(root, 'shop', 'locked'), 0o000);
      const store = await createStore(root);
      const source = createTokenSource(new Map(), Date.now);
      const ctx = { identity, parameters: {}, secrets: new Map(), signal: new AbortController().signal, tokenFor: (audience: string) => source.tokenFor(audience) };
      const err = await store.fetch({ ref: 'shop/locked', spec: {} }, ctx).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ProviderError);
      expect((err as ProviderError).code).toBe('PermissionDenied');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
