import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { vaultBackend } from '../../src/backends/vault/index.js';
import { parseOrThrow } from '../../src/schema.js';
import { startVaultTestServer } from '../servers/vault.js';
import { runBackendContract } from './contract.js';

runBackendContract('vault', async () => {
  const vault = await startVaultTestServer();
  const dir = await mkdtemp(join(tmpdir(), 'usp-vault-contract-'));
  await writeFile(join(dir, 'vault-ca.pem'), vault.ca.cert);
  const first = { password: `first-${randomBytes(12).toString('hex')}`, port: 5432 };
  const latest = { password: `latest-${randomBytes(12).toString('hex')}`, nested: { list: ['a', 1, null] } };
  vault.enableKv('secret', 2);
  vault.writeKv('secret', 'shop/db', first);
  vault.writeKv('secret', 'shop/db', latest);
  vault.writeKv('secret', 'billing/db', { password: `billing-${randomBytes(12).toString('hex')}` });
  vault.writeKv('secret', 'shop/eu/cache', { password: `cache-${randomBytes(12).toString('hex')}` });
  vault.definePolicy('app', { 'secret/data/shop/*': ['read'], 'secret/metadata/shop/*': ['list'] });
  vault.defineRole({ name: 'app', boundServiceAccountNames: ['app'], boundNamespaces: ['shop'], policies: ['app'] });
  return {
    definition: vaultBackend,
    create: async ({ timeoutMs = 30_000 } = {}) => {
      const raw = { address: vault.url, tls: { caFile: 'vault-ca.pem' }, auth: { method: 'kubernetes', role: 'app' }, timeout: `${timeoutMs}ms` };
      const options = parseOrThrow(vaultBackend.options, raw, 'stores[0]');
      return vaultBackend.create({ name: 'vault', options, restrictsNamespaces: false }, { logger: pino({ level: 'silent' }), baseDir: dir, now: Date.now });
    },
    pod: {
      identity: { namespace: 'shop', serviceAccount: 'app', podName: 'app-0', podUid: '8d3f6c1e-0000-4000-8000-000000000001' },
      token: { audience: 'vault', issue: () => vault.issuePodToken({ namespace: 'shop', serviceAccount: 'app' }).token },
    },
    objects: {
      value: { ref: 'secret/data/shop/db', content: { kind: 'fields', fields: latest } },
      binary: { skip: 'Vault holds JSON values: bytes travel as base64 text in a field, which the value case covers' },
      pinned: { ref: 'secret/shop/db', version: '1', content: { kind: 'fields', fields: first } },
      missing: { ref: 'secret/data/shop/none' },
      denied: { ref: 'secret/data/billing/db' },
    },
    // The reads only: logins and mount lookups go through, as they do when a read path is broken.
    faults: { injector: vault.faults, match: '/v1/secret/data/' },
    listing: {
      // Recursive: the folder eu/ is a second page.
      found: { prefix: 'secret/shop/', recursive: true, refs: ['secret/shop/db', 'secret/shop/eu/cache'] },
      withValues: false,
      empty: { prefix: 'secret/shop/none/' },
      denied: { prefix: 'secret/billing/' },
    },
    connections: () => vault.connections(),
    teardown: async () => {
      await vault.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});
