import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { gcpSecretManagerBackend } from '../../src/backends/gcp/index.js';
import { parseOrThrow } from '../../src/schema.js';
import { startGcpTestServer } from '../servers/gcp.js';
import { runBackendContract } from './contract.js';

runBackendContract('gcp-secret-manager', async () => {
  const gcp = await startGcpTestServer();
  const dir = await mkdtemp(join(tmpdir(), 'usp-gcp-contract-'));
  await writeFile(join(dir, 'gcp-ca.pem'), gcp.ca.cert);
  const first = `first-${randomUUID()}`;
  const latest = `latest-${randomUUID()}`;
  // Not valid UTF-8: a lone continuation byte, an overlong form and 0xff.
  const binary = Buffer.concat([Buffer.from([0x80, 0xc0, 0xaf, 0xff, 0x00]), randomBytes(64)]);
  gcp.addVersion('db', first);
  gcp.addVersion('db', latest);
  gcp.addVersion('blob', binary);
  gcp.addVersion('billing', `billing-${randomUUID()}`);
  const member = gcp.federatedMember('shop', 'app');
  for (const secret of ['db', 'blob', 'gone']) gcp.grantAccess(member, secret);
  gcp.grantList(member);
  // Listing: 55 labelled secrets are two pages of 50; Google's `name:` matches blacklist-1 too, which must be left out.
  const listed = Array.from({ length: 55 }, (_, i) => `list-${String(i).padStart(2, '0')}`);
  for (const secret of [...listed, 'blacklist-1']) gcp.setLabels(secret, { team: 'pay' });
  gcp.setLabels('list-web', { team: 'web' });
  const endpoints = { sts: gcp.url, iamCredentials: gcp.url, secretManager: gcp.url };
  return {
    definition: gcpSecretManagerBackend,
    create: async ({ timeoutMs = 30_000 } = {}) => {
      const raw = { project: gcp.projectId, audience: gcp.poolAudience, endpoints, tls: { caFile: 'gcp-ca.pem' }, timeout: `${timeoutMs}ms` };
      const options = parseOrThrow(gcpSecretManagerBackend.options, raw, 'stores[0]');
      return gcpSecretManagerBackend.create({ name: 'gcp', options, restrictsNamespaces: false }, { logger: pino({ level: 'silent' }), baseDir: dir, now: Date.now });
    },
    pod: {
      identity: { namespace: 'shop', serviceAccount: 'app', podName: 'app-0', podUid: randomUUID() },
      token: { audience: gcp.poolAudience, issue: () => gcp.issuePodToken({ namespace: 'shop', serviceAccount: 'app' }).token },
    },
    objects: {
      value: { ref: 'db', content: { kind: 'bytes', data: Buffer.from(latest) } },
      binary: { ref: `projects/${gcp.projectNumber}/secrets/blob`, content: { kind: 'bytes', data: binary } },
      pinned: { ref: 'db', version: '1', content: { kind: 'bytes', data: Buffer.from(first) } },
      missing: { ref: 'gone' },
      denied: { ref: 'billing' },
    },
    // The reads only: token exchanges go through, as they do when Secret Manager alone is broken.
    faults: { injector: gcp.faults, match: ':access' },
    listing: {
      found: { prefix: 'list-', labels: { team: 'pay' }, refs: listed },
      withValues: false,
      empty: { prefix: 'none-' },
      // The pod may list the project's global secrets, not those of a location.
      denied: { prefix: `projects/${gcp.projectId}/locations/europe-west1/secrets/list-` },
    },
    connections: () => gcp.connections(),
    teardown: async () => {
      await gcp.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});
