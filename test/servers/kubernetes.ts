/**
 * A small, protocol-faithful Kubernetes API server for tests, driven by the real
 * @kubernetes/client-node. It serves what the provider uses:
 *   GET /api/v1/namespaces/{ns}/secrets/{name} and .../configmaps/{name}
 *   GET /api/v1/namespaces/{ns}/secrets and .../configmaps (RBAC verb `list`): equality label
 *   selectors (`k=v`, `k==v`, comma-separated), `limit` and `continue` paging in name order; a
 *   fault's route for a page after the first carries `?continue` (match /continue/ for page two)
 * with real object shapes, real `Status` error bodies, bearer-token and client-certificate
 * authentication, an RBAC-like authorisation table and `resourceVersion` bumping on every write.
 * For the driver's secretObjects sync it also takes POST /api/v1/namespaces/{ns}/secrets and PUT
 * .../secrets/{name}, with the API server's Secret validation (key names, the 1 MiB limit, the keys
 * kubernetes.io/tls and kubernetes.io/dockerconfigjson require) answered as 422 `Invalid`.
 *
 *   const api = await startKubernetesTestServer();       // HTTPS with its own CA; {tls: false} for http
 *   api.url, api.caPem
 *   api.issueToken({namespace, serviceAccount, audience?, expiresInSeconds?, podName?})
 *       -> {token, expiresAt}: a JWT (HS256, key held by the server) with the claims the API server
 *          puts in projected service-account tokens; verified for signature, expiry and audience.
 *          `audience` defaults to the server's own (what the driver's "" audience yields).
 *   api.addUser(name, 'token' | 'certificate')     a kubeconfig identity (static token or client cert)
 *   api.writeKubeconfig(path, {user?, caPem?, context?})   a kubeconfig for this server
 *   api.putSecret({namespace, name, type?, data}) / api.putConfigMap({namespace, name, data?, binaryData?})
 *       -> the new resourceVersion; api.deleteObject(resource, namespace, name)
 *   api.allow({subject, namespace, resource, names?, verbs?})   grant verbs (default `get`; also
 *       `create`, `update` for secrets); subjects are user names, serviceAccountUser(ns, sa) gives a
 *       service account's
 *   api.getObject(resource, namespace, name)        the stored object as the API returns it, or undefined
 *   api.inject(fault, {times?, match?})              a fault of the shared vocabulary (./faults.ts) for the
 *       next `times` requests whose path matches; api.faults.applied counts what was applied, and
 *       api.faults.clear() drops what is still armed. An injected `status` answers with the
 *       `Status` body the API server sends for it (reason, and details.retryAfterSeconds with a
 *       Retry-After header for 429 and 503, 1 s unless the fault says otherwise)
 *   api.requests                                     every request: method, path, user, status
 *   api.connections()                                TCP connections accepted so far (pooling checks)
 *   api.openConnections()                            TCP connections open now (close() checks)
 *   api.close()
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { createFaultInjector, type ErrorBody, type Fault, type FaultInjector, type InjectOptions } from './faults.js';
import { createPodTokenSigner } from './pod-tokens.js';
import { createTestCa, type Pem } from './tls.js';

export type Resource = 'secrets' | 'configmaps';
export type Verb = 'get' | 'list' | 'create' | 'update';

export interface IssuedToken {
  readonly token: string;
  /** Milliseconds since the epoch. */
  readonly expiresAt: number;
}

export interface LoggedRequest {
  readonly method: string;
  readonly path: string;
  /** The authenticated user; undefined when authentication failed. */
  readonly user?: string;
  readonly status: number;
}

