import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { z } from 'zod';
import { raceSignal } from '../abort.js';
import { tlsVerificationErrors } from './kit/tls.js';
import { ProviderError, type ErrorCode } from '../errors.js';
import { duration } from '../schema.js';
import { Secret } from '../secret.js';
import { fieldsContent } from './kit/content.js';
import type { BackendDefinition, FetchContext, FetchRequest, FetchResult, StoreBackend } from './types.js';
import { isObject, shapeOf } from './kit/json-shape.js';

const templatePlaceholders = ['namespace', 'serviceAccount'] as const;

const roleTemplate = z
  .string()
  .min(1)
  .refine((t) => [...t.matchAll(/\{([^}]*)\}/g)].every((m) => (templatePlaceholders as readonly string[]).includes(m[1]!)), {
    message: 'only {namespace} and {serviceAccount} may appear in a role template',
  });

function loginAuth<M extends 'kubernetes' | 'jwt'>(method: M) {
  return z.strictObject({
    method: z.literal(method).describe(`Log in with the pod's token to Vault's ${method} auth method.`),
    mount: z
      .string()
      .regex(/^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/, 'must be a mount path like "kubernetes" or "clusters/prod"')
      .optional()
      .describe('Auth mount path (`kubernetes`, `clusters/prod`); default: the method name.'),
    audience: z
      .string()
      .default('vault')
      .describe('Audience of the pod token presented at login (the Vault role\'s `audience`).'),
    role: z.string().min(1).optional().describe('Default role when the class names none.'),
    roleTemplate: roleTemplate
      .optional()
      .describe(
        'Derives the role from the pod (`{namespace}-{serviceAccount}`); a class naming another role is refused. A fixed string pins one role. Not with role.',
      ),
  });
}

const auth = z.discriminatedUnion('method', [
  loginAuth('kubernetes'),
  loginAuth('jwt'),
  z.strictObject({
    method: z.literal('token').describe('A Vault token from the volume\'s nodePublishSecretRef key `token`.'),
    allowTokenFromSecret: z
      .boolean()
      .default(false)
      .describe('Must be true for token auth: it trades the pod\'s identity for a shared credential.'),
  }),
]);

const tls = z
  .strictObject({
    caFile: z.string().min(1).optional().describe('CA bundle (PEM) to verify Vault with; the system CAs when absent.'),
    serverName: z.string().min(1).optional().describe('Name to verify in Vault\'s certificate, when it differs from the address.'),
    certFile: z.string().min(1).optional().describe('Client certificate (PEM); goes with keyFile.'),
    keyFile: z.string().min(1).optional().describe('Client certificate key (PEM); goes with certFile.'),
  })
  .refine((t) => (t.certFile === undefined) === (t.keyFile === undefined), {
    message: 'certFile and keyFile go together',
    path: ['certFile'],
  });

const options = z.strictObject({
  address: z
    .url({ protocol: /^https?$/, message: 'must be an http(s) URL like https://vault.vault.svc:8200' })
    .describe('Vault\'s address, like `https://vault.vault.svc:8200`.'),
  namespace: z.string().min(1).optional().describe('Vault Enterprise namespace, sent as X-Vault-Namespace.'),
  tls: tls.optional().describe('TLS settings (https addresses only). Verification is always on. Relative paths resolve against the config file.'),
  auth: auth.describe('How pods log in to Vault.'),
  kvVersion: z
    .union([z.literal('auto'), z.literal(1), z.literal(2)])
    .default('auto')
    .describe('KV engine version; `auto` asks Vault per mount (cached). A fixed version treats every GET as KV.'),
  timeout: duration.default(10_000).describe('Time limit of one HTTP call to Vault.'),
});

export type VaultStoreOptions = z.infer<typeof options>;
type AuthOptions = VaultStoreOptions['auth'];
type LoginAuthOptions = Exclude<AuthOptions, { method: 'token' }>;

export const vaultObjectFields = z
  .strictObject({
    method: z.enum(['GET', 'POST', 'PUT']).default('GET').describe('HTTP method of the read; POST or PUT for dynamic secrets like pki/issue.'),
    args: z
      .record(z.string(), z.unknown())
      .optional()
      .describe('JSON body of a POST or PUT (e.g. `{common_name: ...}` for pki/issue); needs method POST or PUT.'),
  })
  .refine((s) => s.args === undefined || s.method !== 'GET', {
    message: 'args are sent as the JSON body and need method POST or PUT',
    path: ['args'],
  });

export type VaultObjectSpec = z.infer<typeof vaultObjectFields>;

