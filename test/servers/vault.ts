/**
 * A protocol-faithful HashiCorp Vault test server: the HTTP API subset the `vault` backend uses,
 * with Vault's paths, JSON bodies, status codes and error bodies, over real HTTPS from a test CA.
 *
 * Small API:
 *   const vault = await startVaultTestServer({ now });          // https://127.0.0.1:<port>
 *   vault.enableKv('secret', 2); vault.writeKv('secret', 'app', { password: 'x' });
 *   vault.definePolicy('app', { 'secret/data/app': ['read'] });
 *   vault.defineRole({ name: 'app', boundServiceAccountNames: ['app'], boundNamespaces: ['shop'], policies: ['app'] });
 *   const { token } = vault.issuePodToken({ namespace: 'shop', serviceAccount: 'app' });
 *   vault.counters.logins; vault.seal(); vault.revokeAllTokens(); await vault.connections(); await vault.close();
 *   vault.setAnswer('secret/data/app', { status: 200, body: { data: 'x' } });   // a custom body for a path
 * KV folders answer LIST (or GET ?list=true) with the policy capability `list`: v1 at the folder's
 * path, v2 at `<mount>/metadata/<folder>`; an empty or missing folder is 404 (vault.counters.lists).
 * Everything takes `{ namespace }` for Enterprise namespaces (X-Vault-Namespace); "" is the root.
 * Faults of the shared vocabulary (./faults.ts): vault.inject({ kind: 'reset' }, { times, match }), matched
 * against the request path (`/v1/secret/data/app`); vault.faults.applied counts them.
 */
import 'reflect-metadata';
import { randomBytes, randomUUID, webcrypto } from 'node:crypto';
import { once } from 'node:events';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import * as x509 from '@peculiar/x509';
import { createPodTokenSigner } from './pod-tokens.js';
import { createFaultInjector, type Fault, type FaultInjector, type InjectOptions } from './faults.js';
import { createTestCa, type TestCa } from './tls.js';
import { listenOnLoopback } from './listen.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export interface VaultTestServerOptions {
  /** Serve HTTPS with a certificate from this CA (default: a new CA). */
  readonly ca?: TestCa;
  /** Plain HTTP instead of HTTPS. */
  readonly http?: boolean;
  /** DNS names of the server certificate besides 127.0.0.1 (default ["localhost"]). */
  readonly dnsNames?: string[];
  /** Require a client certificate signed by the CA. */
  readonly requireClientCert?: boolean;
  /** Clock in ms since the epoch for token, lease and certificate lifetimes (default Date.now). */
  readonly now?: () => number;
}

export interface RoleDefinition {
  readonly name: string;
  /** Auth mount: "kubernetes" (default) or "jwt" or any path. */
  readonly mount?: string;
  readonly boundServiceAccountNames: string[];
  readonly boundNamespaces: string[];
  /** Required audience of the pod token (default "vault"). */
  readonly audience?: string;
  readonly policies: string[];
  readonly ttlSeconds?: number;
  readonly maxTtlSeconds?: number;
  readonly renewable?: boolean;
  readonly namespace?: string;
}

export interface DatabaseRoleDefinition {
  readonly ttlSeconds: number;
  readonly maxTtlSeconds?: number;
  readonly renewable?: boolean;
}

export interface PkiRoleDefinition {
  readonly ttlSeconds: number;
  readonly maxTtlSeconds?: number;
  /** Common names must equal or end in ".<domain>" of one of these; empty allows any. */
  readonly allowedDomains?: string[];
}

export type Capability = 'read' | 'create' | 'update' | 'list' | 'deny';

export interface VaultCounters {
  requests: number;
  logins: number;
  /** KV reads (v1 and v2). */
  reads: number;
  /** KV LIST calls (v1 and v2). */
  lists: number;
  preflights: number;
  /** Dynamic secrets minted: database credentials and PKI certificates. */
  issues: number;
  leaseRenewals: number;
  tokenRenewals: number;
  lookups: number;
}

export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly namespace: string;
  readonly status: number;
  readonly hadToken: boolean;
}

