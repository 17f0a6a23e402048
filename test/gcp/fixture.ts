import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { gcpSecretManagerBackend, type GcpObjectSpec } from '../../src/backends/gcp/index.js';
import type { FetchContext, FetchResult, StoreBackend } from '../../src/backends/types.js';
import { createTokenSource, type PodToken } from '../../src/identity.js';
import { parseOrThrow } from '../../src/schema.js';
import { Secret } from '../../src/secret.js';
import { startGcpTestServer, type GcpTestServer, type GcpTestServerOptions } from '../servers/gcp.js';

/** A clock tests move instead of sleeping; shared by the stores and the server. */
export function createClock() {
  const clock = {
    t: Date.now(),
    now: (): number => clock.t,
    advance(ms: number): void {
      clock.t += ms;
    },
  };
  return clock;
}

export interface GcpWorld {
  readonly gcp: GcpTestServer;
  /** A store on the test server; `raw` adds or replaces store options. */
  store(raw?: Record<string, unknown>): Promise<StoreBackend<GcpObjectSpec>>;
  /** Reads as pod `namespace/serviceAccount` with a fresh pod token (for `audience`, default the pool's). */
  fetch(store: StoreBackend<GcpObjectSpec>, object: { ref: string; version?: string; spec?: GcpObjectSpec }, pod?: PodSpec): Promise<FetchResult>;
  close(): Promise<void>;
}

export interface PodSpec {
  readonly namespace?: string;
  readonly serviceAccount?: string;
  /** Audience the store asks for (default the pool's). */
  readonly audience?: string;
  /** Audience written into the token (default `audience`). */
  readonly tokenAudience?: string;
}

export async function startGcpWorld(options: GcpTestServerOptions = {}): Promise<GcpWorld> {
  const gcp = await startGcpTestServer(options);
  const dir = await mkdtemp(join(tmpdir(), 'usp-gcp-'));
  await writeFile(join(dir, 'gcp-ca.pem'), gcp.ca.cert);
  const stores: StoreBackend<GcpObjectSpec>[] = [];
  const now = options.now ?? Date.now;
  return {
    gcp,
    async store(raw = {}) {
      const all = {
        project: gcp.projectId,
        audience: gcp.poolAudience,
        endpoints: { sts: gcp.url, iamCredentials: gcp.url, secretManager: gcp.url },
        tls: { caFile: 'gcp-ca.pem' },
        timeout: '5s',
        ...raw,
      };
      const opts = parseOrThrow(gcpSecretManagerBackend.options, all, 'stores[0]');
      const store = await gcpSecretManagerBackend.create({ name: 'gcp', options: opts, restrictsNamespaces: false }, { logger: pino({ level: 'silent' }), baseDir: dir, now });
      stores.push(store);
      return store;
    },
    fetch(store, object, pod = {}) {
      const namespace = pod.namespace ?? 'shop';
      const serviceAccount = pod.serviceAccount ?? 'app';
      const audience = pod.audience ?? gcp.poolAudience;
      const issued = gcp.issuePodToken({ namespace, serviceAccount, audience: pod.tokenAudience ?? audience });
      const tokens = new Map<string, PodToken>([[audience, { token: new Secret(issued.token), expiresAt: issued.expiresAt }]]);
      const source = createTokenSource(tokens, now);
      const ctx: FetchContext = {
        tokenFor: (a) => source.tokenFor(a),
        identity: { namespace, serviceAccount, podName: `${serviceAccount}-0`, podUid: randomUUID() },
        parameters: {},
        secrets: new Map(),
        signal: new AbortController().signal,
      };
      return store.fetch({ ref: object.ref, ...(object.version !== undefined ? { version: object.version } : {}), spec: object.spec ?? {} }, ctx);
    },
    async close() {
      await Promise.all(stores.map((s) => s.close()));
      await gcp.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The bytes of a fetch result as text. */
export function textOf(result: FetchResult): string {
  const content = result.content.reveal();
  if (content.kind !== 'bytes') throw new Error('expected bytes');
  return content.data.toString('utf8');
}
