/**
 * A protocol-faithful Google Cloud test server: the three APIs the `gcp-secret-manager` backend
 * calls, on one port (point every `endpoints` override at `url`), over HTTPS from a test CA.
 *
 *   STS         POST /v1/token (form or JSON body; also /v1/identitybindingtoken, GKE's JSON path):
 *               RFC 8693 token exchange of a pod token this server issued, checked for signature,
 *               expiry and audience (the pool provider's allowed audiences, or its own resource
 *               name with or without `https:`; GKE: PROJECT.svc.id.goog); OAuth-style errors.
 *   IAM         POST /v1/projects/-/serviceAccounts/EMAIL:generateAccessToken with a bearer token:
 *               Token Creator checked along caller -> delegates -> target; google.rpc.Status errors.
 *   Secrets     GET /v1/projects/P/secrets/S/versions/V:access and the regional
 *               /v1/projects/P/locations/L/secrets/S/versions/V:access: P is the project id or
 *               number (the answer's `name` carries the number), V a number, `latest` (newest
 *               created, even when disabled) or an alias; payload with its CRC32C.
 *               GET /v1/projects/P[/locations/L]/secrets?filter=&pageSize=&pageToken=: secrets.list
 *               (permission secretmanager.secrets.list on the project) in name order, with the
 *               filter terms `name:TEXT` (substring, `*` wildcards) and `labels.K=V` / `labels.K:*`
 *               joined by AND, `nextPageToken` paging, and `{}` for an empty page.
 *
 *   const gcp = await startGcpTestServer();
 *   gcp.addVersion('db', 'secret'); gcp.addVersion('db', 'x', { location: 'europe-west1' });
 *   gcp.setState('db', 1, 'DISABLED'); gcp.setAlias('db', 'stable', 1);
 *   gcp.grantAccess(gcp.federatedMember('shop', 'app'), 'db');     // roles/secretmanager.secretAccessor
 *   gcp.grantList(member); gcp.setLabels('db', { team: 'pay' }); gcp.deleteSecret('db');
 *   gcp.addServiceAccount(email); gcp.grantTokenCreator(member, email);
 *   const { token } = gcp.issuePodToken({ namespace: 'shop', serviceAccount: 'app' });
 *   gcp.corruptChecksums(2); gcp.setAccessQuota(100); gcp.revokeTokens(); gcp.counters; gcp.requests; gcp.issuedTokens
 *   gcp.faults.inject(fault, { match: ':access' }); await gcp.connections(); await gcp.close();
 *   (fault routes are the path and query: `pageToken=` matches a listing's later pages)
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createFaultInjector, type FaultInjector } from './faults.js';
import { createPodTokenSigner } from './pod-tokens.js';
import { createTestCa, type TestCa } from './tls.js';
import { listenOnLoopback } from './listen.js';

export type VersionState = 'ENABLED' | 'DISABLED' | 'DESTROYED';

export interface GcpTestServerOptions {
  readonly ca?: TestCa;
  /** Plain HTTP (for clients that cannot be given a CA). */
  readonly http?: boolean;
  readonly projectId?: string;
  readonly projectNumber?: string;
  /** The pool provider's allowed audiences; empty: its own resource name, with or without `https:`. */
  readonly allowedAudiences?: string[];
  /** Clock in ms since the epoch for token lifetimes (default Date.now). */
  readonly now?: () => number;
  /** Lifetime of the access tokens STS issues (default 3600 s). */
  readonly federatedTokenSeconds?: number;
}

export interface GcpCounters {
  exchanges: number;
  impersonations: number;
  accesses: number;
  lists: number;
}

export interface GcpRequest {
  readonly method: string;
  readonly path: string;
  readonly status: number;
  /** The IAM members the bearer token stood for, if it was valid. */
  readonly members: readonly string[];
}

