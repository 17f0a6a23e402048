/**
 * A protocol-faithful Azure test server: Entra ID's token endpoint and OIDC discovery, and a Key
 * Vault (secrets, keys, certificates, with versions), over real HTTPS from a test CA. One origin
 * serves both: use `url` as the authority host and as the vault URL.
 *
 *   const azure = await startAzureTestServer();
 *   azure.federate({ clientId: 'app-1', namespace: 'shop', serviceAccount: 'app' });   // a federated credential
 *   azure.grant('app-1', ['secrets/shop-*']);                                          // RBAC: Key Vault Secrets User on names
 *   azure.grantList('app-1');                                                          // RBAC: Key Vault Reader on the vault
 *   const v1 = azure.setSecret('shop-db', 'value');                                    // returns the version id
 *   azure.addCertificate('web', await createTestChain(), { bagOrder: [2, 0, 1] });     // cert + key + PFX secret
 *   const token = azure.issuePodToken({ namespace: 'shop', serviceAccount: 'app' });
 *   azure.counters.tokens; azure.tokenRequests; azure.throttle(2, 1); await azure.close();
 *
 * Entra checks the client assertion as it does for workload identity: signature (the test issuer's
 * key, see ./pod-tokens.ts), exp/nbf, then exact iss/sub/aud against the application's federated
 * credentials (a miss is AADSTS70021). Key Vault answers a request without a bearer token with
 * its 401 challenge. `GET /secrets` lists secrets as Key Vault does: 25 (or `maxresults`) a page in
 * name order, ids, attributes, tags and content types without values, disabled ones included,
 * and a `nextLink` with a `$skiptoken` (`setNextLinkOrigin` points it elsewhere, as a hostile
 * answer would). Faults of the shared vocabulary (./faults.ts) match the request path and query
 * (`/secrets/shop-db`, `/tenant/oauth2/v2.0/token`, `$skiptoken` for a listing's later pages).
 */