export interface VaultTestServer {
  readonly url: string;
  /** The CA that signed the server certificate (PEM in `ca.cert`). */
  readonly ca: TestCa;
  readonly counters: VaultCounters;
  /** Method, path, namespace and status of every request; never bodies or tokens. */
  readonly requests: RecordedRequest[];
  /** Every Vault token issued so far (to check that none leaks into messages). */
  readonly issuedTokens: string[];
  issuePodToken(options: { namespace: string; serviceAccount: string; audience?: string; ttlSeconds?: number; podName?: string }): {
    token: string;
    expiresAt: number;
  };
  enableKv(path: string, version: 1 | 2, options?: { namespace?: string }): void;
  /** Writes a new version (KV v2) or replaces the value (KV v1); returns the version. */
  writeKv(mount: string, key: string, data: Record<string, unknown>, options?: { namespace?: string }): number;
  deleteKvVersion(mount: string, key: string, version: number, options?: { namespace?: string }): void;
  destroyKvVersion(mount: string, key: string, version: number, options?: { namespace?: string }): void;
  enableDatabase(path?: string, options?: { namespace?: string }): void;
  defineDatabaseRole(name: string, role: DatabaseRoleDefinition, options?: { mount?: string; namespace?: string }): void;
  enablePki(path?: string, options?: { namespace?: string }): void;
  definePkiRole(name: string, role: PkiRoleDefinition, options?: { mount?: string; namespace?: string }): void;
  /** Paths are Vault policy globs: a trailing `*` matches any suffix, `+` one segment. */
  definePolicy(name: string, rules: Record<string, Capability[]>, options?: { namespace?: string }): void;
  defineRole(role: RoleDefinition): void;
  /** A token as `vault token create` would make (for token auth from nodePublishSecretRef). */
  createToken(options: { policies: string[]; ttlSeconds?: number; namespace?: string }): string;
  revokeAllTokens(): void;
  seal(): void;
  unseal(): void;
  /** The next `count` requests answer `status` with `{"errors": errors}` (and Retry-After if given). */
  failNext(count: number, status: number, errors: string[], retryAfterSeconds?: number): void;
  /** Every answer waits this long first (0 to stop). */
  setDelay(ms: number): void;
  /**
   * Answers every request for `path` (`secret/data/app`, `sys/internal/ui/mounts/secret/app`) that
   * carries a valid token with `status` and `body` (JSON-encoded) instead of Vault's own answer,
   * until called again with `undefined`: shapes a broken plugin or a proxy in front of Vault sends.
   */
  setAnswer(path: string, answer: { status: number; body: unknown } | undefined, options?: { namespace?: string }): void;
  /** A fault for the next `times` requests whose path matches (see ./faults.ts). */
  inject(fault: Fault, options?: InjectOptions): void;
  readonly faults: FaultInjector;
  /** Client connections open right now (to check that a closed store lets go of its sockets). */
  connections(): Promise<number>;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// State

interface KvVersion {
  data: Record<string, unknown>;
  createdTime: string;
  deletionTime: string;
  destroyed: boolean;
}

type Mount =
  | { type: 'kv'; version: 1; values: Map<string, Record<string, unknown>> }
  | { type: 'kv'; version: 2; secrets: Map<string, KvVersion[]> }
  | { type: 'database'; roles: Map<string, DatabaseRoleDefinition> }
  | { type: 'pki'; roles: Map<string, PkiRoleDefinition> };

interface NamespaceState {
  mounts: Map<string, Mount>;
  roles: Map<string, RoleDefinition>;
  policies: Map<string, Record<string, Capability[]>>;
}

interface TokenRecord {
  namespace: string;
  policies: string[];
  accessor: string;
  issuedAt: number;
  expiresAt: number;
  maxExpiresAt: number;
  ttlSeconds: number;
  renewable: boolean;
  meta: Record<string, string>;
}

interface LeaseRecord {
  namespace: string;
  expiresAt: number;
  maxExpiresAt: number;
  renewable: boolean;
  ttlSeconds: number;
}

interface Reply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

interface Request {
  method: string;
  path: string;
  query: URLSearchParams;
  namespace: string;
  token?: string;
  body: Record<string, unknown>;
}

const permissionDenied: Reply = { status: 403, body: { errors: ['1 error occurred:\n\t* permission denied\n\n'] } };
const notFound: Reply = { status: 404, body: { errors: [] } };
/** `LIST path`, or the `GET path?list=true` form clients without a LIST verb send. */
const isList = (req: Request) => req.method === 'LIST' || (req.method === 'GET' && req.query.get('list') === 'true');
const unsupported: Reply = { status: 405, body: { errors: ['1 error occurred:\n\t* unsupported operation\n\n'] } };
const badRequest = (message: string): Reply => ({ status: 400, body: { errors: [message] } });
const denied = (message: string): Reply => ({ status: 403, body: { errors: [message] } });
const kvV1RefreshSeconds = 2_764_800;


function envelope(fields: Record<string, unknown>): Record<string, unknown> {
  return {
    request_id: randomUUID(),
    lease_id: '',
    renewable: false,
    lease_duration: 0,
    data: null,
    wrap_info: null,
    warnings: null,
    auth: null,
    ...fields,
  };
}

/** Vault policy globs: `*` at the end matches any suffix, `+` matches exactly one segment. */
function matchesPolicyPath(pattern: string, path: string): boolean {
  const prefix = pattern.endsWith('*');
  const parts = (prefix ? pattern.slice(0, -1) : pattern).split('/');
  const target = path.split('/');
  for (let i = 0; i < parts.length; i += 1) {
    const part = parts[i]!;
    const actual = target[i];
    if (actual === undefined) return false;
    if (i === parts.length - 1 && prefix) return actual.startsWith(part);
    if (part !== '+' && part !== actual) return false;
  }
  return prefix || parts.length === target.length;
}

function parseTtl(value: unknown): number | undefined {
  if (typeof value === 'number') return value;
  if (typeof value !== 'string' || value === '') return undefined;
  const match = /^(\d+)(s|m|h)?$/.exec(value);
  if (!match) return undefined;
  return Number(match[1]) * ({ s: 1, m: 60, h: 3600 }[match[2] ?? 's'] ?? 1);
}

function isoSeconds(ms: number): string {
  return new Date(ms).toISOString();
}

// ---------------------------------------------------------------------------------------------

export async function startVaultTestServer(options: VaultTestServerOptions = {}): Promise<VaultTestServer> {
  const now = options.now ?? Date.now;
  const ca = options.ca ?? (await createTestCa('vault test CA'));
  const podTokens = createPodTokenSigner();
  const namespaces = new Map<string, NamespaceState>();
  const tokens = new Map<string, TokenRecord>();
  const leases = new Map<string, LeaseRecord>();
  const counters: VaultCounters = { requests: 0, logins: 0, reads: 0, lists: 0, preflights: 0, issues: 0, leaseRenewals: 0, tokenRenewals: 0, lookups: 0 };
  const requests: RecordedRequest[] = [];
  const issuedTokens: string[] = [];
  const failures: Reply[] = [];
  const answers = new Map<string, Reply>();
  const answerKey = (namespace: string, path: string) => `${namespace.replace(/^\/+|\/+$/g, '')}\u0000${path.replace(/^\/+|\/+$/g, '')}`;
  let sealed = false;
  let delayMs = 0;
  const injected = createFaultInjector();
  const issuer = await loadIssuer(ca);

  const ns = (name = ''): NamespaceState => {
    const key = name.replace(/^\/+|\/+$/g, '');
    let state = namespaces.get(key);
    if (!state) {
      state = { mounts: new Map(), roles: new Map(), policies: new Map() };
      namespaces.set(key, state);
    }
    return state;
  };

  const mountOf = <T extends Mount['type']>(path: string, type: T, namespace?: string): Extract<Mount, { type: T }> => {
    const mount = ns(namespace).mounts.get(`${path.replace(/\/+$/, '')}/`);
    if (!mount || mount.type !== type) throw new Error(`no ${type} mount at ${path}`);
    return mount as Extract<Mount, { type: T }>;
  };

  // --- pod tokens --------------------------------------------------------------------------

  // --- tokens ------------------------------------------------------------------------------

  function mintToken(namespace: string, role: RoleDefinition, meta: Record<string, string>): { token: string; record: TokenRecord } {
    const token = `hvs.${randomBytes(18).toString('base64url')}`;
    const ttlSeconds = role.ttlSeconds ?? 3600;
    const issuedAt = now();
    const record: TokenRecord = {
      namespace,
      policies: ['default', ...role.policies],
      accessor: randomBytes(12).toString('base64url'),
      issuedAt,
      expiresAt: issuedAt + ttlSeconds * 1000,
      maxExpiresAt: issuedAt + (role.maxTtlSeconds ?? ttlSeconds * 24) * 1000,
      ttlSeconds,
      renewable: role.renewable ?? true,
      meta,
    };
    tokens.set(token, record);
    issuedTokens.push(token);
    return { token, record };
  }

  function authBody(token: string, record: TokenRecord, leaseSeconds: number): Record<string, unknown> {
    return envelope({
      auth: {
        client_token: token,
        accessor: record.accessor,
        policies: record.policies,
        token_policies: record.policies,
        metadata: record.meta,
        lease_duration: leaseSeconds,
        renewable: record.renewable,
        entity_id: randomUUID(),
        token_type: 'service',
        orphan: true,
      },
    });
  }

  function activeToken(req: Request): TokenRecord | undefined {
    if (!req.token) return undefined;
    const record = tokens.get(req.token);
    if (!record || record.expiresAt <= now() || record.namespace !== req.namespace) return undefined;
    return record;
  }

  function rulesOf(record: TokenRecord): [string, Capability[]][] {
    const state = ns(record.namespace);
    return record.policies.flatMap((name) => Object.entries(state.policies.get(name) ?? {}));
  }

  function capabilities(record: TokenRecord, path: string): Set<Capability> {
    const caps = new Set<Capability>();
    for (const [pattern, granted] of rulesOf(record)) {
      if (matchesPolicyPath(pattern, path)) granted.forEach((c) => caps.add(c));
    }
    return caps;
  }

  /** Vault answers the mount preflight to tokens with some capability on the path or under its mount. */
  function mayPreflight(record: TokenRecord, mountPath: string, path: string): boolean {
    const caps = capabilities(record, path);
    if (caps.has('deny')) return false;
    return caps.size > 0 || rulesOf(record).some(([pattern, granted]) => pattern.startsWith(mountPath) && !granted.includes('deny'));
  }

  function allows(record: TokenRecord, path: string, method: string): boolean {
    const caps = capabilities(record, path);
    if (caps.has('deny')) return false;
    return method === 'GET' ? caps.has('read') : caps.has('update') || caps.has('create');
  }

  // --- handlers ----------------------------------------------------------------------------

  function login(req: Request, mount: string): Reply {
    counters.logins += 1;
    const roleName = req.body['role'];
    const jwt = req.body['jwt'];
    if (typeof roleName !== 'string' || roleName === '') return badRequest('missing role');
    if (typeof jwt !== 'string' || jwt === '') return badRequest('missing jwt');
    const role = ns(req.namespace).roles.get(`${mount}\u0000${roleName}`);
    if (!role) return badRequest(`invalid role name "${roleName}"`);
    const claims = podTokens.verify(jwt);
    if (!claims) return permissionDenied;
    const k8s = claims['kubernetes.io'] as { namespace?: string; serviceaccount?: { name?: string } } | undefined;
    const saNamespace = k8s?.namespace ?? '';
    const saName = k8s?.serviceaccount?.name ?? '';
    const audiences = ([] as unknown[]).concat(claims['aud']);
    const bound = (list: string[], value: string) => list.includes('*') || list.includes(value);
    if (typeof claims['exp'] !== 'number' || claims['exp'] * 1000 <= now()) return permissionDenied;
    if (!audiences.includes(role.audience ?? 'vault')) {
      return denied('invalid audience (aud) claim: audience claim does not match any expected audience');
    }
    if (!bound(role.boundNamespaces, saNamespace)) return denied('namespace not authorized');
    if (!bound(role.boundServiceAccountNames, saName)) return denied('service account name not authorized');
    const { token, record } = mintToken(req.namespace, role, {
      role: roleName,
      service_account_name: saName,
      service_account_namespace: saNamespace,
    });
    return { status: 200, body: authBody(token, record, record.ttlSeconds) };
  }

  function lookupSelf(record: TokenRecord): Reply {
    counters.lookups += 1;
    return {
      status: 200,
      body: envelope({
        data: {
          accessor: record.accessor,
          creation_time: Math.floor(record.issuedAt / 1000),
          creation_ttl: record.ttlSeconds,
          expire_time: isoSeconds(record.expiresAt),
          issue_time: isoSeconds(record.issuedAt),
          meta: record.meta,
          policies: record.policies,
          renewable: record.renewable,
          ttl: Math.max(0, Math.floor((record.expiresAt - now()) / 1000)),
          type: 'service',
        },
      }),
    };
  }

  function renewSelf(req: Request, record: TokenRecord): Reply {
    counters.tokenRenewals += 1;
    if (!record.renewable) return badRequest('lease is not renewable');
    const increment = parseTtl(req.body['increment']) ?? record.ttlSeconds;
    record.expiresAt = Math.min(now() + increment * 1000, record.maxExpiresAt);
    const leaseSeconds = Math.max(0, Math.floor((record.expiresAt - now()) / 1000));
    return { status: 200, body: authBody(req.token!, record, leaseSeconds) };
  }

  function renewLease(req: Request): Reply {
    counters.leaseRenewals += 1;
    const leaseId = req.body['lease_id'];
    const lease = typeof leaseId === 'string' ? leases.get(leaseId) : undefined;
    if (!lease || lease.namespace !== req.namespace || lease.expiresAt <= now()) return badRequest('lease not found');
    if (!lease.renewable) return badRequest('lease is not renewable');
    const increment = parseTtl(req.body['increment']) ?? lease.ttlSeconds;
    lease.expiresAt = Math.min(now() + increment * 1000, lease.maxExpiresAt);
    const leaseSeconds = Math.max(0, Math.floor((lease.expiresAt - now()) / 1000));
    return { status: 200, body: envelope({ lease_id: leaseId, renewable: true, lease_duration: leaseSeconds }) };
  }

  function findMount(namespace: string, path: string): [string, Mount] | undefined {
    const candidates = [...ns(namespace).mounts].filter(([p]) => `${path}/`.startsWith(p));
    return candidates.sort((a, b) => b[0].length - a[0].length)[0];
  }

  function preflight(req: Request, record: TokenRecord, path: string): Reply {
    counters.preflights += 1;
    const found = findMount(req.namespace, path);
    if (!found || !mayPreflight(record, found[0], path)) {
      return { status: 403, body: { errors: [`preflight capability check returned 403, please ensure client's policies grant access to path "${path}/"`] } };
    }
    const [mountPath, mount] = found;
    return {
      status: 200,
      body: envelope({
        data: {
          accessor: `${mount.type}_${mountPath.length.toString(16)}`,
          config: { default_lease_ttl: 0, max_lease_ttl: 0, force_no_cache: false },
          description: '',
          external_entropy_access: false,
          local: false,
          options: mount.type === 'kv' ? { version: String(mount.version) } : null,
          path: mountPath,
          seal_wrap: false,
          type: mount.type,
          uuid: randomUUID(),
        },
      }),
    };
  }

  /** LIST of a KV folder: the keys one level below it, folders ending in `/`; an empty folder is 404. */
  function listKv(mount: Extract<Mount, { type: 'kv' }>, rest: string): Reply {
    let folder = rest.replace(/^\/+/, '');
    let names: Iterable<string>;
    if (mount.version === 1) names = mount.values.keys();
    else {
      if (!folder.startsWith('metadata/')) return unsupported;
      folder = folder.slice('metadata/'.length);
      // Vault lists a KV v2 secret while any version's metadata remains, even deleted ones.
      names = mount.secrets.keys();
    }
    counters.lists += 1;
    const keys = new Set<string>();
    for (const name of names) {
      if (!name.startsWith(folder)) continue;
      const below = name.slice(folder.length).split('/');
      keys.add(below.length > 1 ? `${below[0]}/` : below[0]!);
    }
    if (keys.size === 0) return notFound;
    return { status: 200, body: envelope({ data: { keys: [...keys].sort() } }) };
  }

  function readKvV1(req: Request, mount: Extract<Mount, { version: 1 }>, key: string): Reply {
    if (req.method !== 'GET') return unsupported;
    counters.reads += 1;
    const data = mount.values.get(key);
    if (!data) return notFound;
    return { status: 200, body: envelope({ data: structuredClone(data), lease_duration: kvV1RefreshSeconds }) };
  }

  function readKvV2(req: Request, mount: Extract<Mount, { version: 2 }>, rest: string): Reply {
    if (req.method !== 'GET') return unsupported;
    if (!rest.startsWith('data/')) {
      return {
        status: 404,
        body: {
          errors: [],
          warnings: ['Invalid path for a versioned K/V secrets engine. See the API docs for the appropriate API endpoints to use.'],
        },
      };
    }
    counters.reads += 1;
    const versions = mount.secrets.get(rest.slice('data/'.length));
    if (!versions) return notFound;
    const asked = Number(req.query.get('version') ?? 0);
    const number = asked > 0 ? asked : versions.length;
    const version = versions[number - 1];
    if (!version) return notFound;
    const metadata = {
      created_time: version.createdTime,
      custom_metadata: null,
      deletion_time: version.deletionTime,
      destroyed: version.destroyed,
      version: number,
    };
    const gone = version.destroyed || version.deletionTime !== '';
    return {
      status: gone ? 404 : 200,
      body: envelope({ data: { data: gone ? null : structuredClone(version.data), metadata } }),
    };
  }

  function issueDatabaseCreds(req: Request, mount: Extract<Mount, { type: 'database' }>, rest: string): Reply {
    const match = /^creds\/([^/]+)$/.exec(rest);
    if (!match) return notFound;
    if (req.method !== 'GET') return unsupported;
    const role = mount.roles.get(match[1]!);
    if (!role) return badRequest(`unknown role: ${match[1]}`);
    counters.issues += 1;
    const leaseId = `${req.path}/${randomBytes(12).toString('base64url')}`;
    leases.set(leaseId, {
      namespace: req.namespace,
      expiresAt: now() + role.ttlSeconds * 1000,
      maxExpiresAt: now() + (role.maxTtlSeconds ?? role.ttlSeconds) * 1000,
      renewable: role.renewable ?? false,
      ttlSeconds: role.ttlSeconds,
    });
    return {
      status: 200,
      body: envelope({
        lease_id: leaseId,
        lease_duration: role.ttlSeconds,
        renewable: role.renewable ?? false,
        data: { username: `v-${match[1]}-${randomBytes(6).toString('hex')}`, password: randomBytes(18).toString('base64url') },
      }),
    };
  }

  async function issueCertificate(req: Request, mount: Extract<Mount, { type: 'pki' }>, rest: string): Promise<Reply> {
    const match = /^issue\/([^/]+)$/.exec(rest);
    if (!match) return notFound;
    if (req.method !== 'POST' && req.method !== 'PUT') return unsupported;
    const role = mount.roles.get(match[1]!);
    if (!role) return badRequest(`unknown role: ${match[1]}`);
    const commonName = req.body['common_name'];
    if (typeof commonName !== 'string' || commonName === '') {
      return badRequest('the common_name field is required, or must be provided in a CSR with "use_csr_common_name" set to true, unless "require_cn" is set to false');
    }
    const domains = role.allowedDomains ?? [];
    if (domains.length > 0 && !domains.some((d) => commonName === d || commonName.endsWith(`.${d}`))) {
      return badRequest(`common name ${commonName} not allowed by this role`);
    }
    const ttlSeconds = Math.min(parseTtl(req.body['ttl']) ?? role.ttlSeconds, role.maxTtlSeconds ?? role.ttlSeconds);
    counters.issues += 1;
    const notAfter = Math.floor(now() / 1000) + ttlSeconds;
    const leaf = await issuer.issue(commonName, new Date(now() - 30_000), new Date(notAfter * 1000));
    return {
      status: 200,
      body: envelope({
        data: {
          certificate: leaf.cert,
          issuing_ca: ca.cert,
          ca_chain: [ca.cert],
          private_key: leaf.key,
          private_key_type: 'ec',
          serial_number: leaf.serial,
          expiration: notAfter,
        },
      }),
    };
  }

  async function readMounted(req: Request, record: TokenRecord): Promise<Reply> {
    const found = findMount(req.namespace, req.path);
    if (isList(req)) {
      // A listed folder is named with its trailing slash in policies (`secret/metadata/app/`).
      const caps = new Set([...capabilities(record, req.path), ...capabilities(record, `${req.path}/`)]);
      if (caps.has('deny') || !caps.has('list')) return permissionDenied;
      if (!found) return { status: 404, body: { errors: [`no handler for route "${req.path}". route entry not found.`] } };
      const [mountPath, mount] = found;
      return mount.type === 'kv' ? listKv(mount, `${req.path}/`.slice(mountPath.length)) : unsupported;
    }
    if (!allows(record, req.path, req.method)) return permissionDenied;
    if (!found) return { status: 404, body: { errors: [`no handler for route "${req.path}". route entry not found.`] } };
    const [mountPath, mount] = found;
    const rest = req.path.slice(mountPath.length);
    switch (mount.type) {
      case 'kv':
        return mount.version === 1 ? readKvV1(req, mount, rest) : readKvV2(req, mount, rest);
      case 'database':
        return issueDatabaseCreds(req, mount, rest);
      case 'pki':
        return issueCertificate(req, mount, rest);
    }
  }

  async function route(req: Request): Promise<Reply> {
    if (sealed) return { status: 503, body: { errors: ['Vault is sealed'] } };
    const failure = failures.shift();
    if (failure) return failure;
    const loginMatch = /^auth\/(.+)\/login$/.exec(req.path);
    if (loginMatch) {
      return req.method === 'GET' ? unsupported : login(req, loginMatch[1]!);
    }
    const record = activeToken(req);
    if (!record) return permissionDenied;
    const answer = answers.get(answerKey(req.namespace, req.path));
    if (answer) return structuredClone(answer);
    if (req.path === 'auth/token/lookup-self' && req.method === 'GET') return lookupSelf(record);
    if (req.path === 'auth/token/renew-self' && req.method !== 'GET') return renewSelf(req, record);
    if (req.path === 'sys/leases/renew' && req.method !== 'GET') return renewLease(req);
    const preflightMatch = /^sys\/internal\/ui\/mounts\/(.+)$/.exec(req.path);
    if (preflightMatch && req.method === 'GET') return preflight(req, record, preflightMatch[1]!);
    return readMounted(req, record);
  }

  async function handle(incoming: IncomingMessage, res: ServerResponse): Promise<void> {
    counters.requests += 1;
    if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
    const url = new URL(incoming.url ?? '/', 'http://vault');
    const spoiler = injected.take(url.pathname);
    if (spoiler && (await injected.before(spoiler, res, vaultErrorBody, 'application/json'))) {
      incoming.resume();
      requests.push({ method: incoming.method ?? 'GET', path: url.pathname, namespace: '', status: spoiler.kind === 'status' ? spoiler.status : 0, hadToken: false });
      return;
    }
    const raw = await readBody(incoming);
    const header = (name: string) => {
      const v = incoming.headers[name];
      return Array.isArray(v) ? v[0] : v;
    };
    const namespace = (header('x-vault-namespace') ?? '').replace(/^\/+|\/+$/g, '');
    let reply: Reply;
    if (!url.pathname.startsWith('/v1/')) {
      reply = notFound;
    } else {
      let body: Record<string, unknown> = {};
      try {
        body = raw.length > 0 ? (JSON.parse(raw.toString('utf8')) as Record<string, unknown>) : {};
      } catch {
        body = {};
      }
      const token = header('x-vault-token');
      reply = await route({
        method: incoming.method ?? 'GET',
        path: decodeURIComponent(url.pathname.slice('/v1/'.length)).replace(/\/+$/, ''),
        query: url.searchParams,
        namespace,
        ...(token ? { token } : {}),
        body,
      });
    }
    requests.push({
      method: incoming.method ?? 'GET',
      path: url.pathname,
      namespace,
      status: reply.status,
      hadToken: header('x-vault-token') !== undefined,
    });
    const headers = { 'content-type': 'application/json', 'cache-control': 'no-store', ...reply.headers };
    injected.send(spoiler, res, reply.status, headers, reply.body === undefined ? '' : JSON.stringify(reply.body), vaultWrongShape);
  }

  const listener = (incoming: IncomingMessage, res: ServerResponse) => {
    handle(incoming, res).catch(() => {
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: ['1 error occurred:\n\t* internal error\n\n'] }));
    });
  };

  let server: Server;
  if (options.http) {
    server = createHttpServer(listener);
  } else {
    const leaf = await ca.issue({ commonName: 'vault', dnsNames: options.dnsNames ?? ['localhost'], ips: ['127.0.0.1'] });
    server = createHttpsServer(
      { cert: leaf.cert, key: leaf.key, ca: ca.cert, requestCert: options.requireClientCert ?? false, rejectUnauthorized: options.requireClientCert ?? false },
      listener,
    );
  }
  server.keepAliveTimeout = 5_000;
  const url = await listenOnLoopback(server, options.http);

  return {
    url,
    ca,
    counters,
    requests,
    issuedTokens,
    issuePodToken({ namespace, serviceAccount, audience = 'vault', ttlSeconds = 3600, podName = `${serviceAccount}-pod` }) {
      const iat = Math.floor(now() / 1000);
      const exp = iat + ttlSeconds;
      const token = podTokens.sign({
        aud: [audience],
        exp,
        iat,
        nbf: iat,
        iss: 'https://kubernetes.default.svc.cluster.local',
        sub: `system:serviceaccount:${namespace}:${serviceAccount}`,
        'kubernetes.io': {
          namespace,
          pod: { name: podName, uid: randomUUID() },
          serviceaccount: { name: serviceAccount, uid: randomUUID() },
        },
      });
      return { token, expiresAt: exp * 1000 };
    },
    enableKv(path, version, opts) {
      const mount: Mount = version === 1 ? { type: 'kv', version: 1, values: new Map() } : { type: 'kv', version: 2, secrets: new Map() };
      ns(opts?.namespace).mounts.set(`${path.replace(/\/+$/, '')}/`, mount);
    },
    writeKv(mountPath, key, data, opts) {
      const mount = mountOf(mountPath, 'kv', opts?.namespace);
      if (mount.version === 1) {
        mount.values.set(key, structuredClone(data));
        return 1;
      }
      const versions = mount.secrets.get(key) ?? [];
      versions.push({ data: structuredClone(data), createdTime: isoSeconds(now()), deletionTime: '', destroyed: false });
      mount.secrets.set(key, versions);
      return versions.length;
    },
    deleteKvVersion(mountPath, key, version, opts) {
      const mount = mountOf(mountPath, 'kv', opts?.namespace);
      if (mount.version !== 2) throw new Error('versions exist only in KV v2');
      const entry = mount.secrets.get(key)?.[version - 1];
      if (!entry) throw new Error(`no version ${version} of ${key}`);
      entry.deletionTime = isoSeconds(now());
    },
    destroyKvVersion(mountPath, key, version, opts) {
      const mount = mountOf(mountPath, 'kv', opts?.namespace);
      if (mount.version !== 2) throw new Error('versions exist only in KV v2');
      const entry = mount.secrets.get(key)?.[version - 1];
      if (!entry) throw new Error(`no version ${version} of ${key}`);
      entry.destroyed = true;
      entry.data = {};
    },
    enableDatabase(path = 'database', opts) {
      ns(opts?.namespace).mounts.set(`${path}/`, { type: 'database', roles: new Map() });
    },
    defineDatabaseRole(name, role, opts) {
      mountOf(opts?.mount ?? 'database', 'database', opts?.namespace).roles.set(name, role);
    },
    enablePki(path = 'pki', opts) {
      ns(opts?.namespace).mounts.set(`${path}/`, { type: 'pki', roles: new Map() });
    },
    definePkiRole(name, role, opts) {
      mountOf(opts?.mount ?? 'pki', 'pki', opts?.namespace).roles.set(name, role);
    },
    definePolicy(name, rules, opts) {
      ns(opts?.namespace).policies.set(name, rules);
    },
    defineRole(role) {
      ns(role.namespace).roles.set(`${role.mount ?? 'kubernetes'}\u0000${role.name}`, role);
    },
    createToken({ policies, ttlSeconds = 3600, namespace = '' }) {
      const role: RoleDefinition = { name: 'token', boundNamespaces: [], boundServiceAccountNames: [], policies, ttlSeconds, renewable: false };
      return mintToken(namespace, role, {}).token;
    },
    revokeAllTokens() {
      tokens.clear();
    },
    seal() {
      sealed = true;
    },
    unseal() {
      sealed = false;
    },
    failNext(count, status, errors, retryAfterSeconds) {
      for (let i = 0; i < count; i += 1) {
        failures.push({
          status,
          body: { errors },
          ...(retryAfterSeconds === undefined ? {} : { headers: { 'retry-after': String(retryAfterSeconds) } }),
        });
      }
    },
    setDelay(ms) {
      delayMs = ms;
    },
    setAnswer(path, answer, opts) {
      const key = answerKey(opts?.namespace ?? '', path);
      if (answer === undefined) answers.delete(key);
      else answers.set(key, { status: answer.status, body: structuredClone(answer.body) });
    },
    inject(fault, opts) {
      injected.inject(fault, opts);
    },
    faults: injected,
    connections() {
      return new Promise<number>((resolve, reject) => server.getConnections((err, count) => (err ? reject(err) : resolve(count))));
    },
    async close() {
      injected.releaseHanging();
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

/** Vault's error body for an injected status: 503 says sealed, 429 rate limited, others internal. */
function vaultErrorBody(status: number): { body: string } {
  const message = status === 503 ? 'Vault is sealed' : status === 429 ? 'request path "secret/": rate limit quota exceeded' : '1 error occurred:\n\t* internal error\n\n';
  return { body: JSON.stringify({ errors: [message] }) };
}

/**
 * A JSON object, as every Vault answer is, but of the wrong shape: Vault's envelope whose `data`
 * is a list rather than an object. (A body that is not a JSON object at all is the `text` shape.)
 */
const vaultWrongShape = JSON.stringify({
  request_id: '00000000-0000-0000-0000-000000000000',
  lease_id: '',
  renewable: false,
  lease_duration: 0,
  data: ['not', 'an', 'object'],
  wrap_info: null,
  warnings: null,
  auth: null,
});

async function readBody(incoming: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of incoming) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

// ---------------------------------------------------------------------------------------------
// PKI: leaf certificates with exact validity from the server's clock, signed by the test CA.

const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

interface Issuer {
  issue(commonName: string, notBefore: Date, notAfter: Date): Promise<{ cert: string; key: string; serial: string }>;
}

async function loadIssuer(ca: TestCa): Promise<Issuer> {
  const caCert = new x509.X509Certificate(ca.cert);
  const caKey = await webcrypto.subtle.importKey('pkcs8', x509.PemConverter.decodeFirst(ca.key), algorithm, false, ['sign']);
  return {
    async issue(commonName, notBefore, notAfter) {
      const keys = await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify']);
      const serialHex = randomBytes(16).toString('hex').replace(/^[89a-f]/, '1');
      const leaf = await x509.X509CertificateGenerator.create({
        serialNumber: serialHex,
        subject: `CN=${commonName}`,
        issuer: caCert.subject,
        notBefore,
        notAfter,
        publicKey: keys.publicKey as unknown as CryptoKey,
        signingKey: caKey as unknown as CryptoKey,
        signingAlgorithm: algorithm,
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
          new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: commonName }]),
        ],
      });
      const der = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
      return {
        cert: leaf.toString('pem'),
        key: x509.PemConverter.encode(der, 'PRIVATE KEY'),
        serial: serialHex.match(/../g)!.join(':'),
      };
    },
  };
}
