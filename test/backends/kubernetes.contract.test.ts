import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { kubernetesBackend } from '../../src/backends/kubernetes/index.js';
import { serviceAccountUser, startKubernetesTestServer } from '../servers/kubernetes.js';
import { runBackendContract } from './contract.js';

runBackendContract('kubernetes', async () => {
  const api = await startKubernetesTestServer();
  const dir = await mkdtemp(join(tmpdir(), 'usp-k8s-contract-'));
  await api.writeKubeconfig(join(dir, 'kubeconfig'));
  const value = `value-${randomUUID()}`;
  // Not valid UTF-8: a lone continuation byte, an overlong form and 0xff.
  const binary = Buffer.concat([Buffer.from([0x80, 0xc0, 0xaf, 0xff, 0x00]), randomBytes(64)]);
  api.putSecret({ namespace: 'shop', name: 'db', data: { password: value } });
  api.putSecret({ namespace: 'shop', name: 'blob', data: { key: binary } });
  api.putSecret({ namespace: 'shop', name: 'other-team', data: { password: `denied-${randomUUID()}` } });
  // The pod may read "gone", so its absence is a 404 and not a 403.
  api.allow({ subject: serviceAccountUser('shop', 'app'), namespace: 'shop', resource: 'secrets', names: ['db', 'blob', 'gone'] });
  // More than one page (50 a page) of labelled Secrets for the listing cases; listing needs the verb list.
  for (let i = 0; i < 55; i += 1) api.putSecret({ namespace: 'shop', name: `found-${i}`, data: { n: String(i) }, labels: { found: 'yes' } });
  api.putSecret({ namespace: 'shop', name: 'found-unlabelled', data: { n: 'x' } });
  api.allow({ subject: serviceAccountUser('shop', 'app'), namespace: 'shop', resource: 'secrets', verbs: ['list'] });
  api.allow({ subject: serviceAccountUser('shop', 'app'), namespace: 'shop', resource: 'secrets', names: Array.from({ length: 55 }, (_, i) => `found-${i}`) });
  const options = (timeoutMs = 30_000) =>
    kubernetesBackend.options.parse({ kubeconfig: 'kubeconfig', audience: api.audience, timeout: `${timeoutMs}ms` });
  return {
    definition: kubernetesBackend,
    create: async ({ timeoutMs } = {}) =>
      kubernetesBackend.create(
        { name: 'cluster', options: options(timeoutMs), restrictsNamespaces: false },
        { logger: pino({ level: 'silent' }), baseDir: dir, now: Date.now },
      ),
    pod: {
      identity: { namespace: 'shop', serviceAccount: 'app', podName: 'app-0', podUid: randomUUID() },
      token: { audience: api.audience, issue: () => api.issueToken({ namespace: 'shop', serviceAccount: 'app', audience: api.audience }).token },
    },
    objects: {
      value: { ref: 'db', content: { kind: 'fields', fields: { password: Buffer.from(value) } } },
      binary: { ref: 'shop/blob', content: { kind: 'fields', fields: { key: binary } } },
      pinned: { skip: 'the Kubernetes API serves only the current object (resourceVersion is not a readable history)' },
      missing: { ref: 'gone' },
      denied: { ref: 'other-team' },
    },
    faults: { injector: api.faults, match: '/secrets/' },
    listing: {
      found: { prefix: 'found-', labels: { found: 'yes' }, refs: Array.from({ length: 55 }, (_, i) => `found-${i}`) },
      withValues: true,
      empty: { prefix: 'nothing-' },
      denied: { prefix: 'platform/' },
    },
    connections: async () => api.openConnections(),
    async teardown() {
      await api.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});