export interface GcpTestServer {
  readonly url: string;
  readonly ca: TestCa;
  readonly projectId: string;
  readonly projectNumber: string;
  /** The workload identity pool provider's resource name (the store's `audience`). */
  readonly poolAudience: string;
  /** GKE's form of the store's `audience`; pod tokens for it carry `gkeTokenAudience`. */
  readonly gkeAudience: string;
  readonly gkeTokenAudience: string;
  readonly counters: GcpCounters;
  readonly requests: GcpRequest[];
  /** Every access token issued (for the check that none leaks). */
  readonly issuedTokens: string[];
  readonly faults: FaultInjector;
  issuePodToken(options: { namespace: string; serviceAccount: string; audience?: string; ttlSeconds?: number }): { token: string; expiresAt: number };
  /** The IAM member of a pod's federated identity, as the pool (or GKE) names it. */
  federatedMember(namespace: string, serviceAccount: string, options?: { gke?: boolean }): string;
  /** Adds a version (ENABLED) and returns its number. */
  addVersion(secret: string, data: string | Buffer, options?: { location?: string }): number;
  setState(secret: string, version: number, state: VersionState, options?: { location?: string }): void;
  setAlias(secret: string, alias: string, version: number, options?: { location?: string }): void;
  /** Replaces a secret's labels (the secret is created without versions if it does not exist). */
  setLabels(secret: string, labels: Record<string, string>, options?: { location?: string }): void;
  /** Deletes a secret with its versions. */
  deleteSecret(secret: string, options?: { location?: string }): void;
  /** secretmanager.secrets.list on the project (roles/secretmanager.viewer) for `member`, in one location or the global one. */
  grantList(member: string, options?: { location?: string }): void;
  /** roles/secretmanager.secretAccessor for `member` on `secret` ("*": the whole project). */
  grantAccess(member: string, secret: string, options?: { location?: string }): void;
  addServiceAccount(email: string): void;
  /** roles/iam.workloadIdentityUser (or Token Creator) for `member` on service account `email`. */
  grantTokenCreator(member: string, email: string): void;
  /** The next `times` access answers carry a wrong dataCrc32c (0 stops, Infinity until stopped). */
  corruptChecksums(times: number): void;
  /** Access requests per minute per project before 429 RESOURCE_EXHAUSTED (Infinity: no limit). */
  setAccessQuota(perMinute: number): void;
  /** Invalidates every access token issued so far (as a revoked or rotated credential would be). */
  revokeTokens(): void;
  connections(): Promise<number>;
  close(): Promise<void>;
}

interface Version {
  data: Buffer;
  state: VersionState;
}

interface SecretRecord {
  readonly versions: Version[];
  readonly aliases: Map<string, number>;
  readonly createTime: string;
  labels: Record<string, string>;
}

interface TokenRecord {
  readonly members: readonly string[];
  readonly expiresAt: number;
}

interface Reply {
  readonly status: number;
  readonly body: unknown;
  readonly headers?: Record<string, string>;
}

const rpcStatusNames: Record<number, string> = {
  400: 'INVALID_ARGUMENT',
  401: 'UNAUTHENTICATED',
  403: 'PERMISSION_DENIED',
  404: 'NOT_FOUND',
  409: 'ABORTED',
  429: 'RESOURCE_EXHAUSTED',
  500: 'INTERNAL',
  502: 'UNAVAILABLE',
  503: 'UNAVAILABLE',
  504: 'DEADLINE_EXCEEDED',
};

/** google.rpc.Status as Google's JSON APIs send it. */
function rpcError(code: number, message: string, status = rpcStatusNames[code] ?? 'UNKNOWN', details?: unknown[]): Reply {
  return { status: code, body: { error: { code, message, status, ...(details ? { details } : {}) } } };
}

function oauthError(error: string, description: string, status = 400): Reply {
  return { status, body: { error, error_description: description } };
}