/** HashiCorp Vault, logging in as the pod. */
export const vaultBackend: BackendDefinition<VaultStoreOptions, VaultObjectSpec> = {
    kind: 'vault',
    options,
    objectFields: vaultObjectFields,
    audiences: (opts) => (opts.auth.method === 'token' ? [] : [opts.auth.audience]),
    docs: {
      summary: 'HashiCorp Vault (KV v1 and v2, dynamic secrets), logging in as the pod with its Kubernetes or JWT auth method.',
      guide: '[docs/vault.md](vault.md)',
      ref: 'A Vault path: `secret/data/app` (KV v2, `data/` may be left out), `database/creds/role`.',
    },
    checkStore({ options: opts }) {
      const problems: string[] = [];
      if (opts.auth.method === 'token' && !opts.auth.allowTokenFromSecret) {
        problems.push('auth.allowTokenFromSecret: token auth reads the token from nodePublishSecretRef; set it to true to allow that');
      }
      if (opts.auth.method !== 'token' && opts.auth.role !== undefined && opts.auth.roleTemplate !== undefined) {
        problems.push('auth.roleTemplate: set either role (a default the class may override) or roleTemplate, not both');
      }
      if (opts.tls !== undefined && !opts.address.startsWith('https:')) {
        problems.push('tls: applies only to an https address');
      }
      return problems;
    },
    async create({ name, options: opts }, { baseDir, logger, now }) {
      const http = await createVaultHttp(opts, baseDir);
      return new VaultStore(name, opts, http, now, logger.child({ backend: 'vault' }));
    },
};

// ---------------------------------------------------------------------------------------------
// HTTP

interface VaultCall {
  readonly method: 'GET' | 'POST' | 'PUT';
  /** Path after /v1/, already encoded. */
  readonly path: string;
  readonly token?: string;
  readonly body?: unknown;
  readonly query?: string;
  readonly signal?: AbortSignal;
}

interface VaultResponse {
  readonly status: number;
  readonly body: Record<string, unknown>;
  readonly retryAfterSeconds?: number;
}

const maxResponseBytes = 8 * 1024 * 1024;

interface VaultHttp {
  call(call: VaultCall): Promise<VaultResponse>;
  close(): void;
}

async function createVaultHttp(opts: VaultStoreOptions, baseDir: string): Promise<VaultHttp> {
  const base = new URL(opts.address);
  const secure = base.protocol === 'https:';
  const tlsFiles = secure ? await readTlsFiles(opts.tls, baseDir) : {};
  // One keep-alive agent per store: logins, reads and renewals reuse the TLS sessions.
  const agent = secure
    ? new HttpsAgent({ keepAlive: true, maxSockets: 32, ...tlsFiles, rejectUnauthorized: true })
    : new HttpAgent({ keepAlive: true, maxSockets: 32 });
  const send = secure ? httpsRequest : httpRequest;
  const prefix = base.pathname.replace(/\/+$/, '');
  return {
    call: (call) => sendCall(send, agent, base, prefix, opts, call),
    close: () => agent.destroy(),
  };
}

async function readTlsFiles(t: VaultStoreOptions['tls'], baseDir: string) {
  const read = async (field: string, file: string | undefined) => {
    if (file === undefined) return undefined;
    const path = resolve(baseDir, file);
    try {
      return await readFile(path, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'unknown error';
      throw new ProviderError('InvalidArgument', `tls.${field}: cannot read ${path} (${code})`);
    }
  };
  const [ca, cert, key] = await Promise.all([read('caFile', t?.caFile), read('certFile', t?.certFile), read('keyFile', t?.keyFile)]);
  return { ca, cert, key, servername: t?.serverName };
}

function sendCall(
  send: typeof httpRequest,
  agent: HttpAgent,
  base: URL,
  prefix: string,
  opts: VaultStoreOptions,
  call: VaultCall,
): Promise<VaultResponse> {
  const timeout = AbortSignal.timeout(opts.timeout);
  const signal = call.signal ? AbortSignal.any([call.signal, timeout]) : timeout;
  const payload = call.body === undefined ? undefined : Buffer.from(JSON.stringify(call.body), 'utf8');
  const headers: Record<string, string> = { accept: 'application/json' };
  if (call.token !== undefined) headers['x-vault-token'] = call.token;
  if (opts.namespace !== undefined) headers['x-vault-namespace'] = opts.namespace;
  if (payload) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = String(payload.length);
  }
  const requestOptions: RequestOptions & { servername?: string } = {
    agent,
    protocol: base.protocol,
    hostname: base.hostname.replace(/^\[|\]$/g, ''),
    port: base.port || undefined,
    method: call.method,
    path: `${prefix}/v1/${call.path}${call.query ? `?${call.query}` : ''}`,
    headers,
    signal,
  };
  if (opts.tls?.serverName) requestOptions.servername = opts.tls.serverName;
  return new Promise<VaultResponse>((resolvePromise, reject) => {
    const fail = (err: unknown) => reject(transportError(err, signal, call.signal, opts));
    const req = send(requestOptions, (res) => {
      readResponse(res).then(resolvePromise, fail);
    });
    req.on('error', fail);
    req.end(payload);
  });
}