export interface KubernetesTestServer {
  readonly url: string;
  readonly caPem: string;
  /** The audience the server accepts; tokens for others are rejected (401). */
  readonly audience: string;
  issueToken(options: {
    namespace: string;
    serviceAccount: string;
    audience?: string;
    expiresInSeconds?: number;
    podName?: string;
  }): IssuedToken;
  addUser(name: string, kind: 'token' | 'certificate'): Promise<void>;
  writeKubeconfig(path: string, options?: { user?: string; caPem?: string; context?: string }): Promise<void>;
  putSecret(object: { namespace: string; name: string; type?: string; data: Record<string, Buffer | string>; labels?: Record<string, string> }): string;
  putConfigMap(object: {
    namespace: string;
    name: string;
    labels?: Record<string, string>;
    data?: Record<string, string>;
    binaryData?: Record<string, Buffer>;
  }): string;
  deleteObject(resource: Resource, namespace: string, name: string): void;
  allow(rule: { subject: string; namespace: string; resource: Resource; names?: string[]; verbs?: Verb[] }): void;
  getObject(resource: Resource, namespace: string, name: string): Record<string, unknown> | undefined;
  inject(fault: Fault, options?: InjectOptions): void;
  readonly faults: FaultInjector;
  readonly requests: readonly LoggedRequest[];
  connections(): number;
  openConnections(): number;
  close(): Promise<void>;
}

export function serviceAccountUser(namespace: string, serviceAccount: string): string {
  return `system:serviceaccount:${namespace}:${serviceAccount}`;
}

const defaultAudience = 'https://kubernetes.default.svc.cluster.local';

interface StoredObject {
  readonly body: Record<string, unknown>;
}

interface Rule {
  readonly subject: string;
  readonly namespace: string;
  readonly resource: Resource;
  readonly names?: readonly string[];
  readonly verbs?: readonly Verb[];
}

interface User {
  readonly kind: 'token' | 'certificate';
  readonly token?: string;
  readonly pem?: Pem;
}