/** CRC-32C computed bit by bit: independent of the table-driven one under test. */
function crc32cBitwise(data: Buffer): number {
  let crc = 0xffffffff;
  for (const byte of data) {
    crc ^= byte;
    for (let i = 0; i < 8; i += 1) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

const tokenExchangeGrant = 'urn:ietf:params:oauth:grant-type:token-exchange';
const jwtTokenType = 'urn:ietf:params:oauth:token-type:jwt';
const accessTokenType = 'urn:ietf:params:oauth:token-type:access_token';
const cloudPlatform = 'https://www.googleapis.com/auth/cloud-platform';
const unauthenticated = rpcError(
  401,
  'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.',
);

export async function startGcpTestServer(options: GcpTestServerOptions = {}): Promise<GcpTestServer> {
  const now = options.now ?? Date.now;
  const ca = options.ca ?? (await createTestCa('gcp test CA'));
  const projectId = options.projectId ?? 'shop-prod';
  const projectNumber = options.projectNumber ?? '123456789012';
  const pool = `projects/${projectNumber}/locations/global/workloadIdentityPools/clusters`;
  const poolAudience = `//iam.googleapis.com/${pool}/providers/prod`;
  const gkeTokenAudience = `${projectId}.svc.id.goog`;
  const gkeAudience = `identitynamespace:${gkeTokenAudience}:https://container.googleapis.com/v1/projects/${projectId}/locations/europe-west1/clusters/prod`;
  const signer = createPodTokenSigner('gcp');
  const secrets = new Map<string, SecretRecord>();
  const accessGrants = new Map<string, Set<string>>();
  const listGrants = new Map<string, Set<string>>();
  const serviceAccounts = new Set<string>();
  const creatorGrants = new Map<string, Set<string>>();
  const tokens = new Map<string, TokenRecord>();
  const counters: GcpCounters = { exchanges: 0, impersonations: 0, accesses: 0, lists: 0 };
  const requests: GcpRequest[] = [];
  const issuedTokens: string[] = [];
  const faults = createFaultInjector();
  let corruptLeft = 0;
  let quota = Infinity;
  let quotaWindow = { start: 0, used: 0 };

  const secretKey = (secret: string, location = '') => `${location}\u0000${secret}`;
  const secretAt = (secret: string, location?: string): SecretRecord => {
    const key = secretKey(secret, location);
    let record = secrets.get(key);
    if (!record) {
      record = { versions: [], aliases: new Map(), createTime: new Date(now()).toISOString(), labels: {} };
      secrets.set(key, record);
    }
    return record;
  };
  const versionOf = (secret: string, version: number, location?: string): Version => {
    const found = secrets.get(secretKey(secret, location))?.versions[version - 1];
    if (!found) throw new Error(`no version ${version} of ${secret}`);
    return found;
  };
  const federatedMember = (namespace: string, serviceAccount: string, { gke = false } = {}) =>
    gke
      ? `serviceAccount:${gkeTokenAudience}[${namespace}/${serviceAccount}]`
      : `principal://iam.googleapis.com/${pool}/subject/system:serviceaccount:${namespace}:${serviceAccount}`;

  const mint = (prefix: string, members: string[], seconds: number) => {
    const token = `ya29.${prefix}-${randomBytes(24).toString('base64url')}`;
    const expiresAt = now() + seconds * 1000;
    tokens.set(token, { members, expiresAt });
    issuedTokens.push(token);
    return { token, expiresAt };
  };

  const bearerOf = (incoming: IncomingMessage): TokenRecord | undefined => {
    const match = /^Bearer (\S+)$/.exec(incoming.headers.authorization ?? '');
    const record = match ? tokens.get(match[1]!) : undefined;
    return record && record.expiresAt > now() ? record : undefined;
  };

  // --- STS --------------------------------------------------------------------------------

  function exchange(fields: Record<string, string | undefined>): Reply {
    counters.exchanges += 1;
    const field = (snake: string, camel: string) => fields[snake] ?? fields[camel];
    if (field('grant_type', 'grantType') !== tokenExchangeGrant) return oauthError('unsupported_grant_type', 'Unsupported grant_type.');
    if (field('subject_token_type', 'subjectTokenType') !== jwtTokenType) return oauthError('invalid_request', 'Invalid subject_token_type.');
    const requested = field('requested_token_type', 'requestedTokenType');
    if (requested !== undefined && requested !== accessTokenType) return oauthError('invalid_request', 'Invalid requested_token_type.');
    const scope = field('scope', 'scope');
    if (scope !== undefined && !scope.split(' ').includes(cloudPlatform)) return oauthError('invalid_scope', 'Unsupported scope.');
    const audience = field('audience', 'audience');
    const gke = audience === gkeAudience;
    if (audience !== poolAudience && !gke) {
      return oauthError('invalid_target', 'The target service indicated by the "audience" parameters is invalid. This might either be because the pool or provider is disabled or deleted or because it doesn\'t exist.');
    }
    const claims = signer.verify(field('subject_token', 'subjectToken') ?? '');
    if (!claims) return oauthError('invalid_grant', 'The provided token is not a valid JWT or its signature could not be verified.');
    if (typeof claims['exp'] !== 'number' || claims['exp'] * 1000 <= now()) return oauthError('invalid_grant', 'The ID Token has expired.');
    const audiences = ([] as unknown[]).concat(claims['aud']);
    const allowed = gke
      ? [gkeTokenAudience]
      : options.allowedAudiences?.length
        ? options.allowedAudiences
        : [poolAudience, `https:${poolAudience}`];
    if (!audiences.some((a) => typeof a === 'string' && allowed.includes(a))) {
      return oauthError('invalid_grant', `The audience in ID Token [${audiences.join(',')}] does not match the expected audience.`);
    }
    const sub = String(claims['sub'] ?? '');
    const parts = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(sub);
    if (!parts) return oauthError('invalid_grant', 'The ID Token has no usable subject.');
    const member = federatedMember(parts[1]!, parts[2]!, { gke });
    const { token } = mint('fed', [member], options.federatedTokenSeconds ?? 3600);
    return {
      status: 200,
      body: { access_token: token, issued_token_type: accessTokenType, token_type: 'Bearer', expires_in: options.federatedTokenSeconds ?? 3600 },
    };
  }

  // --- IAM credentials --------------------------------------------------------------------

  function generateAccessToken(incoming: IncomingMessage, email: string, body: Record<string, unknown>): Reply {
    counters.impersonations += 1;
    const caller = bearerOf(incoming);
    if (!caller) return unauthenticated;
    const scope = body['scope'];
    if (!Array.isArray(scope) || scope.length === 0) return rpcError(400, 'Request contains an invalid argument.');
    const lifetime = /^(\d+)s$/.exec(typeof body['lifetime'] === 'string' ? body['lifetime'] : '3600s');
    if (!lifetime || Number(lifetime[1]) > 3600 || Number(lifetime[1]) < 1) return rpcError(400, 'The lifetime must be between 1s and 3600s.');
    const delegates = Array.isArray(body['delegates']) ? body['delegates'] : [];
    const chain: string[] = [];
    for (const d of delegates) {
      const match = typeof d === 'string' ? /^projects\/-\/serviceAccounts\/(.+)$/.exec(d) : null;
      if (!match) return rpcError(400, 'Request contains an invalid argument.');
      chain.push(match[1]!);
    }
    // IAM checks the permission first: without it, a missing account looks like a refusal.
    let holders = caller.members;
    for (const next of [...chain, email]) {
      const grantees = creatorGrants.get(next) ?? new Set<string>();
      if (!holders.some((m) => grantees.has(m))) {
        return rpcError(403, "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).", 'PERMISSION_DENIED', [
          {
            '@type': 'type.googleapis.com/google.rpc.ErrorInfo',
            reason: 'IAM_PERMISSION_DENIED',
            domain: 'iam.googleapis.com',
            metadata: { permission: 'iam.serviceAccounts.getAccessToken' },
          },
        ]);
      }
      if (!serviceAccounts.has(next)) return rpcError(404, `Not found; Gaia id not found for email ${next}`);
      holders = [`serviceAccount:${next}`];
    }
    const { token, expiresAt } = mint('sa', [`serviceAccount:${email}`], Number(lifetime[1]));
    return { status: 200, body: { accessToken: token, expireTime: new Date(expiresAt).toISOString().replace(/\.\d{3}Z$/, 'Z') } };
  }

  // --- Secret Manager ---------------------------------------------------------------------

  function access(incoming: IncomingMessage, project: string, location: string | undefined, secret: string, version: string): Reply {
    counters.accesses += 1;
    const caller = bearerOf(incoming);
    if (!caller) return unauthenticated;
    if (project !== projectId && project !== projectNumber) {
      return rpcError(403, `Permission 'secretmanager.versions.access' denied for resource 'projects/${project}/secrets/${secret}/versions/${version}' (or it may not exist).`);
    }
    if (now() - quotaWindow.start >= 60_000) quotaWindow = { start: now(), used: 0 };
    quotaWindow.used += 1;
    if (quotaWindow.used > quota) {
      return rpcError(
        429,
        `Quota exceeded for quota metric 'Access requests' and limit 'Access requests per minute per project' of service 'secretmanager.googleapis.com' for consumer 'project_number:${projectNumber}'.`,
      );
    }
    const where = location === undefined ? '' : `/locations/${location}`;
    const secretName = `projects/${projectNumber}${where}/secrets/${secret}`;
    const grantees = new Set([...(accessGrants.get(secretKey(secret, location)) ?? []), ...(accessGrants.get(secretKey('*', location)) ?? [])]);
    if (!caller.members.some((m) => grantees.has(m))) {
      return rpcError(403, `Permission 'secretmanager.versions.access' denied for resource '${secretName}/versions/${version}' (or it may not exist).`, 'PERMISSION_DENIED', [
        {
          '@type': 'type.googleapis.com/google.rpc.ErrorInfo',
          reason: 'IAM_PERMISSION_DENIED',
          domain: 'secretmanager.googleapis.com',
          metadata: { permission: 'secretmanager.versions.access', resource: `${secretName}/versions/${version}` },
        },
      ]);
    }
    const record = secrets.get(secretKey(secret, location));
    if (!record || record.versions.length === 0) return rpcError(404, `Secret [${secretName}] not found or has no versions.`);
    const number = version === 'latest' ? record.versions.length : /^\d+$/.test(version) ? Number(version) : record.aliases.get(version);
    const found = number === undefined ? undefined : record.versions[number - 1];
    if (number === undefined || !found) return rpcError(404, `Secret Version [${secretName}/versions/${version}] not found.`);
    if (found.state !== 'ENABLED') {
      return rpcError(400, `Secret Version [${secretName}/versions/${number}] is in ${found.state} state.`, 'FAILED_PRECONDITION');
    }
    let checksum = crc32cBitwise(found.data);
    if (corruptLeft > 0) {
      corruptLeft -= 1;
      checksum = (checksum ^ 0x1) >>> 0;
    }
    return { status: 200, body: { name: `${secretName}/versions/${number}`, payload: { data: found.data.toString('base64'), dataCrc32c: String(checksum) } } };
  }

  function list(incoming: IncomingMessage, project: string, location: string | undefined, query: URLSearchParams): Reply {
    counters.lists += 1;
    const caller = bearerOf(incoming);
    if (!caller) return unauthenticated;
    const parent = `projects/${project}${location === undefined ? '' : `/locations/${location}`}`;
    const listers = listGrants.get(location ?? '') ?? new Set<string>();
    if ((project !== projectId && project !== projectNumber) || !caller.members.some((m) => listers.has(m))) {
      return rpcError(403, `Permission 'secretmanager.secrets.list' denied for resource '${parent}' (or it may not exist).`, 'PERMISSION_DENIED', [
        {
          '@type': 'type.googleapis.com/google.rpc.ErrorInfo',
          reason: 'IAM_PERMISSION_DENIED',
          domain: 'secretmanager.googleapis.com',
          metadata: { permission: 'secretmanager.secrets.list', resource: parent },
        },
      ]);
    }
    const matches = parseFilter(query.get('filter') ?? '');
    if (!matches) return rpcError(400, `Invalid filter: ${query.get('filter')}`);
    const size = Math.min(Number(query.get('pageSize') || '25000'), 25000);
    if (!Number.isInteger(size) || size < 0) return rpcError(400, 'Invalid page size.');
    const token = query.get('pageToken');
    const start = token ? Number(Buffer.from(token, 'base64url').toString('utf8').replace(/^offset:/, '')) : 0;
    if (!Number.isInteger(start) || start < 0) return rpcError(400, 'Invalid page token.');
    const found = [...secrets.entries()]
      .filter(([key]) => key.startsWith(`${location ?? ''}\u0000`))
      .map(([key, record]) => ({ name: `projects/${projectNumber}${location === undefined ? '' : `/locations/${location}`}/secrets/${key.split('\u0000')[1]}`, record }))
      .filter(({ name, record }) => matches(name, record.labels))
      .sort((a, b) => (a.name < b.name ? -1 : 1));
    const page = found.slice(start, start + (size || 25000)).map(({ name, record }) => ({
      name,
      ...(location === undefined ? { replication: { automatic: {} } } : {}),
      createTime: record.createTime,
      ...(Object.keys(record.labels).length > 0 ? { labels: record.labels } : {}),
      etag: `"${randomBytes(6).toString('hex')}"`,
    }));
    const end = start + page.length;
    // Proto3 JSON leaves out empty fields: an empty page is `{}`.
    return {
      status: 200,
      body: {
        ...(page.length > 0 ? { secrets: page } : {}),
        ...(end < found.length ? { nextPageToken: Buffer.from(`offset:${end}`).toString('base64url') } : {}),
        ...(found.length > 0 ? { totalSize: found.length } : {}),
      },
    };
  }

  // --- routing ----------------------------------------------------------------------------

  async function route(incoming: IncomingMessage, path: string, query: URLSearchParams, raw: Buffer): Promise<Reply> {
    const method = incoming.method ?? 'GET';
    if (method === 'POST' && (path === '/v1/token' || path === '/v1/identitybindingtoken')) {
      return exchange(readFields(incoming, raw));
    }
    const impersonate = /^\/v1\/projects\/-\/serviceAccounts\/([^/:]+):generateAccessToken$/.exec(path);
    if (impersonate && method === 'POST') return generateAccessToken(incoming, decodeURIComponent(impersonate[1]!), readJson(raw));
    const read = /^\/v1\/projects\/([^/]+)(?:\/locations\/([^/]+))?\/secrets\/([^/]+)\/versions\/([^/:]+):access$/.exec(path);
    if (read && method === 'GET') return access(incoming, read[1]!, read[2], read[3]!, read[4]!);
    const listing = /^\/v1\/projects\/([^/]+)(?:\/locations\/([^/]+))?\/secrets$/.exec(path);
    if (listing && method === 'GET') return list(incoming, listing[1]!, listing[2], query);
    return rpcError(404, 'The requested URL was not found on this server.');
  }

  async function handle(incoming: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(incoming.url ?? '/', 'http://gcp');
    const fault = faults.take(url.pathname + url.search);
    if (fault && (await faults.before(fault, res, faultBody, 'application/json; charset=UTF-8'))) {
      incoming.resume();
      requests.push({ method: incoming.method ?? 'GET', path: url.pathname, status: fault.kind === 'status' ? fault.status : 0, members: [] });
      return;
    }
    const raw = await readBody(incoming);
    const reply = await route(incoming, decodeURI(url.pathname), url.searchParams, raw);
    requests.push({ method: incoming.method ?? 'GET', path: url.pathname, status: reply.status, members: bearerOf(incoming)?.members ?? [] });
    const headers = { 'content-type': 'application/json; charset=UTF-8', 'cache-control': 'private', ...reply.headers };
    faults.send(fault, res, reply.status, headers, JSON.stringify(reply.body), wrongShapeOf(reply));
  }

  const listener = (incoming: IncomingMessage, res: ServerResponse) => {
    handle(incoming, res).catch(() => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify(rpcError(500, 'Internal error encountered.').body));
    });
  };
  let server: Server;
  if (options.http) {
    server = createHttpServer(listener);
  } else {
    const leaf = await ca.issue({ commonName: 'googleapis test', dnsNames: ['localhost'], ips: ['127.0.0.1'] });
    server = createHttpsServer({ cert: leaf.cert, key: leaf.key }, listener);
  }
  server.keepAliveTimeout = 5_000;
  const url = await listenOnLoopback(server, options.http);

  return {
    url,
    ca,
    projectId,
    projectNumber,
    poolAudience,
    gkeAudience,
    gkeTokenAudience,
    counters,
    requests,
    issuedTokens,
    faults,
    issuePodToken({ namespace, serviceAccount, audience = poolAudience, ttlSeconds = 3600 }) {
      const iat = Math.floor(now() / 1000);
      const token = signer.sign({
        aud: [audience],
        exp: iat + ttlSeconds,
        iat,
        nbf: iat,
        iss: 'https://kubernetes.default.svc.cluster.local',
        sub: `system:serviceaccount:${namespace}:${serviceAccount}`,
        'kubernetes.io': { namespace, serviceaccount: { name: serviceAccount } },
      });
      return { token, expiresAt: (iat + ttlSeconds) * 1000 };
    },
    federatedMember,
    addVersion(secret, data, opts) {
      const record = secretAt(secret, opts?.location);
      record.versions.push({ data: Buffer.isBuffer(data) ? Buffer.from(data) : Buffer.from(data, 'utf8'), state: 'ENABLED' });
      return record.versions.length;
    },
    setState(secret, version, state, opts) {
      const found = versionOf(secret, version, opts?.location);
      found.state = state;
      if (state === 'DESTROYED') found.data = Buffer.alloc(0);
    },
    setAlias(secret, alias, version, opts) {
      versionOf(secret, version, opts?.location);
      secretAt(secret, opts?.location).aliases.set(alias, version);
    },
    setLabels(secret, labels, opts) {
      secretAt(secret, opts?.location).labels = { ...labels };
    },
    deleteSecret(secret, opts) {
      secrets.delete(secretKey(secret, opts?.location));
    },
    grantList(member, opts) {
      const key = opts?.location ?? '';
      listGrants.set(key, (listGrants.get(key) ?? new Set()).add(member));
    },
    grantAccess(member, secret, opts) {
      const key = secretKey(secret, opts?.location);
      accessGrants.set(key, (accessGrants.get(key) ?? new Set()).add(member));
    },
    addServiceAccount(email) {
      serviceAccounts.add(email);
    },
    grantTokenCreator(member, email) {
      creatorGrants.set(email, (creatorGrants.get(email) ?? new Set()).add(member));
    },
    corruptChecksums(times) {
      corruptLeft = times;
    },
    setAccessQuota(perMinute) {
      quota = perMinute;
      quotaWindow = { start: now(), used: 0 };
    },
    revokeTokens() {
      tokens.clear();
    },
    connections: () => new Promise<number>((resolve, reject) => server.getConnections((err, n) => (err ? reject(err) : resolve(n)))),
    async close() {
      faults.releaseHanging();
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

/**
 * The filter language of secrets.list, as far as a store uses it: terms joined by AND (or a
 * space), each `name:TEXT` (the resource name contains TEXT; `*` matches anything),
 * `labels.KEY=VALUE` or `labels.KEY:*` (has the label); values bare or in double quotes.
 * Returns undefined for anything else, which Google refuses as INVALID_ARGUMENT.
 */
function parseFilter(filter: string): ((name: string, labels: Record<string, string>) => boolean) | undefined {
  const tests: Array<(name: string, labels: Record<string, string>) => boolean> = [];
  const term = /^\s*(name|labels\.([a-z][a-z0-9_]*))\s*([:=])\s*("([^"\\]*)"|([^\s"()]+))\s*(?:AND\s+|$)/;
  let rest = filter.trim();
  while (rest !== '') {
    const m = term.exec(rest);
    if (!m) return undefined;
    const [, field, labelKey, op, , quoted, bare] = m;
    const value = quoted ?? bare ?? '';
    if (field === 'name') {
      if (op !== ':') return undefined;
      const pattern = new RegExp(value.split('*').map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*'));
      tests.push((name) => pattern.test(name));
    } else if (op === ':' && value === '*') {
      tests.push((_name, labels) => labelKey! in labels);
    } else {
      tests.push((_name, labels) => labels[labelKey!] === value);
    }
    rest = rest.slice(m[0].length);
  }
  return (name, labels) => tests.every((t) => t(name, labels));
}