async function readResponse(res: IncomingMessage): Promise<VaultResponse> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res) {
    size += (chunk as Buffer).length;
    if (size > maxResponseBytes) {
      res.destroy();
      // The same path will answer as much on the next call: not worth retrying within this Mount.
      throw new ProviderError('Unavailable', `Vault's answer exceeded ${maxResponseBytes} bytes`, { transient: false });
    }
    chunks.push(chunk as Buffer);
  }
  const status = res.statusCode ?? 0;
  const text = Buffer.concat(chunks).toString('utf8');
  const retryAfter = Number(res.headers['retry-after']);
  return {
    status,
    body: parseBody(text, status),
    ...(Number.isFinite(retryAfter) && retryAfter >= 0 ? { retryAfterSeconds: retryAfter } : {}),
  };
}

function parseBody(text: string, status: number): Record<string, unknown> {
  if (text.trim() === '') return {};
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) return parsed as Record<string, unknown>;
  } catch {
    // Proxies and load balancers answer with HTML; the status still says what happened.
  }
  if (status >= 200 && status < 300) {
    throw new ProviderError('Unavailable', `Vault answered ${status} with a body that is not a JSON object`);
  }
  return {};
}


function transportError(err: unknown, signal: AbortSignal, callerSignal: AbortSignal | undefined, opts: VaultStoreOptions): ProviderError {
  if (err instanceof ProviderError) return err;
  if (signal.aborted) {
    return callerSignal?.aborted
      ? new ProviderError('DeadlineExceeded', 'the Mount was cancelled or its deadline passed before Vault answered')
      : new ProviderError('DeadlineExceeded', `Vault at ${opts.address} did not answer within ${opts.timeout}ms`);
  }
  const code = (err as NodeJS.ErrnoException).code ?? (err instanceof Error ? err.name : 'unknown error');
  if (tlsVerificationErrors.has(code)) {
    return new ProviderError('Unavailable', `cannot verify the TLS certificate of Vault at ${opts.address} (${code}); check tls.caFile and tls.serverName`);
  }
  return new ProviderError('Unavailable', `cannot reach Vault at ${opts.address} (${code})`);
}

// ---------------------------------------------------------------------------------------------
// Errors

/** Vault's `errors` strings (they describe the failure, not secret data), bounded and scrubbed. */
function describeVaultErrors(body: Record<string, unknown>, scrub: readonly string[]): string {
  const errors = Array.isArray(body['errors']) ? body['errors'].filter((e): e is string => typeof e === 'string') : [];
  const shown = errors.slice(0, 3).map((e) => redact(e.length > 300 ? `${e.slice(0, 300)}...` : e, scrub));
  return shown.length > 0 ? `: ${shown.join('; ')}` : '';
}

function redact(text: string, scrub: readonly string[]): string {
  let out = text;
  for (const s of scrub) if (s.length >= 8) out = out.split(s).join('[REDACTED]');
  return out;
}

function codeForStatus(status: number): ErrorCode {
  if (status === 400 || status === 405) return 'InvalidArgument';
  if (status === 401 || status === 403) return 'PermissionDenied';
  if (status === 404) return 'NotFound';
  if (status === 412 || status === 429 || status >= 500) return 'Unavailable';
  return 'Internal';
}

/** Sealed and standby Vaults say so in `errors` (503 "Vault is sealed"), which the message carries. */
function statusError(res: VaultResponse, message: string, scrub: readonly string[]): ProviderError {
  const code = codeForStatus(res.status);
  return new ProviderError(code, `${message} (HTTP ${res.status})${describeVaultErrors(res.body, scrub)}`, res.retryAfterSeconds);
}

function isOk(res: VaultResponse): boolean {
  return res.status >= 200 && res.status < 300;
}

// ---------------------------------------------------------------------------------------------
// Paths

