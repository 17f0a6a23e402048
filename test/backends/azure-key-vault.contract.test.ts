import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { azureKeyVaultBackend } from '../../src/backends/azure/index.js';
import { parseOrThrow } from '../../src/schema.js';
import { startAzureTestServer, workloadIdentityAudience } from '../servers/azure.js';
import { runBackendContract } from './contract.js';

runBackendContract('azure-key-vault', async () => {
  const azure = await startAzureTestServer();
  const dir = await mkdtemp(join(tmpdir(), 'usp-azure-contract-'));
  await writeFile(join(dir, 'azure-ca.pem'), azure.ca.cert);
  const clientId = '1d8f4b52-7a3e-4c1b-9e0f-3b2a5c6d7e8f';
  azure.federate({ clientId, namespace: 'shop', serviceAccount: 'app' });
  azure.grant(clientId, ['secrets/shop-*']);
  azure.grantList(clientId);
  // Listing: 27 tagged secrets are two pages of 25; left out are a disabled one, another tag and a name that only contains the prefix.
  const listed = Array.from({ length: 27 }, (_, i) => `list-${String(i).padStart(2, '0')}`);
  for (const name of listed) azure.setSecret(name, `listed-${randomBytes(6).toString('hex')}`, { tags: { team: 'pay' } });
  azure.setSecret('list-off', 'off', { enabled: false, tags: { team: 'pay' } });
  azure.setSecret('list-web', 'web', { tags: { team: 'web' } });
  azure.setSecret('blacklist-1', 'b', { tags: { team: 'pay' } });
  const first = `first-${randomBytes(12).toString('hex')}`;
  const latest = `latest-${randomBytes(12).toString('hex')}`;
  const firstVersion = azure.setSecret('shop-db', first);
  azure.setSecret('shop-db', latest);
  azure.setSecret('billing-db', `billing-${randomBytes(12).toString('hex')}`);
  return {
    definition: azureKeyVaultBackend,
    create: async ({ timeoutMs = 30_000 } = {}) => {
      const raw = { vaultUrl: azure.url, authorityHost: azure.url, tenantId: azure.tenantId, clientId, tls: { caFile: 'azure-ca.pem' }, timeout: `${timeoutMs}ms` };
      const options = parseOrThrow(azureKeyVaultBackend.options, raw, 'stores[0]');
      return azureKeyVaultBackend.create({ name: 'azure', options, restrictsNamespaces: false }, { logger: pino({ level: 'silent' }), baseDir: dir, now: Date.now });
    },
    pod: {
      identity: { namespace: 'shop', serviceAccount: 'app', podName: 'app-0', podUid: '8d3f6c1e-0000-4000-8000-000000000013' },
      token: { audience: workloadIdentityAudience, issue: () => azure.issuePodToken({ namespace: 'shop', serviceAccount: 'app' }) },
    },
    objects: {
      value: { ref: 'shop-db', content: { kind: 'bytes', data: Buffer.from(latest) } },
      binary: { skip: 'Key Vault secrets are strings: binary travels as base64 text (decode: base64), which the value case covers' },
      pinned: { ref: 'shop-db', version: firstVersion, content: { kind: 'bytes', data: Buffer.from(first) } },
      missing: { ref: 'shop-none' },
      denied: { ref: 'billing-db' },
    },
    // The reads only: token exchanges go through, as they do when the vault is what fails.
    faults: { injector: azure.faults, match: '/secrets/' },
    listing: {
      found: { prefix: 'list-', labels: { team: 'pay' }, refs: listed },
      withValues: false,
      empty: { prefix: 'none-' },
      denied: { skip: 'Key Vault authorises a listing per vault, not per prefix: one identity lists all of it or nothing (test/find/azure.test.ts has an application without the permission)' },
    },
    connections: () => azure.connections(),
    teardown: async () => {
      await azure.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});
