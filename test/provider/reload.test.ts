import { mkdir, rename, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCanaries } from '../helpers/canary.js';
import { driverRequest, fileMap } from '../helpers/driver-client.js';
import { startTestProvider, type TestProvider } from '../helpers/provider.js';
import { startVaultTestServer } from '../servers/vault.js';

const canaries = createCanaries();
const a = canaries.next('a');
const b = canaries.next('b');
let p: TestProvider;

const configWith = (root: string) => `
defaultStore: files
versionKey: reload-version-key-0123456789
stores:
  - {name: files, backend: file, root: ${root}}
`;

/** Polls until `check` passes: reloads are triggered by file-system events, not by the test. */
async function eventually(check: () => Promise<void>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

beforeAll(async () => {
  p = await startTestProvider({ config: configWith('../a'), files: { 'a/x': a, 'b/x': b } });
});

afterAll(async () => {
  await p.stop();
  canaries.expectNoneIn(p.logs, 'provider logs');
});

const read = async () => fileMap(await p.client.mount(driverRequest('- {name: x, ref: x}'))).get('x')?.contents.toString();

describe('config reload', () => {
  it('applies a good change when the file is rewritten', async () => {
    expect(await read()).toBe(a);
    await writeFile(p.configPath, configWith('../b'));
    await eventually(async () => expect(await read()).toBe(b));
    expect(p.logs.some((l) => l.includes('"msg":"config reloaded"'))).toBe(true);
  });

  it('keeps the last good config and logs why when a change is bad', async () => {
    await writeFile(p.configPath, 'stores:\n  - {name: files, backend: file, root: 42}\n');
    await eventually(async () => expect(p.logs.some((l) => l.includes('config change rejected'))).toBe(true));
    const line = p.logs.find((l) => l.includes('config change rejected'))!;
    expect(line).toContain('stores[0].root');
    expect(await read()).toBe(b);
    const metrics = await p.metrics.registry.metrics();
    expect(metrics).toMatch(/usp_config_reloads_total\{outcome="rejected"\} 1/);
  });

  it('follows a ConfigMap-style atomic symlink swap', async () => {
    const q = await startTestProvider({ config: configWith('../a'), files: { 'a/x': a, 'b/x': b }, configMap: true });
    try {
      const readQ = async () => fileMap(await q.client.mount(driverRequest('- {name: x, ref: x}'))).get('x')?.contents.toString();
      expect(await readQ()).toBe(a);
      // kubelet writes a new timestamped directory, then renames a fresh `..data` link over the old one.
      const dir = join(q.dir, 'config');
      await mkdir(join(dir, '..2026_02_02'));
      await writeFile(join(dir, '..2026_02_02/config.yaml'), configWith('../b'));
      await symlink('..2026_02_02', join(dir, '..data_tmp'));
      await rename(join(dir, '..data_tmp'), join(dir, '..data'));
      await eventually(async () => expect(await readQ()).toBe(b));
      canaries.expectNoneIn(q.logs, 'provider logs');
    } finally {
      await q.stop();
    }
  });

  it('lets a Mount in flight finish on the store a reload replaced, then closes that store', async () => {
    const vault = await startVaultTestServer({ http: true });
    const password = canaries.next('vault');
    vault.enableKv('secret', 2);
    vault.writeKv('secret', 'shop/db', { password });
    vault.definePolicy('app', { 'secret/data/shop/*': ['read'] });
    vault.defineRole({ name: 'app', boundServiceAccountNames: ['app'], boundNamespaces: ['shop'], policies: ['app'] });
    // One attempt: a call cut by a closed store would fail the Mount instead of being retried.
    const vaultConfig = (failures: number) => `
stores:
  - {name: vault, backend: vault, address: ${vault.url}, auth: {method: kubernetes, role: app}, cache: {ttl: 0}, retry: {attempts: 1}, breaker: {failures: ${failures}}}
`;
    // A grace period far shorter than the Mount: the old timer closed the store under it.
    const q = await startTestProvider({ config: vaultConfig(5), graceMs: 20 });
    try {
      const issued = vault.issuePodToken({ namespace: 'shop', serviceAccount: 'app', audience: 'vault' });
      const pod = { serviceAccount: 'app', tokens: { vault: { token: issued.token, expirationTimestamp: new Date(issued.expiresAt).toISOString() } } };
      canaries.add(issued.token, ...vault.issuedTokens);
      vault.inject({ kind: 'latency', ms: 600 }, { match: /\/secret\/data\/shop\/db$/ });
      const slow = q.client.mount(driverRequest('- {name: db, store: vault, ref: secret/data/shop/db, key: password}', pod));
      await eventually(async () => expect(vault.faults.applied.latency).toBe(1));

      await writeFile(q.configPath, vaultConfig(6));
      await q.provider.reload();
      expect(q.logs.some((l) => l.includes('"msg":"config reloaded"'))).toBe(true);
      await new Promise((r) => setTimeout(r, 100));
      expect(q.logs.some((l) => l.includes('closing replaced stores'))).toBe(false);

      expect(fileMap(await slow).get('db')?.contents.toString()).toBe(password);
      const mounted = q.logs.findIndex((l) => l.includes('"msg":"mount"'));
      const closed = q.logs.findIndex((l) => l.includes('"msg":"closing replaced stores"'));
      expect(mounted).toBeGreaterThanOrEqual(0);
      expect(closed).toBeGreaterThan(mounted);
      canaries.add(...vault.issuedTokens);
      canaries.expectNoneIn(q.logs, 'provider logs');
    } finally {
      await q.stop();
      await vault.close();
    }
  });
});