const segmentPattern = /^[^\s?#%\\\u0000-\u001f]+$/;

/** Validates a ref like `secret/data/app` and returns its segments. */
function splitRef(ref: string): string[] {
  const segments = ref.replace(/^\/+|\/+$/g, '').split('/');
  const bad = segments.some((s) => s === '' || s === '.' || s === '..' || !segmentPattern.test(s));
  if (bad || segments.length < 2) {
    throw new ProviderError('InvalidArgument', 'ref must be a Vault path like "secret/data/app" (no empty, "." or ".." segments, no ?, # or %)');
  }
  return segments;
}

function encodePath(segments: readonly string[]): string {
  return segments.map(encodeURIComponent).join('/');
}

interface MountInfo {
  /** Mount path with trailing slash, e.g. `secret/`. */
  readonly path: string;
  readonly type: string;
  readonly kvVersion?: 1 | 2;
}

function kvVersionOf(info: Record<string, unknown>): 1 | 2 | undefined {
  if (info['type'] !== 'kv' && info['type'] !== 'generic') return undefined;
  const opts = info['options'] as Record<string, unknown> | null | undefined;
  return opts?.['version'] === '2' ? 2 : 1;
}

/** KV v2 refs may omit `data/` after the mount, as users of vault-csi-provider write both. */
function kvV2Segments(segments: readonly string[], mountDepth: number): string[] {
  const rest = segments.slice(mountDepth);
  if (rest[0] === 'data' && rest.length > 1) return [...segments];
  return [...segments.slice(0, mountDepth), 'data', ...rest];
}

function parseVersionPin(version: string | undefined): number | undefined {
  if (version === undefined) return undefined;
  if (!/^[1-9]\d{0,9}$/.test(version)) {
    throw new ProviderError('InvalidArgument', `version must be a KV v2 version number, got ${JSON.stringify(version.slice(0, 40))}`);
  }
  return Number(version);
}

// ---------------------------------------------------------------------------------------------
// Caches

interface TokenEntry {
  readonly token: Secret<string>;
  obtainedAt: number;
  ttlMs: number;
  renewable: boolean;
}

interface HeldToken {
  readonly entry: TokenEntry;
  /** Came from the cache rather than a login this fetch waited for; a 403 may mean it was revoked. */
  readonly cached: boolean;
}

interface LeaseEntry {
  readonly fields: Secret<Record<string, unknown>>;
  readonly leaseId?: Secret<string>;
  readonly renewable: boolean;
  readonly issuedLifetimeMs: number;
  obtainedAt: number;
  lifetimeMs: number;
}

const maxCacheEntries = 10_000;

/** Keeps a map bounded: drops expired entries first, then the oldest. */
function pruneMap<V>(map: Map<string, V>, expired: (v: V) => boolean): void {
  if (map.size < maxCacheEntries) return;
  for (const [k, v] of map) if (expired(v)) map.delete(k);
  for (const k of map.keys()) {
    if (map.size < maxCacheEntries) break;
    map.delete(k);
  }
}

/** Runs one operation per key at a time; later callers join the one in flight. */
function joinOrStart<T>(inflight: Map<string, Promise<T>>, key: string, start: () => Promise<T>): { promise: Promise<T>; joined: boolean } {
  const running = inflight.get(key);
  if (running) return { promise: running, joined: true };
  const promise = start().finally(() => inflight.delete(key));
  inflight.set(key, promise);
  return { promise, joined: false };
}

function cancelled(): ProviderError {
  return new ProviderError('DeadlineExceeded', 'the Mount was cancelled or its deadline passed before Vault answered');
}

/** Canonical JSON (sorted keys) so equal args share one cache entry. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.keys(value as object)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

// ---------------------------------------------------------------------------------------------
// Callers: who a fetch authenticates as

interface Caller {
  /** Cache key of the identity; holds no secret material. */
  readonly key: string;
  /** How errors name the identity, e.g. `role "shop" via auth mount "kubernetes"`. */
  readonly describe: string;
  /** Strings that must never appear in messages. */
  readonly scrub: readonly string[];
  obtain(): Promise<HeldToken>;
  evict(entry: TokenEntry): void;
}

function renderRoleTemplate(template: string, ctx: FetchContext): string {
  return template.replace(/\{(namespace|serviceAccount)\}/g, (_m, name: string) =>
    name === 'namespace' ? ctx.identity.namespace : ctx.identity.serviceAccount,
  );
}

function resolveRole(auth: LoginAuthOptions, ctx: FetchContext): string {
  const asked = ctx.parameters.role;
  if (auth.roleTemplate !== undefined) {
    const derived = renderRoleTemplate(auth.roleTemplate, ctx);
    if (asked !== undefined && asked !== derived) {
      throw new ProviderError(
        'InvalidArgument',
        `role "${asked}" is not allowed: this store derives the Vault role "${derived}" from the pod; omit the role parameter`,
      );
    }
    return derived;
  }
  const role = asked ?? auth.role;
  if (role === undefined || role === '') {
    throw new ProviderError('InvalidArgument', 'no Vault role: set the class parameter "role" or the store\'s auth.role');
  }
  return role;
}

// ---------------------------------------------------------------------------------------------
// The store

class VaultStore implements StoreBackend<VaultObjectSpec> {
  readonly #tokens = new Map<string, TokenEntry>();
  readonly #logins = new Map<string, Promise<TokenEntry>>();
  readonly #renewals = new Map<string, Promise<void>>();
  readonly #leases = new Map<string, LeaseEntry>();
  readonly #dynamicFetches = new Map<string, Promise<FetchResult>>();
  readonly #mounts: MountInfo[] = [];

