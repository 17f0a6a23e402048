/**
 * The Vault store as the provider composes it (`createStores`): its logger as the store layer
 * binds it, and its failures as the store guard sees them.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FetchContext } from '../../src/backends/types.js';
import { parseProviderConfig } from '../../src/config/load.js';
import { ProviderError } from '../../src/errors.js';
import { createTokenSource } from '../../src/identity.js';
import { createLogger } from '../../src/observability/log.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { Secret } from '../../src/secret.js';
import { createStores, closeStores, type ProviderState } from '../../src/stores/stores.js';
import { createTestCa } from '../servers/tls.js';
import { startVaultTestServer, type VaultTestServer } from '../servers/vault.js';

const clock = { t: Date.now(), now: (): number => clock.t };

let vault: VaultTestServer;
let dir: string;
let state: ProviderState;
const lines: string[] = [];
const metrics = createMetrics({ defaultMetrics: false });

beforeAll(async () => {
  vault = await startVaultTestServer({ now: clock.now });
  vault.enableKv('secret', 2);
  vault.writeKv('secret', 'shop/db', { password: `pw-${randomUUID()}` });
  vault.definePolicy('app', { 'secret/data/shop/*': ['read'] });
  vault.defineRole({ name: 'app', boundServiceAccountNames: ['app'], boundNamespaces: ['shop'], policies: ['app'] });
  dir = await mkdtemp(join(tmpdir(), 'usp-vault-store-'));
  await writeFile(join(dir, 'vault-ca.pem'), vault.ca.cert);
  await writeFile(join(dir, 'other-ca.pem'), (await createTestCa('someone else')).cert);
  const parsed = await parseProviderConfig(
    `
stores:
  - name: vault
    backend: vault
    address: ${vault.url}
    tls: {caFile: vault-ca.pem}
    auth: {method: kubernetes, role: app}
  - name: wrong-ca
    backend: vault
    address: ${vault.url}
    tls: {caFile: other-ca.pem}
    auth: {method: kubernetes, role: app}
    retry: {attempts: 5, baseDelay: 1ms, maxDelay: 1ms}
    breaker: {failures: 2}
`,
    dir,
  );
  if (!parsed.ok) throw new Error(parsed.problems.join('; '));
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  const logger = createLogger({ level: 'debug', destination: stream });
  state = await createStores(parsed.config, { logger, metrics, now: clock.now });
});

afterAll(async () => {
  await closeStores(state?.stores.values() ?? []);
  await vault?.close();
  await rm(dir, { recursive: true, force: true });
});

function podContext(signal = new AbortController().signal): FetchContext {
  const issued = vault.issuePodToken({ namespace: 'shop', serviceAccount: 'app' });
  const tokens = createTokenSource(new Map([['vault', { token: new Secret(issued.token), expiresAt: issued.expiresAt }]]), clock.now);
  return {
    tokenFor: (audience) => tokens.tokenFor(audience),
    identity: { namespace: 'shop', serviceAccount: 'app', podName: 'app-0', podUid: randomUUID() },
    parameters: {},
    secrets: new Map(),
    signal,
  };
}

function storeNamed(name: string) {
  const store = state.stores.get(name);
  if (!store) throw new Error(`no store ${name}`);
  return store;
}

describe('vault store: logs', () => {
  it('adds only its backend to the logger the store layer bound, so every key appears once', async () => {
    const store = storeNamed('vault');
    await store.backend.fetch({ ref: 'secret/data/shop/db', spec: { method: 'GET' } }, podContext());
    const login = lines.find((l) => l.includes('logged in to Vault'));
    expect(login, 'the debug line of the login').toBeDefined();
    // JSON.parse keeps the last of duplicate keys; count them in the raw line instead.
    expect(login!.match(/"store":/g)).toHaveLength(1);
    expect(login!.match(/"backend":/g)).toHaveLength(1);
    expect(JSON.parse(login!)).toMatchObject({ store: 'vault', backend: 'vault', level: 'debug', role: 'app' });
  });
});

describe('vault store: a certificate that does not verify', () => {
  it('is a permanent Unavailable naming tls.caFile, tried once by the guard however many retries it allows, and never opens the circuit', async () => {
    const store = storeNamed('wrong-ca');
    const requestsBefore = vault.counters.requests;
    const retriesBefore = (await metrics.retries.get()).values.find((v) => v.labels['store'] === 'wrong-ca')?.value ?? 0;
    let attempts = 0;
    const controller = new AbortController();
    const err = await store.guard
      .call(
        () => {
          attempts += 1;
          return store.backend.fetch({ ref: 'secret/data/shop/db', spec: { method: 'GET' } }, podContext(controller.signal));
        },
        { signal: controller.signal, deadlineAt: Date.now() + 30_000 },
      )
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(ProviderError);
    const failure = err as ProviderError;
    expect(failure.code).toBe('Unavailable');
    expect(failure.transient).toBe(false);
    expect(failure.message).toContain('TLS certificate');
    expect(failure.message).toContain('tls.caFile');
    expect(attempts).toBe(1);
    const retriesAfter = (await metrics.retries.get()).values.find((v) => v.labels['store'] === 'wrong-ca')?.value ?? 0;
    expect(retriesAfter).toBe(retriesBefore);
    // The handshake failed: no request reached Vault.
    expect(vault.counters.requests).toBe(requestsBefore);
    // A permanent failure says nothing about the store's health: repeated, it leaves the circuit closed.
    for (let i = 0; i < 3; i += 1) {
      await store.guard
        .call(() => store.backend.fetch({ ref: 'secret/data/shop/db', spec: { method: 'GET' } }, podContext(controller.signal)), {
          signal: controller.signal,
          deadlineAt: Date.now() + 30_000,
        })
        .catch(() => undefined);
    }
    expect(store.guard.state).toBe('closed');
  });
});