/** The server's own answer to an injected status: a google.rpc.Status body. */
function faultBody(status: number): { body: string } {
  const message = status === 429 ? 'Quota exceeded.' : status === 503 ? 'The service is currently unavailable.' : 'Internal error encountered.';
  return { body: JSON.stringify(rpcError(status, message).body) };
}

/** Valid JSON of the wrong shape: the real answer's name, with a payload that is a list. */
function wrongShapeOf(reply: Reply): string {
  const name = (reply.body as { name?: unknown } | undefined)?.name;
  return JSON.stringify({ name: typeof name === 'string' ? name : 'projects/123456789012/secrets/x/versions/1', payload: ['not', 'an', 'object'] });
}

function readFields(incoming: IncomingMessage, raw: Buffer): Record<string, string | undefined> {
  const type = incoming.headers['content-type'] ?? '';
  if (type.startsWith('application/json')) {
    const parsed = readJson(raw);
    return Object.fromEntries(Object.entries(parsed).map(([k, v]) => [k, typeof v === 'string' ? v : undefined]));
  }
  return Object.fromEntries(new URLSearchParams(raw.toString('utf8')));
}

function readJson(raw: Buffer): Record<string, unknown> {
  try {
    const parsed: unknown = JSON.parse(raw.toString('utf8'));
    return parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

async function readBody(incoming: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of incoming) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