  constructor(
    readonly name: string,
    private readonly opts: VaultStoreOptions,
    private readonly http: VaultHttp,
    private readonly now: () => number,
    private readonly logger: Logger,
  ) {}

  fetch(request: FetchRequest<VaultObjectSpec>, ctx: FetchContext): Promise<FetchResult> {
    // Logins and dynamic issues are shared between Mounts, so a cancelled Mount stops waiting instead.
    return raceSignal(this.#fetchAs(request, ctx), ctx.signal, cancelled);
  }

  async #fetchAs(request: FetchRequest<VaultObjectSpec>, ctx: FetchContext): Promise<FetchResult> {
    const segments = splitRef(request.ref);
    const versionPin = parseVersionPin(request.version);
    const caller = this.#callerFor(ctx);
    const mount = request.spec.method === 'GET' ? await this.#mountFor(segments, caller, ctx.signal) : undefined;
    if (mount?.kvVersion !== undefined) {
      return this.#readKv(segments, mount, versionPin, caller, ctx.signal);
    }
    if (versionPin !== undefined) {
      throw new ProviderError('InvalidArgument', `version applies only to KV v2 secrets; "${segments.join('/')}" is not one`);
    }
    return this.#fetchDynamicOrPlain(segments, request.spec, caller, ctx.signal);
  }

  async close(): Promise<void> {
    this.http.close();
    this.#tokens.clear();
    this.#leases.clear();
  }

  // --- identity and tokens -------------------------------------------------------------------