export async function startKubernetesTestServer(options: { tls?: boolean } = {}): Promise<KubernetesTestServer> {
  const useTls = options.tls ?? true;
  const ca = await createTestCa('usp test kubernetes CA');
  const podTokens = createPodTokenSigner('usp-test');
  const objects = new Map<string, StoredObject>();
  const rules: Rule[] = [];
  const users = new Map<string, User>();
  const requests: LoggedRequest[] = [];
  const injected = createFaultInjector();
  let revision = 1000;

  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    void handleRequest(req, res);
  };
  const server = useTls
    ? https.createServer(
        {
          ...(await ca.issue({ commonName: 'kube-apiserver', dnsNames: ['localhost', 'kubernetes.default.svc'], ips: ['127.0.0.1'] })),
          ca: ca.cert,
          requestCert: true,
          rejectUnauthorized: false,
        },
        handler,
      )
    : http.createServer(handler);
  let connections = 0;
  const open = new Set<Socket>();
  server.on('connection', (socket) => {
    connections += 1;
    open.add(socket);
    socket.on('close', () => open.delete(socket));
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as AddressInfo;
  const url = `${useTls ? 'https' : 'http'}://127.0.0.1:${port}`;

  async function handleRequest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const requestUrl = new URL(req.url ?? '/', url);
    const path = requestUrl.pathname;
    const user = authenticate(req);
    const spoiler = injected.take(requestUrl.searchParams.has('continue') ? `${path}?continue` : path);
    if (spoiler && (await injected.before(spoiler, res, statusBody(path), 'application/json'))) {
      requests.push({ method: req.method ?? '', path, user, status: spoiler.kind === 'status' ? spoiler.status : 0 });
      return;
    }
    const answer = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      requests.push({ method: req.method ?? '', path, user, status });
      injected.send(spoiler, res, status, { 'content-type': 'application/json', ...headers }, JSON.stringify(body), wrongShape);
    };
    if (user === undefined) return answer(401, status(401, 'Unauthorized', 'Unauthorized'));
    const collection = /^\/api\/v1\/namespaces\/([^/]+)\/secrets$/.exec(path);
    if (collection && req.method === 'POST') return writeSecret(user, collection[1]!, undefined, await readBody(req), answer);
    const listRoute = /^\/api\/v1\/namespaces\/([^/]+)\/(secrets|configmaps)$/.exec(path);
    if (listRoute && req.method === 'GET') return list(user, listRoute[1]!, listRoute[2] as Resource, requestUrl.searchParams, answer);
    const route = /^\/api\/v1\/namespaces\/([^/]+)\/(secrets|configmaps)\/([^/]+)$/.exec(path);
    if (!route) return answer(404, status(404, 'NotFound', 'the server could not find the requested resource'));
    const [namespace, resource, name] = [route[1]!, route[2] as Resource, decodeURIComponent(route[3]!)];
    if (req.method === 'PUT' && resource === 'secrets') return writeSecret(user, namespace, name, await readBody(req), answer);
    if (req.method !== 'GET') {
      return answer(405, status(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource`));
    }
    if (!isAllowed(user, namespace, resource, name, 'get')) {
      const message =
        `${resource} "${name}" is forbidden: User "${user}" cannot get resource "${resource}" ` +
        `in API group "" in the namespace "${namespace}"`;
      return answer(403, status(403, 'Forbidden', message, { name, kind: resource }));
    }
    const stored = objects.get(objectKey(resource, namespace, name));
    if (!stored) return answer(404, status(404, 'NotFound', `${resource} "${name}" not found`, { name, kind: resource }));
    answer(200, stored.body);
  }

  /** A page of a namespace's objects in name order, as the API server pages with `limit` and `continue`. */
  function list(user: string, namespace: string, resource: Resource, query: URLSearchParams, answer: (status: number, body: unknown) => void): void {
    if (!isAllowed(user, namespace, resource, undefined, 'list')) {
      const message = `${resource} is forbidden: User "${user}" cannot list resource "${resource}" in API group "" in the namespace "${namespace}"`;
      return answer(403, status(403, 'Forbidden', message, { kind: resource }));
    }
    const selector = parseSelector(query.get('labelSelector') ?? '');
    if (!selector) return answer(400, status(400, 'BadRequest', 'unable to parse requirement: invalid label selector'));
    const after = query.get('continue') ? Buffer.from(query.get('continue')!, 'base64url').toString('utf8') : '';
    const limit = Number(query.get('limit') ?? 0);
    const matching = [...objects.entries()]
      .filter(([key]) => key.startsWith(`${resource}/${namespace}/`))
      .map(([, stored]) => stored.body)
      .filter((body) => {
        const meta = body.metadata as { name: string; labels?: Record<string, string> };
        return meta.name > after && selector.every(([k, v]) => meta.labels?.[k] === v);
      })
      .sort((a, b) => ((a.metadata as { name: string }).name < (b.metadata as { name: string }).name ? -1 : 1));
    const page = limit > 0 ? matching.slice(0, limit) : matching;
    const more = page.length < matching.length;
    const last = (page.at(-1)?.metadata as { name: string } | undefined)?.name ?? '';
    answer(200, {
      kind: resource === 'secrets' ? 'SecretList' : 'ConfigMapList',
      apiVersion: 'v1',
      metadata: {
        resourceVersion: String(revision),
        ...(more && { continue: Buffer.from(last, 'utf8').toString('base64url'), remainingItemCount: matching.length - page.length }),
      },
      items: page,
    });
  }

  /** Client certificates win over bearer tokens, as in the API server's authenticator chain. */
  function authenticate(req: http.IncomingMessage): string | undefined {
    const socket = req.socket as Partial<TLSSocket>;
    if (socket.authorized && socket.getPeerCertificate) {
      const commonName = socket.getPeerCertificate().subject?.CN;
      const cn = Array.isArray(commonName) ? commonName[0] : commonName;
      if (cn && users.get(cn)?.kind === 'certificate') return cn;
    }
    const match = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
    if (!match) return undefined;
    for (const [name, entry] of users) if (entry.token === match[1]) return name;
    return verifyServiceAccountToken(match[1]!);
  }

  function verifyServiceAccountToken(token: string): string | undefined {
    const claims = podTokens.verify(token);
    if (!claims) return undefined;
    const now = Math.floor(Date.now() / 1000);
    if (typeof claims.exp !== 'number' || claims.exp <= now) return undefined;
    if (typeof claims.nbf === 'number' && claims.nbf > now) return undefined;
    if (!Array.isArray(claims.aud) || !claims.aud.includes(defaultAudience)) return undefined;
    return typeof claims.sub === 'string' ? claims.sub : undefined;
  }

  function isAllowed(user: string, namespace: string, resource: Resource, name: string | undefined, verb: Verb): boolean {
    return rules.some(
      (r) =>
        r.subject === user &&
        r.namespace === namespace &&
        r.resource === resource &&
        (r.verbs ?? ['get']).includes(verb) &&
        (!r.names || (name !== undefined && r.names.includes(name))),
    );
  }

  /** POST (create, name from the body) or PUT (replace) of a Secret, validated like the API server. */
  function writeSecret(
    user: string,
    namespace: string,
    pathName: string | undefined,
    body: unknown,
    answer: (status: number, body: unknown) => void,
  ): void {
    const secret = (typeof body === 'object' && body !== null ? body : {}) as {
      metadata?: { name?: string; namespace?: string; labels?: object; annotations?: object; ownerReferences?: object[] };
      type?: string;
      data?: Record<string, string>;
    };
    const name = pathName ?? secret.metadata?.name ?? '';
    const verb: Verb = pathName === undefined ? 'create' : 'update';
    if (!isAllowed(user, namespace, 'secrets', pathName, verb)) {
      const message = `secrets${pathName ? ` "${name}"` : ''} is forbidden: User "${user}" cannot ${verb} resource "secrets" in API group "" in the namespace "${namespace}"`;
      return answer(403, status(403, 'Forbidden', message, { ...(pathName && { name }), kind: 'secrets' }));
    }
    const causes = secretProblems(name, secret.type ?? 'Opaque', secret.data ?? {});
    if (secret.metadata?.namespace !== undefined && secret.metadata.namespace !== namespace) {
      causes.push({ field: 'metadata.namespace', message: 'Invalid value: the namespace of the provided object does not match the namespace sent on the request' });
    }
    if (causes.length > 0) {
      const list = causes.map((c) => `${c.field}: ${c.message}`);
      const message = `Secret "${name}" is invalid: ${list.length === 1 ? list[0] : `[${list.join(', ')}]`}`;
      return answer(422, status(422, 'Invalid', message, { name, kind: 'Secret', causes: causes.map((c) => ({ reason: 'FieldValueInvalid', ...c })) }));
    }
    const exists = objects.has(objectKey('secrets', namespace, name));
    if (verb === 'create' && exists) {
      return answer(409, status(409, 'AlreadyExists', `secrets "${name}" already exists`, { name, kind: 'secrets' }));
    }
    if (verb === 'update' && !exists) {
      return answer(404, status(404, 'NotFound', `secrets "${name}" not found`, { name, kind: 'secrets' }));
    }
    store('secrets', namespace, name, (metadata) => ({
      kind: 'Secret',
      apiVersion: 'v1',
      metadata: {
        ...metadata,
        ...(secret.metadata?.labels && { labels: secret.metadata.labels }),
        ...(secret.metadata?.annotations && { annotations: secret.metadata.annotations }),
        ...(secret.metadata?.ownerReferences && { ownerReferences: secret.metadata.ownerReferences }),
      },
      type: secret.type ?? 'Opaque',
      data: secret.data ?? {},
    }));
    answer(verb === 'create' ? 201 : 200, objects.get(objectKey('secrets', namespace, name))!.body);
  }

  function store(resource: Resource, namespace: string, name: string, build: (metadata: object) => Record<string, unknown>): string {
    const key = objectKey(resource, namespace, name);
    const previous = objects.get(key)?.body.metadata as { uid: string; creationTimestamp: string } | undefined;
    revision += 1;
    const metadata = {
      name,
      namespace,
      uid: previous?.uid ?? randomUUID(),
      resourceVersion: String(revision),
      creationTimestamp: previous?.creationTimestamp ?? new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    };
    objects.set(key, { body: build(metadata) });
    return metadata.resourceVersion;
  }

  return {
    url,
    caPem: ca.cert,
    audience: defaultAudience,
    issueToken({ namespace, serviceAccount, audience = defaultAudience, expiresInSeconds = 3600, podName = 'test-pod' }) {
      const now = Math.floor(Date.now() / 1000);
      const exp = now + expiresInSeconds;
      const payload = {
        aud: [audience],
        exp,
        iat: now,
        nbf: now,
        iss: defaultAudience,
        jti: randomUUID(),
        sub: serviceAccountUser(namespace, serviceAccount),
        'kubernetes.io': {
          namespace,
          pod: { name: podName, uid: randomUUID() },
          serviceaccount: { name: serviceAccount, uid: randomUUID() },
        },
      };
      return { token: podTokens.sign(payload), expiresAt: exp * 1000 };
    },
    async addUser(name, kind) {
      if (kind === 'token') users.set(name, { kind, token: randomBytes(24).toString('base64url') });
      else users.set(name, { kind, pem: await ca.issue({ commonName: name, client: true }) });
    },
    async writeKubeconfig(path, { user, caPem = ca.cert, context = 'test' } = {}) {
      const entry = user === undefined ? undefined : users.get(user);
      if (user !== undefined && !entry) throw new Error(`unknown user ${user}`);
      const credentials: Record<string, string> = {};
      if (entry?.token) credentials['token'] = entry.token;
      if (entry?.pem) {
        credentials['client-certificate-data'] = Buffer.from(entry.pem.cert).toString('base64');
        credentials['client-key-data'] = Buffer.from(entry.pem.key).toString('base64');
      }
      const cluster: Record<string, unknown> = { server: url };
      if (useTls) cluster['certificate-authority-data'] = Buffer.from(caPem).toString('base64');
      else cluster['insecure-skip-tls-verify'] = true;
      const config = {
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'test-cluster', cluster }],
        users: [{ name: 'test-user', user: credentials }],
        contexts: [{ name: context, context: { cluster: 'test-cluster', user: 'test-user' } }],
        'current-context': context,
      };
      await writeFile(path, JSON.stringify(config, null, 2), { mode: 0o600 });
    },
    putSecret({ namespace, name, type = 'Opaque', data, labels }) {
      const encoded = Object.fromEntries(
        Object.entries(data).map(([k, v]) => [k, (typeof v === 'string' ? Buffer.from(v, 'utf8') : v).toString('base64')]),
      );
      return store('secrets', namespace, name, (metadata) => ({ kind: 'Secret', apiVersion: 'v1', metadata: { ...metadata, ...(labels && { labels }) }, type, data: encoded }));
    },
    putConfigMap({ namespace, name, data, binaryData, labels }) {
      return store('configmaps', namespace, name, (metadata) => ({
        kind: 'ConfigMap',
        apiVersion: 'v1',
        metadata: { ...metadata, ...(labels && { labels }) },
        ...(data && { data }),
        ...(binaryData && {
          binaryData: Object.fromEntries(Object.entries(binaryData).map(([k, v]) => [k, v.toString('base64')])),
        }),
      }));
    },
    deleteObject(resource, namespace, name) {
      objects.delete(objectKey(resource, namespace, name));
      revision += 1;
    },
    allow(rule) {
      rules.push(rule);
    },
    getObject(resource, namespace, name) {
      const body = objects.get(objectKey(resource, namespace, name))?.body;
      return body === undefined ? undefined : (JSON.parse(JSON.stringify(body)) as Record<string, unknown>);
    },
    inject(fault, options) {
      injected.inject(fault, options);
    },
    faults: injected,
    requests,
    connections: () => connections,
    openConnections: () => open.size,
    async close() {
      injected.releaseHanging();
      server.closeAllConnections();
      await new Promise<void>((done) => server.close(() => done()));
    },
  };
}

async function readBody(req: http.IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    return undefined;
  }
}

/** The API server's Secret validation (pkg/apis/core/validation ValidateSecret), as field causes. */
function secretProblems(name: string, type: string, data: Record<string, string>): Array<{ field: string; message: string }> {
  const causes: Array<{ field: string; message: string }> = [];
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(name) || name.length > 253) {
    causes.push({ field: 'metadata.name', message: name === '' ? 'Required value: name or generateName is required' : `Invalid value: "${name}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'` });
  }
  let total = 0;
  const decoded = new Map<string, Buffer>();
  for (const [key, value] of Object.entries(data)) {
    if (!/^[-._a-zA-Z0-9]+$/.test(key) || key.length > 253) {
      causes.push({ field: `data[${key}]`, message: `Invalid value: "${key}": a valid config key must consist of alphanumeric characters, '-', '_' or '.'` });
    }
    const bytes = Buffer.from(value, 'base64');
    decoded.set(key, bytes);
    total += bytes.length;
  }
  if (total > 1024 * 1024) causes.push({ field: 'data', message: 'Too long: must have at most 1048576 bytes' });
  if (type === 'kubernetes.io/tls') {
    for (const key of ['tls.crt', 'tls.key']) if (!decoded.has(key)) causes.push({ field: `data[${key}]`, message: 'Required value' });
  }
  if (type === 'kubernetes.io/dockerconfigjson') {
    const config = decoded.get('.dockerconfigjson');
    if (!config) {
      causes.push({ field: 'data[.dockerconfigjson]', message: 'Required value' });
    } else {
      try {
        JSON.parse(config.toString('utf8'));
      } catch (err) {
        causes.push({ field: 'data[.dockerconfigjson]', message: `Invalid value: "<secret contents redacted>": ${(err as Error).message}` });
      }
    }
  }
  return causes;
}

/** Equality requirements (`k=v`, `k==v`); undefined for anything else, which the tests never send. */
function parseSelector(text: string): Array<[string, string]> | undefined {
  if (text === '') return [];
  const terms = text.split(',').map((term) => /^([^=!]+)==?([^=!]*)$/.exec(term));
  if (terms.some((t) => !t)) return undefined;
  return terms.map((t) => [t![1]!, t![2]!]);
}

function objectKey(resource: Resource, namespace: string, name: string): string {
  return `${resource}/${namespace}/${name}`;
}

function status(code: number, reason: string, message: string, details?: Record<string, unknown>): Record<string, unknown> {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, ...(details && { details }), code };
}

/** A Secret whose data values are not strings: what a broken proxy or a schema mismatch yields. */
const wrongShape = JSON.stringify({ kind: 'Secret', apiVersion: 'v1', metadata: { name: 'x', resourceVersion: '1' }, data: { k: 12345 } });

/** The `Status` the API server answers for an injected error status (its reason, and when to retry). */
function statusBody(path: string): ErrorBody {
  return (code, retryAfterSeconds = 1) => {
    const name = path.split('/').pop() ?? '';
    const [body, headers] = statusAnswer(code, name, retryAfterSeconds);
    return { body: JSON.stringify(body), headers };
  };
}

function statusAnswer(code: number, name: string, retryAfterSeconds: number): [Record<string, unknown>, Record<string, string>] {
  const retry = { 'retry-after': String(retryAfterSeconds) };
  switch (code) {
    case 401:
      return [status(401, 'Unauthorized', 'Unauthorized'), {}];
    case 403:
      return [status(403, 'Forbidden', 'forbidden: test fault'), {}];
    case 404:
      return [status(404, 'NotFound', `"${name}" not found`), {}];
    case 409:
      return [
        status(409, 'Conflict', `Operation cannot be fulfilled on "${name}": the object has been modified; please apply your changes to the latest version and try again`),
        {},
      ];
    case 429:
      return [status(429, 'TooManyRequests', 'Too many requests, please try again later.', { retryAfterSeconds }), retry];
    case 503:
      return [status(503, 'ServiceUnavailable', 'the server is currently unable to handle the request', { retryAfterSeconds }), retry];
    default:
      return [status(code, 'InternalError', 'Internal error occurred: test fault', { causes: [{ message: 'test fault' }] }), {}];
  }
}