import 'reflect-metadata';
import { createCipheriv, createHash, createHmac, createPrivateKey, createPublicKey, pbkdf2Sync, randomBytes, webcrypto, X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import * as x509 from '@peculiar/x509';
import { Constructed, Integer, Null, ObjectIdentifier, OctetString, Primitive, Sequence, type BaseBlock } from 'asn1js';
import { createPodTokenSigner } from './pod-tokens.js';
import { createFaultInjector, type Fault, type FaultInjector, type InjectOptions } from './faults.js';
import { createTestCa, type TestCa } from './tls.js';
import { listenOnLoopback } from './listen.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export const workloadIdentityAudience = 'api://AzureADTokenExchange';
export const podTokenIssuer = 'https://oidc.prod-aks.azure.com/usp-test-cluster/';

export interface FederatedCredential {
  readonly clientId: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly audience?: string;
  readonly issuer?: string;
}

/** A certificate chain for certificate-backed secrets: the leaf's key and the certificates leaf first. */
export interface TestChain {
  readonly key: string;
  readonly certificates: readonly string[];
}

export interface CertificateOptions {
  /** Order of the PFX's bags, as indexes into [key, ...certificates]; default shuffled. */
  readonly bagOrder?: readonly number[];
  /** How the empty password is encoded in the PFX's MAC: `zero` bytes (Key Vault) or a `nul` terminator (openssl). */
  readonly emptyPassword?: 'zero' | 'nul';
  readonly contentType?: 'application/x-pkcs12' | 'application/x-pem-file';
}

export interface AzureTestServer {
  readonly url: string;
  readonly ca: TestCa;
  readonly tenantId: string;
  readonly counters: { requests: number; tokens: number; reads: number; challenges: number; lists: number };
  /** Successful token exchanges, in order: which application for which pod subject. */
  readonly tokenRequests: Array<{ clientId: string; subject: string }>;
  readonly faults: FaultInjector;
  issuePodToken(options: { namespace: string; serviceAccount: string; audience?: string; issuer?: string; ttlSeconds?: number; notBeforeSeconds?: number }): string;
  federate(credential: FederatedCredential): void;
  /** Lets `clientId` read items whose `collection/name` matches a pattern (`*` is a wildcard). */
  grant(clientId: string, patterns: readonly string[]): void;
  /** Lets `clientId` list the vault's secrets (`secrets/readMetadata/action` on the vault, as Key Vault Reader has). */
  grantList(clientId: string): void;
  setSecret(name: string, value: string, options?: { contentType?: string; enabled?: boolean; tags?: Record<string, string> }): string;
  /** Deletes a secret with all its versions (soft delete: gone from reads and listings). */
  deleteSecret(name: string): void;
  /** Listing pages from now on point their nextLink at this origin (undefined: the vault's own). */
  setNextLinkOrigin(origin: string | undefined): void;
  setKey(name: string, publicKeyPem: string): string;
  /** A certificate with its key and its certificate-backed secret (one version id for all three). */
  addCertificate(name: string, chain: TestChain, options?: CertificateOptions): string;
  /** The next `times` Key Vault reads answer 429 with Retry-After. */
  throttle(times: number, retryAfterSeconds: number): void;
  /** Access tokens issued from now on live this many seconds (default 3599). */
  setTokenLifetime(seconds: number): void;
  inject(fault: Fault, options?: InjectOptions): void;
  connections(): Promise<number>;
  close(): Promise<void>;
}

interface Version {
  readonly version: string;
  readonly created: number;
  readonly enabled: boolean;
  readonly body: Record<string, unknown>;
}

interface AccessToken {
  readonly clientId: string;
  readonly expiresAt: number;
}

interface Reply {
  readonly status: number;
  readonly body: unknown;
  readonly headers?: Record<string, string>;
}

const collections = ['secrets', 'keys', 'certificates'] as const;
type Collection = (typeof collections)[number];
const notFoundCodes: Record<Collection, [string, string]> = {
  secrets: ['SecretNotFound', 'A secret'],
  keys: ['KeyNotFound', 'A key'],
  certificates: ['CertificateNotFound', 'A certificate'],
};
const apiVersions = new Set(['7.0', '7.1', '7.2', '7.3', '7.4', '7.5', '7.6', '2025-07-01']);

export async function startAzureTestServer(options: { ca?: TestCa; now?: () => number } = {}): Promise<AzureTestServer> {
  const now = options.now ?? Date.now;
  const ca = options.ca ?? (await createTestCa('azure test CA'));
  const tenantId = '72f988bf-86f1-41af-91ab-2d7cd011db47';
  const podTokens = createPodTokenSigner('aks-oidc');
  const federated: FederatedCredential[] = [];
  const grants = new Map<string, RegExp[]>();
  const listers = new Set<string>();
  let nextLinkOrigin: string | undefined;
  const items = new Map<string, Version[]>();
  const accessTokens = new Map<string, AccessToken>();
  const counters = { requests: 0, tokens: 0, reads: 0, challenges: 0, lists: 0 };
  const tokenRequests: Array<{ clientId: string; subject: string }> = [];
  const faults = createFaultInjector();
  let throttled = { times: 0, retryAfterSeconds: 1 };
  let tokenLifetime = 3599;
  let url = '';

  const newVersion = (collection: Collection, name: string, body: (id: string, version: string) => Record<string, unknown>, enabled = true) => {
    const version = randomBytes(16).toString('hex');
    const list = items.get(`${collection}/${name}`) ?? [];
    const created = Math.floor(now() / 1000);
    list.push({ version, created, enabled, body: body(`${url}/${collection}/${name}/${version}`, version) });
    items.set(`${collection}/${name}`, list);
    return version;
  };
  const attributes = (enabled: boolean, created: number) => ({ enabled, created, updated: created, recoveryLevel: 'Recoverable+Purgeable', recoverableDays: 90 });

  function tokenEndpoint(form: URLSearchParams, tenant: string): Reply {
    const fail = (status: number, error: string, code: number, description: string): Reply => ({
      status,
      body: {
        error,
        error_description: `AADSTS${code}: ${description} Trace ID: ${randomBytes(16).toString('hex')} Correlation ID: ${webcrypto.randomUUID()} Timestamp: ${new Date(now()).toISOString()}`,
        error_codes: [code],
        timestamp: new Date(now()).toISOString(),
        trace_id: webcrypto.randomUUID(),
        correlation_id: webcrypto.randomUUID(),
      },
    });
    if (tenant !== tenantId) return fail(400, 'invalid_request', 90002, `Tenant '${tenant}' not found.`);
    if (form.get('grant_type') !== 'client_credentials') return fail(400, 'unsupported_grant_type', 70003, 'The app requested an unsupported grant type.');
    if (form.get('client_assertion_type') !== 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer') {
      return fail(400, 'invalid_request', 900144, "The request body must contain the following parameter: 'client_assertion_type'.");
    }
    const clientId = form.get('client_id') ?? '';
    if (!federated.some((f) => f.clientId === clientId) && !grants.has(clientId) && !listers.has(clientId)) {
      return fail(400, 'unauthorized_client', 700016, `Application with identifier '${clientId}' was not found in the directory.`);
    }
    const scope = form.get('scope') ?? '';
    if (scope !== 'https://vault.azure.net/.default') return fail(400, 'invalid_scope', 1002012, `The provided value for scope ${scope} is not valid.`);
    const claims = podTokens.verify(form.get('client_assertion') ?? '');
    if (!claims) return fail(401, 'invalid_client', 50027, 'JWT token is invalid or malformed.');
    const nowSeconds = now() / 1000;
    if (typeof claims['exp'] !== 'number' || claims['exp'] <= nowSeconds || (typeof claims['nbf'] === 'number' && claims['nbf'] > nowSeconds + 300)) {
      return fail(400, 'invalid_client', 700024, 'Client assertion is not within its valid time range.');
    }
    const audiences = Array.isArray(claims['aud']) ? claims['aud'] : [claims['aud']];
    const match = federated.find(
      (f) =>
        f.clientId === clientId &&
        claims['iss'] === (f.issuer ?? podTokenIssuer) &&
        claims['sub'] === `system:serviceaccount:${f.namespace}:${f.serviceAccount}` &&
        audiences.includes(f.audience ?? workloadIdentityAudience),
    );
    if (!match) {
      return fail(400, 'invalid_client', 70021, 'No matching federated identity record found for presented assertion. Assertion Issuer: \'' + String(claims['iss']) + "'. Assertion Subject: '" + String(claims['sub']) + "'. Assertion Audience: '" + audiences.join(',') + "'.");
    }
    const accessToken = `eyJ0eXAiOiJKV1Qi.${randomBytes(48).toString('base64url')}`;
    accessTokens.set(accessToken, { clientId, expiresAt: now() + tokenLifetime * 1000 });
    counters.tokens += 1;
    tokenRequests.push({ clientId, subject: String(claims['sub']) });
    return { status: 200, body: { token_type: 'Bearer', expires_in: tokenLifetime, ext_expires_in: tokenLifetime, access_token: accessToken } };
  }

  function discovery(tenant: string): Reply {
    const base = `${url}/${tenant}`;
    return {
      status: 200,
      body: {
        token_endpoint: `${base}/oauth2/v2.0/token`,
        token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
        jwks_uri: `${base}/discovery/v2.0/keys`,
        response_modes_supported: ['query', 'fragment', 'form_post'],
        subject_types_supported: ['pairwise'],
        id_token_signing_alg_values_supported: ['RS256'],
        response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
        scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
        issuer: `${base}/v2.0`,
        request_uri_parameter_supported: false,
        authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
        device_authorization_endpoint: `${base}/oauth2/v2.0/devicecode`,
        end_session_endpoint: `${base}/oauth2/v2.0/logout`,
        tenant_region_scope: 'EU',
        cloud_instance_name: 'microsoftonline.com',
        cloud_graph_host_name: 'graph.windows.net',
        msgraph_host: 'graph.microsoft.com',
      },
    };
  }

  function vaultError(status: number, code: string, message: string, inner?: string, headers?: Record<string, string>): Reply {
    return { status, body: { error: { code, message, ...(inner ? { innererror: { code: inner } } : {}) } }, ...(headers ? { headers } : {}) };
  }

  /** What every vault call checks first: the api-version, the bearer token, then throttling. */
  function admit(authorization: string | undefined, query: URLSearchParams): AccessToken | Reply {
    const apiVersion = query.get('api-version');
    if (!apiVersion || !apiVersions.has(apiVersion)) {
      return vaultError(400, 'BadParameter', 'The request URI contains an invalid or missing api-version.');
    }
    const bearer = /^Bearer (\S+)$/.exec(authorization ?? '')?.[1];
    const held = bearer ? accessTokens.get(bearer) : undefined;
    if (!held || held.expiresAt <= now()) {
      counters.challenges += 1;
      return vaultError(401, 'Unauthorized', bearer ? 'AKV10022: Invalid audience or token expired.' : 'AKV10000: Request is missing a Bearer or PoP token.', undefined, {
        'www-authenticate': `Bearer authorization="${url}/${tenantId}", resource="https://vault.azure.net"`,
      });
    }
    if (throttled.times > 0) {
      throttled.times -= 1;
      return vaultError(429, 'Throttled', 'Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached', undefined, {
        'retry-after': String(throttled.retryAfterSeconds),
      });
    }
    return held;
  }

  const rbacRefusal = (clientId: string, action: string, resource: string): Reply =>
    vaultError(
      403,
      'Forbidden',
      `Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: appid=${clientId};iss=https://sts.windows.net/${tenantId}/\r\nAction: 'Microsoft.KeyVault/vaults/${action}'\r\nResource: '/subscriptions/0000/resourcegroups/test/providers/microsoft.keyvault/vaults/usp-test${resource}'\r\nAssignment: (not found)\r\nVault: usp-test;location=westeurope\r\n`,
      'ForbiddenByRbac',
    );

  function read(collection: Collection, name: string, version: string | undefined, authorization: string | undefined, query: URLSearchParams): Reply {
    const held = admit(authorization, query);
    if ('status' in held) return held;
    counters.reads += 1;
    const path = `${collection}/${name}`;
    if (!(grants.get(held.clientId) ?? []).some((pattern) => pattern.test(path))) {
      const action = { secrets: 'secrets/getSecret/action', keys: 'keys/read/action', certificates: 'certificates/read/action' }[collection];
      return rbacRefusal(held.clientId, action, `/${path}`);
    }
    const versions = items.get(path) ?? [];
    const found = version === undefined ? versions.at(-1) : versions.find((v) => v.version === version);
    const [code, what] = notFoundCodes[collection];
    if (!found) {
      const named = version === undefined ? name : `${name}/${version}`;
      return vaultError(404, code, `${what} with (name/id) ${named} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command.`);
    }
    if (!found.enabled) return vaultError(403, 'Forbidden', 'Operation get is not allowed on a disabled secret.', 'SecretDisabled');
    return { status: 200, body: found.body };
  }

  /** `GET /secrets`: a page of the latest versions' properties in name order, never values. */
  function list(authorization: string | undefined, query: URLSearchParams): Reply {
    const held = admit(authorization, query);
    if ('status' in held) return held;
    counters.lists += 1;
    if (!listers.has(held.clientId)) return rbacRefusal(held.clientId, 'secrets/readMetadata/action', '');
    const size = Number(query.get('maxresults') ?? '25');
    if (!Number.isInteger(size) || size < 1 || size > 25) return vaultError(400, 'BadParameter', 'invalid maxresults');
    const names = [...items.keys()].filter((k) => k.startsWith('secrets/')).map((k) => k.slice('secrets/'.length)).sort((a, b) => (a.toLowerCase() < b.toLowerCase() ? -1 : 1));
    const skip = query.get('$skiptoken');
    let start = 0;
    if (skip !== null) {
      const marker = parseSkipToken(skip);
      if (marker === undefined) return vaultError(400, 'BadParameter', 'The skip token is invalid.');
      start = names.findIndex((n) => n.toLowerCase() > marker);
      if (start < 0) start = names.length;
    }
    const page = names.slice(start, start + size);
    const value = page.map((name) => {
      const latest = items.get(`secrets/${name}`)!.at(-1)!;
      const { value: _value, kid: _kid, ...properties } = latest.body;
      return { ...properties, id: `${url}/secrets/${name}` };
    });
    const more = start + size < names.length;
    const token = Buffer.from(JSON.stringify({ NextMarker: `2!${page.at(-1)?.length ?? 0}!${(page.at(-1) ?? '').toLowerCase()}`, TargetLocation: 0 })).toString('base64');
    // Key Vault writes the default port into nextLink.
    const origin = nextLinkOrigin ?? url.replace(/^https:\/\/([^/:]+)$/, 'https://$1:443');
    return { status: 200, body: { value, nextLink: more ? `${origin}/secrets?api-version=${query.get('api-version')}&$skiptoken=${token}&maxresults=${size}` : null } };
  }

  async function route(incoming: IncomingMessage, body: Buffer): Promise<Reply> {
    const target = new URL(incoming.url ?? '/', 'https://azure');
    const segments = target.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    if (incoming.method === 'GET' && segments.length === 4 && segments[1] === 'v2.0' && segments[2] === '.well-known' && segments[3] === 'openid-configuration') {
      return discovery(segments[0]!);
    }
    if (incoming.method === 'POST' && segments.length === 4 && segments[1] === 'oauth2' && segments[2] === 'v2.0' && segments[3] === 'token') {
      return tokenEndpoint(new URLSearchParams(body.toString('utf8')), segments[0]!);
    }
    if (incoming.method === 'GET' && segments.length === 1 && segments[0] === 'secrets') return list(incoming.headers.authorization, target.searchParams);
    const collection = collections.find((c) => c === segments[0]);
    if (incoming.method === 'GET' && collection && (segments.length === 2 || segments.length === 3)) {
      return read(collection, segments[1]!, segments[2], incoming.headers.authorization, target.searchParams);
    }
    return vaultError(404, 'NotFound', 'The requested resource was not found.');
  }

  async function handle(incoming: IncomingMessage, res: ServerResponse): Promise<void> {
    counters.requests += 1;
    const requested = new URL(incoming.url ?? '/', 'https://azure');
    const route_ = requested.pathname + requested.search;
    const fault = faults.take(route_);
    if (fault && (await faults.before(fault, res, errorBody, 'application/json; charset=utf-8'))) {
      incoming.resume();
      return;
    }
    const chunks: Buffer[] = [];
    for await (const chunk of incoming) chunks.push(chunk as Buffer);
    const reply = await route(incoming, Buffer.concat(chunks));
    const headers = { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-cache', 'x-ms-request-id': webcrypto.randomUUID(), ...reply.headers };
    faults.send(fault, res, reply.status, headers, JSON.stringify(reply.body), JSON.stringify({ value: ['not', 'a', 'secret'], id: 42 }));
  }

  const leaf = await ca.issue({ commonName: 'azure', dnsNames: ['localhost'], ips: ['127.0.0.1'] });
  const server = createServer({ cert: leaf.cert, key: leaf.key }, (incoming, res) => {
    handle(incoming, res).catch(() => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'InternalServerError', message: 'internal error' } }));
    });
  });
  server.keepAliveTimeout = 5_000;
  url = await listenOnLoopback(server);

  return {
    url,
    ca,
    tenantId,
    counters,
    tokenRequests,
    faults,
    issuePodToken({ namespace, serviceAccount, audience = workloadIdentityAudience, issuer = podTokenIssuer, ttlSeconds = 3600, notBeforeSeconds = 0 }) {
      const iat = Math.floor(now() / 1000);
      return podTokens.sign({
        aud: [audience],
        exp: iat + ttlSeconds,
        iat,
        nbf: iat + notBeforeSeconds,
        iss: issuer,
        sub: `system:serviceaccount:${namespace}:${serviceAccount}`,
        'kubernetes.io': { namespace, pod: { name: `${serviceAccount}-0`, uid: webcrypto.randomUUID() }, serviceaccount: { name: serviceAccount, uid: webcrypto.randomUUID() } },
      });
    },
    federate(credential) {
      federated.push(credential);
    },
    grant(clientId, patterns) {
      const compiled = patterns.map((p) => new RegExp(`^${p.split('*').map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`));
      grants.set(clientId, [...(grants.get(clientId) ?? []), ...compiled]);
    },
    setSecret(name, value, { contentType, enabled = true, tags } = {}) {
      return newVersion(
        'secrets',
        name,
        (id) => ({ value, ...(contentType ? { contentType } : {}), id, attributes: attributes(enabled, Math.floor(now() / 1000)), tags: tags ?? {} }),
        enabled,
      );
    },
    grantList(clientId) {
      listers.add(clientId);
    },
    deleteSecret(name) {
      items.delete(`secrets/${name}`);
    },
    setNextLinkOrigin(origin) {
      nextLinkOrigin = origin;
    },
    setKey(name, publicKeyPem) {
      return newVersion('keys', name, (kid) => ({
        key: { kid, ...keyJwk(publicKeyPem), key_ops: ['sign', 'verify'] },
        attributes: attributes(true, Math.floor(now() / 1000)),
        tags: {},
      }));
    },
    addCertificate(name, chain, { bagOrder, emptyPassword = 'zero', contentType = 'application/x-pkcs12' } = {}) {
      const version = randomBytes(16).toString('hex');
      const base = (c: Collection) => `${url}/${c}/${name}/${version}`;
      const leafDer = new X509Certificate(chain.certificates[0]!).raw;
      const created = Math.floor(now() / 1000);
      const value =
        contentType === 'application/x-pkcs12'
          ? buildPfx(chain, bagOrder ?? shuffledOrder(chain.certificates.length + 1), emptyPassword === 'zero' ? Buffer.alloc(0) : Buffer.alloc(2)).toString('base64')
          : pemFile(chain, bagOrder ?? shuffledOrder(chain.certificates.length + 1));
      const add = (c: Collection, body: Record<string, unknown>) => items.set(`${c}/${name}`, [...(items.get(`${c}/${name}`) ?? []), { version, created, enabled: true, body }]);
      const x5t = createHash('sha1').update(leafDer).digest('base64url');
      add('certificates', { id: base('certificates'), kid: base('keys'), sid: base('secrets'), x5t, cer: leafDer.toString('base64'), attributes: attributes(true, created), tags: {} });
      add('secrets', { value, contentType, id: base('secrets'), managed: true, kid: base('keys'), attributes: attributes(true, created), tags: {} });
      add('keys', { key: { kid: base('keys'), ...keyJwk(chain.key), key_ops: ['sign', 'verify'] }, attributes: attributes(true, created), managed: true, tags: {} });
      return version;
    },
    throttle(times, retryAfterSeconds) {
      throttled = { times, retryAfterSeconds };
    },
    setTokenLifetime(seconds) {
      tokenLifetime = seconds;
    },
    inject(fault, opts) {
      faults.inject(fault, opts);
    },
    connections() {
      return new Promise<number>((resolve, reject) => server.getConnections((err, count) => (err ? reject(err) : resolve(count))));
    },
    async close() {
      faults.releaseHanging();
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

/** The last name of the page before, lowercased, from Key Vault's base64 JSON skip token. */
function parseSkipToken(token: string): string | undefined {
  try {
    const marker: unknown = JSON.parse(Buffer.from(token, 'base64').toString('utf8'))?.NextMarker;
    return typeof marker === 'string' ? marker.split('!').slice(2).join('!') : undefined;
  } catch {
    return undefined;
  }
}

function errorBody(status: number): { body: string } {
  const code = status === 429 ? 'Throttled' : status >= 500 ? 'ServiceUnavailable' : 'BadParameter';
  return { body: JSON.stringify({ error: { code, message: `Injected HTTP ${status}.` } }) };
}

/** The public JWK of a key in Key Vault's shape (RSA: n, e; EC: crv, x, y). */
function keyJwk(keyPem: string): Record<string, unknown> {
  const key = keyPem.includes('PRIVATE KEY') ? createPublicKey(createPrivateKey(keyPem)) : createPublicKey(keyPem);
  const jwk = key.export({ format: 'jwk' }) as Record<string, unknown>;
  return jwk['kty'] === 'RSA' ? { kty: 'RSA', n: jwk['n'], e: jwk['e'] } : { kty: 'EC', crv: jwk['crv'], x: jwk['x'], y: jwk['y'] };
}

function shuffledOrder(n: number): number[] {
  const order = [...Array(n).keys()];
  for (let i = n - 1; i > 0; i -= 1) {
    const j = randomBytes(1)[0]! % (i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  // Never the tidy order: the client must sort.
  return order.every((v, i) => v === i) ? order.reverse() : order;
}

function pemFile(chain: TestChain, order: readonly number[]): string {
  const parts = [createPrivateKey(chain.key).export({ type: 'pkcs8', format: 'pem' }) as string, ...chain.certificates];
  return order.map((i) => parts[i]!).join('');
}

/**
 * A PFX as Key Vault and OpenSSL 3 write them: the key in a PKCS#8 shrouded bag and the
 * certificates in an EncryptedData part, both PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC), and a
 * SHA-256 MAC. Bags follow `order` (indexes into [key, ...certificates]), spread over the two parts.
 */
export function buildPfx(chain: TestChain, order: readonly number[], macPassword: Buffer): Buffer {
  const keyDer = createPrivateKey(chain.key).export({ type: 'pkcs8', format: 'der' });
  const certDers = chain.certificates.map((c) => new X509Certificate(c).raw);
  const plain: Sequence[] = [];
  const encrypted: Sequence[] = [];
  order.forEach((index, position) => {
    if (index === 0) {
      const { algorithm, data } = pbes2Encrypt(keyDer);
      plain.push(seq(oid('1.2.840.113549.1.12.10.1.2'), explicit0(seq(algorithm, octets(data)))));
    } else {
      const certBag = seq(oid('1.2.840.113549.1.9.22.1'), explicit0(octets(certDers[index - 1]!)));
      (position % 2 === 0 ? encrypted : plain).push(seq(oid('1.2.840.113549.1.12.10.1.3'), explicit0(certBag)));
    }
  });
  const dataInfo = (bytes: Buffer) => seq(oid('1.2.840.113549.1.7.1'), explicit0(octets(bytes)));
  const parts: Sequence[] = [];
  if (encrypted.length > 0) {
    const { algorithm, data } = pbes2Encrypt(der(seq(...encrypted)));
    const content = new Primitive({ idBlock: { tagClass: 3, tagNumber: 0 }, valueHex: data });
    const encryptedData = seq(new Integer({ value: 0 }), seq(oid('1.2.840.113549.1.7.1'), algorithm, content));
    parts.push(seq(oid('1.2.840.113549.1.7.6'), explicit0(encryptedData)));
  }
  parts.push(dataInfo(der(seq(...plain))));
  if (order[0] === 0) parts.reverse();
  const authSafe = der(seq(...parts));
  const salt = randomBytes(8);
  const iterations = 2048;
  const mac = createHmac('sha256', pkcs12Kdf(macPassword, salt, iterations, 3, 32)).update(authSafe).digest();
  const macData = seq(seq(seq(oid('2.16.840.1.101.3.4.2.1'), new Null()), octets(mac)), octets(salt), new Integer({ value: iterations }));
  return der(seq(new Integer({ value: 3 }), dataInfo(authSafe), macData));
}

const seq = (...value: BaseBlock[]) => new Sequence({ value });
const oid = (value: string) => new ObjectIdentifier({ value });
const octets = (bytes: Buffer) => new OctetString({ valueHex: bytes });
const explicit0 = (inner: BaseBlock) => new Constructed({ idBlock: { tagClass: 3, tagNumber: 0 }, value: [inner] });
const der = (block: BaseBlock) => Buffer.from(block.toBER(false));

function pbes2Encrypt(data: Buffer): { algorithm: Sequence; data: Buffer } {
  const salt = randomBytes(16);
  const iv = randomBytes(16);
  const iterations = 2048;
  const key = pbkdf2Sync(Buffer.alloc(0), salt, iterations, 32, 'sha256');
  const cipher = createCipheriv('aes-256-cbc', key, iv);
  const out = Buffer.concat([cipher.update(data), cipher.final()]);
  // PBES2 { PBKDF2 { salt, iterations, hmacWithSHA256 }, aes256-CBC { iv } }
  const pbkdf2 = seq(oid('1.2.840.113549.1.5.12'), seq(octets(salt), new Integer({ value: iterations }), seq(oid('1.2.840.113549.2.9'), new Null())));
  const algorithm = seq(oid('1.2.840.113549.1.5.13'), seq(pbkdf2, seq(oid('2.16.840.1.101.3.4.1.42'), octets(iv))));
  return { algorithm, data: out };
}

/** RFC 7292 B.2 with SHA-256 (v = 64), written out separately from the provider's. */
function pkcs12Kdf(password: Buffer, salt: Buffer, iterations: number, id: number, length: number): Buffer {
  const v = 64;
  const fill = (b: Buffer) => (b.length === 0 ? b : Buffer.from(Array.from({ length: v * Math.ceil(b.length / v) }, (_, i) => b[i % b.length]!)));
  const i = Buffer.concat([fill(salt), fill(password)]);
  const out: Buffer[] = [];
  while (Buffer.concat(out).length < length) {
    let a = createHash('sha256').update(Buffer.concat([Buffer.alloc(v, id), i])).digest();
    for (let n = 1; n < iterations; n += 1) a = createHash('sha256').update(a).digest();
    out.push(a);
    const b = BigInt(`0x${Buffer.from(Array.from({ length: v }, (_, k) => a[k % a.length]!)).toString('hex')}`);
    for (let j = 0; j < i.length; j += v) {
      const sum = (BigInt(`0x${i.subarray(j, j + v).toString('hex')}`) + b + 1n) % (1n << BigInt(v * 8));
      Buffer.from(sum.toString(16).padStart(v * 2, '0'), 'hex').copy(i, j);
    }
  }
  return Buffer.concat(out).subarray(0, length);
}

/**
 * An EC root, an EC intermediate and a leaf (RSA or EC) signed by it: the mix node-forge fails on.
 * Returned leaf first, with the leaf's key.
 */
export async function createTestChain({ leaf = 'RSA' }: { leaf?: 'RSA' | 'EC' } = {}): Promise<TestChain> {
  const ec = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
  const rsa = { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' } as const;
  const gen = (alg: typeof ec | typeof rsa) => webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']) as unknown as Promise<CryptoKeyPair>;
  const [rootKeys, interKeys, leafKeys] = await Promise.all([gen(ec), gen(ec), gen(leaf === 'RSA' ? rsa : ec)]);
  const notBefore = new Date(Date.now() - 60_000);
  const notAfter = new Date(Date.now() + 30 * 86_400_000);
  const ca = (pathLength: number) => [new x509.BasicConstraintsExtension(true, pathLength, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)];
  const root = await x509.X509CertificateGenerator.createSelfSigned({ serialNumber: '01', name: 'CN=usp azure root', notBefore, notAfter, keys: rootKeys, signingAlgorithm: ec, extensions: ca(1) });
  const inter = await x509.X509CertificateGenerator.create({
    serialNumber: '02', subject: 'CN=usp azure intermediate', issuer: root.subject, notBefore, notAfter, publicKey: interKeys.publicKey, signingKey: rootKeys.privateKey, signingAlgorithm: ec, extensions: ca(0),
  });
  const end = await x509.X509CertificateGenerator.create({
    serialNumber: '03', subject: 'CN=web.shop.example', issuer: inter.subject, notBefore, notAfter, publicKey: leafKeys.publicKey, signingKey: interKeys.privateKey, signingAlgorithm: ec,
    extensions: [new x509.BasicConstraintsExtension(false, undefined, true), new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'web.shop.example' }])],
  });
  const keyDer = await webcrypto.subtle.exportKey('pkcs8', leafKeys.privateKey as unknown as webcrypto.CryptoKey);
  return { key: x509.PemConverter.encode(keyDer, 'PRIVATE KEY'), certificates: [end, inter, root].map((c) => c.toString('pem') + '\n') };
}