  #callerFor(ctx: FetchContext): Caller {
    const auth = this.opts.auth;
    switch (auth.method) {
      case 'token':
        return this.#staticTokenCaller(ctx);
      case 'kubernetes':
      case 'jwt':
        return this.#loginCaller(auth, ctx);
    }
  }

  #staticTokenCaller(ctx: FetchContext): Caller {
    if (this.opts.auth.method !== 'token' || !this.opts.auth.allowTokenFromSecret) {
      throw new ProviderError('PermissionDenied', 'this store does not accept Vault tokens from nodePublishSecretRef');
    }
    const token = ctx.secrets.get('token')?.reveal();
    if (token === undefined || token === '') {
      throw new ProviderError('InvalidArgument', 'this store authenticates with a Vault token from nodePublishSecretRef key "token", which the Mount did not carry');
    }
    const entry: TokenEntry = { token: new Secret(token), obtainedAt: this.now(), ttlMs: 0, renewable: false };
    const digest = createHash('sha256').update(token).digest('hex').slice(0, 32);
    return {
      key: `${ctx.identity.namespace}\u0000${ctx.identity.serviceAccount}\u0000token:${digest}`,
      describe: 'the Vault token from nodePublishSecretRef',
      scrub: [token],
      obtain: async () => ({ entry, cached: false }),
      evict: () => {},
    };
  }

  #loginCaller(auth: LoginAuthOptions, ctx: FetchContext): Caller {
    const role = resolveRole(auth, ctx);
    const mount = auth.mount ?? auth.method;
    // Asked even when a Vault token is cached: a Mount must carry the pod's own token to use it.
    const jwt = ctx.tokenFor(auth.audience);
    const { namespace, serviceAccount } = ctx.identity;
    const key = `${namespace}\u0000${serviceAccount}\u0000${role}`;
    const describe = `role "${role}" via auth mount "${mount}" (service account ${namespace}/${serviceAccount})`;
    const scrub = [jwt];
    return {
      key,
      describe,
      scrub,
      obtain: () => this.#obtainToken(key, () => this.#login(mount, role, jwt, describe, scrub)),
      evict: (entry) => {
        if (this.#tokens.get(key) === entry) this.#tokens.delete(key);
      },
    };
  }

  async #obtainToken(key: string, login: () => Promise<TokenEntry>): Promise<HeldToken> {
    const cached = this.#tokens.get(key);
    if (cached && this.#isUsable(cached)) {
      if (cached.renewable && this.#isPastHalfLife(cached)) await this.#renewToken(key, cached);
      const current = this.#tokens.get(key);
      if (current && this.#isUsable(current)) return { entry: current, cached: true };
    }
    this.#tokens.delete(key);
    const entry = await joinOrStart(this.#logins, key, async () => {
      const fresh = await login();
      pruneMap(this.#tokens, (t) => !this.#isUsable(t));
      this.#tokens.set(key, fresh);
      return fresh;
    }).promise;
    return { entry, cached: false };
  }

  /** Usable until shortly before its TTL ends, so a read never races the expiry. */
  #isUsable(entry: TokenEntry): boolean {
    if (entry.ttlMs <= 0) return true;
    const margin = Math.min(entry.ttlMs / 10, 60_000);
    return this.now() < entry.obtainedAt + entry.ttlMs - margin;
  }

  #isPastHalfLife(entry: TokenEntry): boolean {
    return entry.ttlMs > 0 && this.now() >= entry.obtainedAt + entry.ttlMs / 2;
  }

  async #renewToken(key: string, entry: TokenEntry): Promise<void> {
    await joinOrStart(this.#renewals, key, async () => {
      const token = entry.token.reveal();
      try {
        const res = await this.http.call({ method: 'POST', path: 'auth/token/renew-self', token, body: {} });
        const renewed = isOk(res) ? readAuth(res.body) : undefined;
        if (renewed) {
          entry.obtainedAt = this.now();
          entry.ttlMs = renewed.ttlMs;
          entry.renewable = renewed.renewable;
          this.logger.debug({ ttlMs: renewed.ttlMs }, 'renewed Vault token');
        } else if (res.status === 403) {
          this.#tokens.delete(key);
        } else if (res.status === 400) {
          // "not renewable" or past its max TTL: use it as it is until it nears expiry.
          entry.renewable = false;
        }
      } catch {
        // A failed renewal leaves the token as it was; it is still valid until its TTL.
      }
    }).promise;
  }

  async #login(mount: string, role: string, jwt: string, describe: string, scrub: readonly string[]): Promise<TokenEntry> {
    const res = await this.http.call({ method: 'POST', path: `auth/${encodePath(mount.split('/'))}/login`, body: { role, jwt } });
    if (!isOk(res)) throw statusError(res, `Vault login failed for ${describe}`, scrub);
    const parsed = readAuth(res.body);
    if (!parsed) throw new ProviderError('Unavailable', `Vault login for ${describe} answered without a client token`);
    this.logger.debug({ mount, role, ttlMs: parsed.ttlMs }, 'logged in to Vault');
    return { token: new Secret(parsed.token), obtainedAt: this.now(), ttlMs: parsed.ttlMs, renewable: parsed.renewable };
  }

  /** Calls Vault with the caller's token; a 403 with a cached token evicts it and logs in again once. */
  async #callAs(caller: Caller, call: Omit<VaultCall, 'token'>): Promise<VaultResponse> {
    const held = await caller.obtain();
    const res = await this.http.call({ ...call, token: held.entry.token.reveal() });
    if (res.status !== 403 || !held.cached) return res;
    caller.evict(held.entry);
    const again = await caller.obtain();
    return this.http.call({ ...call, token: again.entry.token.reveal() });
  }

  // --- KV ------------------------------------------------------------------------------------

  async #mountFor(segments: readonly string[], caller: Caller, signal: AbortSignal): Promise<MountInfo | undefined> {
    if (this.opts.kvVersion !== 'auto') return { path: `${segments[0]}/`, type: 'kv', kvVersion: this.opts.kvVersion };
    const joined = `${segments.join('/')}/`;
    const known = this.#mounts.filter((m) => joined.startsWith(m.path)).sort((a, b) => b.path.length - a.path.length)[0];
    if (known) return known;
    const path = encodePath(segments);
    const res = await this.#callAs(caller, { method: 'GET', path: `sys/internal/ui/mounts/${path}`, signal });
    // Vaults without the preflight endpoint: read the path as given.
    if (res.status === 404 || res.status === 405) return undefined;
    if (!isOk(res)) throw this.#readError(res, caller, 'looking up the mount of', segments);
    const data = res.body['data'];
    if (!isObject(data)) {
      if (res.status === 204) return undefined;
      // Read as a plain path, a KV v2 answer would mount its envelope: refuse instead.
      throw unexpectedShape(['sys/internal/ui/mounts', ...segments], '"data"', data);
    }
    const mountPath = typeof data['path'] === 'string' ? data['path'] : undefined;
    if (!mountPath || !joined.startsWith(mountPath)) return undefined;
    const kvVersion = kvVersionOf(data);
    const info: MountInfo = { path: mountPath, type: String(data['type']), ...(kvVersion ? { kvVersion } : {}) };
    if (this.#mounts.length < 1000) this.#mounts.push(info);
    return info;
  }

  async #readKv(segments: readonly string[], mount: MountInfo, versionPin: number | undefined, caller: Caller, signal: AbortSignal): Promise<FetchResult> {
    if (mount.kvVersion === 1) {
      if (versionPin !== undefined) {
        throw new ProviderError('InvalidArgument', `version applies only to KV v2; mount "${mount.path}" is KV v1`);
      }
      const res = await this.#callAs(caller, { method: 'GET', path: encodePath(segments), signal });
      if (!isOk(res)) throw this.#readError(res, caller, 'reading', segments);
      return { content: fieldsContent(requireData(res, segments)) };
    }
    const depth = mount.path.replace(/\/$/, '').split('/').length;
    const full = kvV2Segments(segments, depth);
    const query = versionPin === undefined ? undefined : `version=${versionPin}`;
    const res = await this.#callAs(caller, { method: 'GET', path: encodePath(full), signal, ...(query ? { query } : {}) });
    if (!isOk(res)) throw this.#kvV2Error(res, caller, full, versionPin);
    return unwrapKvV2(res, full, versionPin);
  }

  #kvV2Error(res: VaultResponse, caller: Caller, segments: readonly string[], versionPin: number | undefined): ProviderError {
    const outer = res.body['data'];
    const metadata = isObject(outer) ? outer['metadata'] : undefined;
    if (res.status === 404 && isObject(metadata)) {
      const state = metadata['destroyed'] === true ? 'destroyed' : 'deleted';
      return new ProviderError('NotFound', `${whichVersion(versionPin)} of "${segments.join('/')}" was ${state}`);
    }
    return this.#readError(res, caller, 'reading', segments);
  }

  #readError(res: VaultResponse, caller: Caller, doing: string, segments: readonly string[]): ProviderError {
    const path = segments.join('/');
    if (res.status === 404) return new ProviderError('NotFound', `no secret at "${path}"${describeVaultErrors(res.body, caller.scrub)}`);
    if (res.status === 403) return statusError(res, `Vault denied ${doing} "${path}" to ${caller.describe}`, caller.scrub);
    return statusError(res, `Vault failed ${doing} "${path}"`, caller.scrub);
  }

  // --- dynamic secrets -----------------------------------------------------------------------

  #fetchDynamicOrPlain(segments: readonly string[], spec: VaultObjectSpec, caller: Caller, signal: AbortSignal): Promise<FetchResult> {
    const key = [caller.key, spec.method, segments.join('/'), canonicalJson(spec.args ?? null)].join('\u0000');
    // Shared across Mounts of one identity so concurrent rotations mint one credential, not several.
    const { promise } = joinOrStart(this.#dynamicFetches, key, () => this.#reuseOrIssue(key, segments, spec, caller));
    return raceSignal(promise, signal, cancelled);
  }

  async #reuseOrIssue(key: string, segments: readonly string[], spec: VaultObjectSpec, caller: Caller): Promise<FetchResult> {
    const held = this.#leases.get(key);
    if (held && (this.#isFresh(held) || (await this.#renewLease(held, caller)))) return leaseResult(held);
    try {
      return await this.#issue(key, segments, spec, caller);
    } catch (err) {
      // The held credential is still valid: better than failing the Mount while Vault is down.
      if (held && this.#isAlive(held) && isTransient(err)) return leaseResult(held);
      this.#leases.delete(key);
      throw err;
    }
  }

  async #issue(key: string, segments: readonly string[], spec: VaultObjectSpec, caller: Caller): Promise<FetchResult> {
    const call = { method: spec.method, path: encodePath(segments), ...(spec.args ? { body: spec.args } : {}) };
    const res = await this.#callAs(caller, call);
    if (!isOk(res)) throw this.#readError(res, caller, spec.method === 'GET' ? 'reading' : `${spec.method} to`, segments);
    const data = requireData(res, segments);
    const entry = this.#leaseEntryFor(res.body, data);
    this.#leases.delete(key);
    if (entry) {
      pruneMap(this.#leases, (e) => this.now() >= e.obtainedAt + e.lifetimeMs);
      this.#leases.set(key, entry);
      this.logger.debug({ path: segments.join('/'), lifetimeMs: entry.lifetimeMs }, 'issued a Vault dynamic secret');
      return leaseResult(entry);
    }
    return { content: fieldsContent(data) };
  }

  /** Reused until two-thirds of its lifetime: late enough to spare Vault, early enough for the app to switch. */
  #isFresh(entry: LeaseEntry): boolean {
    return this.now() < entry.obtainedAt + (entry.lifetimeMs * 2) / 3;
  }

  /** Still valid, with a margin so the app does not receive a credential about to lapse. */
  #isAlive(entry: LeaseEntry): boolean {
    return this.now() < entry.obtainedAt + entry.lifetimeMs * 0.9;
  }

  async #renewLease(entry: LeaseEntry, caller: Caller): Promise<boolean> {
    if (!entry.renewable || !entry.leaseId || !this.#isAlive(entry)) return false;
    const increment = Math.round(entry.issuedLifetimeMs / 1000);
    try {
      const res = await this.#callAs(caller, { method: 'PUT', path: 'sys/leases/renew', body: { lease_id: entry.leaseId.reveal(), increment } });
      const duration = Number(res.body['lease_duration']);
      // Near the role's max TTL Vault grants less and less; a fresh credential is better than many renewals.
      if (!isOk(res) || !(duration * 1000 >= entry.issuedLifetimeMs / 3)) return false;
      entry.obtainedAt = this.now();
      entry.lifetimeMs = duration * 1000;
      this.logger.debug({ lifetimeMs: entry.lifetimeMs }, 'renewed a Vault lease');
      return true;
    } catch {
      return false;
    }
  }

  #leaseEntryFor(body: Record<string, unknown>, data: Record<string, unknown>): LeaseEntry | undefined {
    const leaseId = typeof body['lease_id'] === 'string' ? body['lease_id'] : '';
    const leaseSeconds = Number(body['lease_duration']);
    // KV v1 answers carry a lease_duration (its refresh interval) but no lease id: not dynamic.
    if (leaseId !== '' && leaseSeconds > 0) {
      const lifetimeMs = leaseSeconds * 1000;
      return {
        fields: new Secret(data),
        leaseId: new Secret(leaseId),
        renewable: body['renewable'] === true,
        issuedLifetimeMs: lifetimeMs,
        obtainedAt: this.now(),
        lifetimeMs,
      };
    }
    const expiration = Number(data['expiration']);
    if (typeof data['certificate'] === 'string' && expiration > 0) {
      const lifetimeMs = expiration * 1000 - this.now();
      if (lifetimeMs <= 0) return undefined;
      return { fields: new Secret(data), renewable: false, issuedLifetimeMs: lifetimeMs, obtainedAt: this.now(), lifetimeMs };
    }
    return undefined;
  }
}

function isTransient(err: unknown): boolean {
  return err instanceof ProviderError && (err.code === 'Unavailable' || err.code === 'DeadlineExceeded');
}

function readAuth(body: Record<string, unknown>): { token: string; ttlMs: number; renewable: boolean } | undefined {
  const auth = body['auth'] as Record<string, unknown> | null | undefined;
  const token = auth?.['client_token'];
  if (typeof token !== 'string' || token === '') return undefined;
  const seconds = Number(auth?.['lease_duration']);
  return { token, ttlMs: Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 0, renewable: auth?.['renewable'] === true };
}

/**
 * A 2xx whose JSON object has the wrong shape (another API, a proxy, a broken plugin): Vault
 * misbehaved, the secret is not missing. Transient like the other malformed answers, so the
 * store's retries apply; the message names the path and the shape, never the body.
 */
function unexpectedShape(segments: readonly string[], field: string, value: unknown): ProviderError {
  return new ProviderError(
    'Unavailable',
    `Vault answered "${segments.join('/')}" with an unexpected response shape (${field} is ${shapeOf(value)}, not an object)`,
    { transient: true },
  );
}

function whichVersion(versionPin: number | undefined): string {
  return versionPin === undefined ? 'the current version' : `version ${versionPin}`;
}

/** The `data` object of a 2xx answer. Only a 204 (no content at all) is Vault saying there is nothing. */
function requireData(res: VaultResponse, segments: readonly string[]): Record<string, unknown> {
  const data = res.body['data'];
  if (isObject(data)) return data;
  if (res.status === 204) throw new ProviderError('NotFound', `Vault returned no data for "${segments.join('/')}"`);
  throw unexpectedShape(segments, '"data"', data);
}

function unwrapKvV2(res: VaultResponse, segments: readonly string[], versionPin: number | undefined): FetchResult {
  const outer = requireData(res, segments);
  const data = outer['data'];
  const metadata = outer['metadata'];
  if (!isObject(data)) {
    // Vault answers a deleted or destroyed version with 404 (see #kvV2Error); accept the same
    // metadata on a 2xx, but only when it says so: any other non-object is a malformed answer.
    const deleted = isObject(metadata) && typeof metadata['deletion_time'] === 'string' && metadata['deletion_time'] !== '';
    const destroyed = isObject(metadata) && metadata['destroyed'] === true;
    if ((data === null || data === undefined) && (deleted || destroyed)) {
      throw new ProviderError('NotFound', `${whichVersion(versionPin)} of "${segments.join('/')}" was ${destroyed ? 'destroyed' : 'deleted'}`);
    }
    throw unexpectedShape(segments, '"data.data"', data);
  }
  const version = isObject(metadata) ? metadata['version'] : undefined;
  return {
    content: fieldsContent(data),
    ...(typeof version === 'number' ? { version: String(version) } : {}),
  };
}

function leaseResult(entry: LeaseEntry): FetchResult {
  // Each Mount gets its own copy: the cached answer must not change under a later transform.
  return { content: fieldsContent(structuredClone(entry.fields.reveal())) };
}
