import http from 'node:http';
import https from 'node:https';
import { resolve } from 'node:path';
import type * as K8s from '@kubernetes/client-node';
import { z } from 'zod';
import { ProviderError } from '../errors.js';
import { tlsVerificationErrors } from './kit/tls.js';
import { duration } from '../schema.js';
import { fieldsContent } from './kit/content.js';
import type { BackendDefinition, FetchContext, FetchResult, StoreBackend } from './types.js';

type Client = typeof import('../vendor/client-node.js');

const options = z
  .strictObject({
    identity: z
      .enum(['pod', 'provider'])
      .default('pod')
      .describe(
        '`pod` reads with the pod\'s own token (its RBAC applies); `provider` with the provider\'s own credentials, which needs access rules that restrict namespaces.',
      ),
    audience: z.string().default('').describe('Audience of the pod token to present; `""` is the API server\'s own.'),
    kubeconfig: z
      .string()
      .min(1)
      .optional()
      .describe('A kubeconfig file for a remote cluster (or a laptop); the in-cluster config when absent.'),
    context: z.string().min(1).optional().describe('The kubeconfig context to use instead of its current-context (needs kubeconfig).'),
    timeout: duration
      .refine((ms) => ms > 0, 'must be above zero')
      .default(10_000)
      .describe('Budget of one read.'),
  });

type Options = z.infer<typeof options>;

export const kubernetesObjectFields = z.strictObject({
  kind: z.enum(['secret', 'configmap']).default('secret').describe('Read a Secret or a ConfigMap.'),
});

type Spec = z.infer<typeof kubernetesObjectFields>;
type ObjectKind = Spec['kind'];

interface Target {
  readonly kind: ObjectKind;
  readonly namespace: string;
  readonly name: string;
}

/** Reads Secrets and ConfigMaps from a Kubernetes API server, as the pod (its RBAC decides) or as the provider. */
export const kubernetesBackend: BackendDefinition<Options, Spec> = {
  kind: 'kubernetes',
  options,
  objectFields: kubernetesObjectFields,
  audiences: (opts) => (opts.identity === 'pod' ? [opts.audience] : []),
  docs: {
    summary: 'Secrets and ConfigMaps of a Kubernetes API server, read with the pod\'s own token (its RBAC decides) or the provider\'s.',
    guide: '[docs/kubernetes.md](kubernetes.md)',
    ref: '`NAME` (in the pod\'s namespace) or `NAMESPACE/NAME`.',
  },
  checkStore({ options: opts, restrictsNamespaces }) {
    const problems: string[] = [];
    if (opts.context !== undefined && opts.kubeconfig === undefined) problems.push('context: context needs kubeconfig');
    if (opts.identity === 'provider' && !restrictsNamespaces) {
      problems.push('identity: "provider" reads with the provider\'s own rights, so the store needs access rules that restrict namespaces');
    }
    return problems;
  },
  async create({ name, options: opts }, { baseDir }) {
    const k8s: Client = await import('../vendor/client-node.js');
    const kc = loadKubeConfig(k8s, opts, baseDir);
    const cluster = currentCluster(kc);
    const agent = createPooledAgent(k8s, kc, cluster, opts.identity);
    const api = new k8s.CoreV1Api(
      k8s.createConfiguration({ baseServer: new k8s.ServerConfiguration(cluster.server, {}), httpApi: boundedHttpLibrary(k8s) }),
    );
    return createStore({ name, opts, kc, agent, api, k8s });
  },
};

interface StoreParts {
  readonly k8s: Client;
  readonly name: string;
  readonly opts: Options;
  readonly kc: K8s.KubeConfig;
  readonly agent: http.Agent;
  readonly api: K8s.CoreV1Api;
}

function createStore({ k8s, name, opts, kc, agent, api }: StoreParts): StoreBackend<Spec> {
  return {
    name,
    async fetch({ ref, version, spec }, ctx) {
      if (version !== undefined) {
        throw new ProviderError('InvalidArgument', 'the kubernetes store serves only the current object; remove version');
      }
      const target = parseRef(ref, spec.kind, ctx.identity.namespace);
      // The token is checked before any request so that a missing or expired one never reaches the server.
      const authorization = opts.identity === 'pod' ? `Bearer ${ctx.tokenFor(opts.audience)}` : undefined;
      const read = (signal: AbortSignal) => readObject(api, target, requestAuth(kc, agent, authorization, signal));
      const object = await readOnce(read, { k8s, target, ctx, opts, storeName: name });
      return toFetchResult(target.kind, object);
    },
    async close() {
      agent.destroy();
    },
  };
}

function loadKubeConfig(k8s: Client, opts: Options, baseDir: string): K8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  if (opts.kubeconfig === undefined) {
    kc.loadFromCluster();
    return kc;
  }
  const path = resolve(baseDir, opts.kubeconfig);
  try {
    kc.loadFromFile(path);
  } catch (err) {
    throw new ProviderError('InvalidArgument', `kubeconfig ${path}: cannot load it (${describeCause(err)})`);
  }
  if (opts.context !== undefined) {
    if (!kc.getContextObject(opts.context)) {
      throw new ProviderError('InvalidArgument', `kubeconfig ${path}: no context named ${JSON.stringify(opts.context)}`);
    }
    kc.setCurrentContext(opts.context);
  }
  return kc;
}

function currentCluster(kc: K8s.KubeConfig): K8s.Cluster {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new ProviderError('InvalidArgument', 'the kubeconfig has no cluster for its current context');
  // Outside a cluster the in-cluster config yields "https://undefined:undefined", which is not a URL.
  if (!URL.canParse(cluster.server)) {
    throw new ProviderError(
      'InvalidArgument',
      `the API server address of cluster ${JSON.stringify(cluster.name)} is not a URL (outside a cluster, set kubeconfig)`,
    );
  }
  if (cluster.proxyUrl) throw new ProviderError('InvalidArgument', 'kubeconfig clusters with proxy-url are not supported');
  return cluster;
}

/**
 * client-node builds a fresh Agent (and rereads the CA file) for every request, which defeats
 * connection reuse; one agent per store keeps TLS sessions and sockets pooled. Client
 * certificates go into it only for identity `provider`: the API server prefers a client
 * certificate over a bearer token, so with identity `pod` it would silently read as the provider.
 */
function createPooledAgent(k8s: Client, kc: K8s.KubeConfig, cluster: K8s.Cluster, identity: Options['identity']): http.Agent {
  // Keep every socket of a burst (node drains start many pods at once): a new TLS handshake costs more than an idle socket.
  const pool = { keepAlive: true, maxSockets: 32, maxFreeSockets: 32 };
  if (cluster.server.startsWith('http:')) {
    if (!cluster.skipTLSVerify) {
      throw new ProviderError('InvalidArgument', 'a plain http API server needs insecure-skip-tls-verify in the kubeconfig');
    }
    return new http.Agent(pool);
  }
  const user = identity === 'provider' ? kc.getCurrentUser() : null;
  try {
    return new https.Agent({
      ...pool,
      ca: k8s.bufferFromFileOrString(cluster.caFile, cluster.caData) ?? undefined,
      cert: (user && k8s.bufferFromFileOrString(user.certFile, user.certData)) ?? undefined,
      key: (user && k8s.bufferFromFileOrString(user.keyFile, user.keyData)) ?? undefined,
      servername: cluster.tlsServerName,
      rejectUnauthorized: !cluster.skipTLSVerify,
    });
  } catch (err) {
    throw new ProviderError('InvalidArgument', `cannot load the TLS files of the kubeconfig (${describeCause(err)})`);
  }
}

/** Far above any object the API server stores (etcd refuses values over 1.5 MiB). */
const maxAnswerBytes = 8 * 1024 * 1024;

/**
 * Replaces client-node's node-fetch library, which buffers an answer however large it is and, for
 * an answer with a Content-Length, never notices a connection reset mid-body (it waited for the
 * store timeout). Found by fault injection (test/faults): a 64 MiB answer was read whole, and a
 * reset ended as DeadlineExceeded. This reads through the store's agent, stops at maxAnswerBytes
 * and fails a cut-off answer at once; failures look like node-fetch's, so classifyFailure applies.
 */
function boundedHttpLibrary(k8s: Client): K8s.HttpLibrary {
  return k8s.wrapHttpLibrary({
    send(request) {
      return new Promise((resolvePromise, reject) => {
        const url = new URL(request.getUrl());
        const send = url.protocol === 'https:' ? https.request : http.request;
        const signal = request.getSignal();
        // An abort mid-body surfaces as a reset; it is still an abort (deadline or store timeout).
        const networkError = (err: unknown) =>
          err instanceof ProviderError || (err instanceof Error && err.name === 'AbortError')
            ? err
            : signal?.aborted
              ? Object.assign(new Error('aborted'), { name: 'AbortError' })
              : Object.assign(new Error('request failed'), { name: 'FetchError', code: (err as { code?: unknown } | null)?.code ?? 'ECONNRESET' });
        const req = send(
          url,
          { method: request.getHttpMethod(), headers: request.getHeaders(), agent: request.getAgent(), ...(signal ? { signal } : {}) },
          (res) => {
            readCapped(res).then((bytes) => {
              const headers = Object.fromEntries(Object.entries(res.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : (v ?? '')]));
              const body = { text: async () => bytes.toString('utf8'), binary: async () => bytes };
              resolvePromise(new k8s.ResponseContext(res.statusCode ?? 0, headers, body));
            }, (err: unknown) => reject(networkError(err)));
          },
        );
        req.on('error', (err) => reject(networkError(err)));
        const body = request.getBody();
        req.end(typeof body === 'string' ? body : body === undefined ? undefined : String(body));
      });
    },
  });
}

async function readCapped(res: http.IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res) {
    size += (chunk as Buffer).length;
    if (size > maxAnswerBytes) {
      res.destroy();
      // The same object will be as large on the next call: not worth retrying within this Mount.
      throw new ProviderError('Unavailable', `the API server's answer exceeded ${maxAnswerBytes} bytes`, { transient: false });
    }
    chunks.push(chunk as Buffer);
  }
  // A reset after the last chunk arrived still cuts the answer short of its Content-Length.
  if (!res.complete) throw Object.assign(new Error('aborted'), { code: 'ECONNRESET' });
  return Buffer.concat(chunks);
}

/**
 * Per-request authentication passed as call options: client-node merges `authMethods` from the
 * call over the client's, so one CoreV1Api serves every pod and only this small object is per
 * request. (Call-time middleware would also work, but the generated Promise API wraps it in a way
 * that breaks client-node's own `setHeaderOptions`.)
 */
function requestAuth(
  kc: K8s.KubeConfig,
  agent: http.Agent,
  authorization: string | undefined,
  signal: AbortSignal,
): K8s.ConfigurationOptions {
  const auth: K8s.SecurityAuthentication = {
    getName: () => 'usp',
    async applySecurityAuthentication(request) {
      if (authorization === undefined) {
        // The kubeconfig's own credentials (token file, exec plugin, ...); its throwaway agent is replaced.
        await kc.applySecurityAuthentication(request);
      } else {
        request.setHeaderParam('Authorization', authorization);
      }
      request.setAgent(agent);
      request.setSignal(signal);
    },
  };
  return { authMethods: { default: auth } };
}

async function readObject(
  api: K8s.CoreV1Api,
  { kind, namespace, name }: Target,
  call: K8s.ConfigurationOptions,
): Promise<K8s.V1Secret | K8s.V1ConfigMap> {
  switch (kind) {
    case 'secret':
      return api.readNamespacedSecret({ namespace, name }, call);
    case 'configmap':
      return api.readNamespacedConfigMap({ namespace, name }, call);
  }
}

const dnsLabel = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

function isDnsSubdomain(value: string): boolean {
  return value.length <= 253 && value.split('.').every((label) => dnsLabel.test(label));
}

/** `NAME` (the pod's namespace) or `NAMESPACE/NAME`. */
function parseRef(ref: string, kind: ObjectKind, podNamespace: string): Target {
  const parts = ref.split('/');
  const [namespace, name] = parts.length === 1 ? [podNamespace, parts[0]!] : [parts[0]!, parts[1] ?? ''];
  if (parts.length > 2 || !dnsLabel.test(namespace) || !isDnsSubdomain(name)) {
    throw new ProviderError(
      'InvalidArgument',
      'ref must be NAME or NAMESPACE/NAME, with a DNS-1123 label as namespace and a DNS-1123 subdomain as name',
    );
  }
  return { kind, namespace, name };
}

interface CallScope {
  readonly k8s: Client;
  readonly target: Target;
  readonly ctx: FetchContext;
  readonly opts: Options;
  readonly storeName: string;
}

/**
 * One attempt within the store timeout and the Mount's signal. Retries belong to the shared store
 * guard; this only classifies the failure (a TLS verification failure is not worth retrying).
 */
async function readOnce<T>(read: (signal: AbortSignal) => Promise<T>, scope: CallScope): Promise<T> {
  const timeout = AbortSignal.timeout(scope.opts.timeout);
  try {
    return await read(AbortSignal.any([scope.ctx.signal, timeout]));
  } catch (err) {
    throw classifyFailure(err, scope, timeout);
  }
}


function classifyFailure(err: unknown, scope: CallScope, timeout: AbortSignal): ProviderError {
  if (err instanceof ProviderError) return err;
  if (err instanceof scope.k8s.ApiException) return classifyStatus(err, scope);
  const { target, ctx, opts } = scope;
  const what = describeTarget(target);
  if (err instanceof Error && err.name === 'AbortError') {
    if (ctx.signal.aborted) {
      return fail('DeadlineExceeded', `reading ${what} was cancelled (the Mount ended or its deadline passed)`);
    }
    if (timeout.aborted) {
      return new ProviderError(
        'DeadlineExceeded',
        `the API server did not answer for ${what} within ${opts.timeout / 1000}s (the store timeout)`,
        { transient: true },
      );
    }
  }
  // Cut-off or non-JSON answers (a proxy's HTML page) are the store's fault, not the pod's: retryable.
  if (err instanceof SyntaxError) return fail('Unavailable', `the API server sent a malformed answer for ${what} (not JSON)`);
  if (err instanceof Error && err.name === 'FetchError') {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string' && tlsVerificationErrors.has(code)) {
      return new ProviderError('Unavailable', `TLS verification of the API server failed reading ${what} (${code})`, { transient: false });
    }
    const cause = typeof code === 'string' ? code : 'network error';
    return fail('Unavailable', `cannot reach the API server reading ${what} (${cause})`);
  }
  return fail('Internal', `reading ${what} failed unexpectedly (${describeCause(err)})`);
}

function fail(code: ProviderError['code'], message: string, retryAfterSeconds?: number): ProviderError {
  return new ProviderError(code, message, retryAfterSeconds);
}

/** Maps an API `Status` answer; only its `reason` word is quoted, never its message. */
function classifyStatus({ code, body, headers }: K8s.ApiException<unknown>, scope: CallScope): ProviderError {
  const status = parseStatus(body);
  const reason = status.reason ?? defaultReason(code);
  const what = describeTarget(scope.target);
  const who = describeActor(scope);
  if (code === 401) {
    const credentials = scope.opts.identity === 'pod'
      ? `the token of ${who} for audience ${JSON.stringify(scope.opts.audience)}`
      : `the credentials of ${who}`;
    return fail('PermissionDenied', `the API server did not accept ${credentials} reading ${what} (${reason})`);
  }
  if (code === 403) return fail('PermissionDenied', `${who} may not get ${what} (${reason})`);
  if (code === 404) return fail('NotFound', `${what} not found (${reason})`);
  if (code === 429 || code >= 500) {
    const retryAfter = parseRetryAfter(headers['retry-after']) ?? status.retryAfterSeconds;
    return fail('Unavailable', `the API server answered ${code} (${reason}) for ${what}`, retryAfter);
  }
  return fail('Internal', `the API server answered ${code} (${reason}) for ${what}`);
}

interface StatusFacts {
  readonly reason?: string;
  readonly retryAfterSeconds?: number;
}

function parseStatus(body: unknown): StatusFacts {
  let value: unknown = body;
  if (typeof body === 'string') {
    try {
      value = JSON.parse(body);
    } catch {
      return {};
    }
  }
  if (typeof value !== 'object' || value === null || (value as { kind?: unknown }).kind !== 'Status') return {};
  const { reason, details } = value as { reason?: unknown; details?: { retryAfterSeconds?: unknown } };
  const seconds = details?.retryAfterSeconds;
  return {
    // A reason is a CamelCase word; anything else is not quoted back.
    reason: typeof reason === 'string' && /^[A-Za-z]{1,64}$/.test(reason) ? reason : undefined,
    retryAfterSeconds: typeof seconds === 'number' && seconds >= 0 ? seconds : undefined,
  };
}

function parseRetryAfter(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

function defaultReason(code: number): string {
  return http.STATUS_CODES[code]?.replace(/[^A-Za-z]/g, '') ?? 'Unknown';
}

function describeTarget({ kind, namespace, name }: Target): string {
  return `${kind === 'secret' ? 'Secret' : 'ConfigMap'} ${namespace}/${name}`;
}

function describeActor({ ctx, opts, storeName }: CallScope): string {
  const pod = `service account ${ctx.identity.namespace}/${ctx.identity.serviceAccount}`;
  return opts.identity === 'pod' ? pod : `the provider's identity of store ${JSON.stringify(storeName)} (for ${pod})`;
}

/** Names a foreign error by its code or class only: its message may quote paths or content. */
function describeCause(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return code;
  return err instanceof Error ? err.constructor.name : typeof err;
}

function toFetchResult(kind: ObjectKind, object: K8s.V1Secret | K8s.V1ConfigMap): FetchResult {
  const fields = kind === 'secret' ? secretFields(object as K8s.V1Secret) : configMapFields(object as K8s.V1ConfigMap);
  return { content: fieldsContent(fields), version: object.metadata?.resourceVersion };
}

function secretFields(secret: K8s.V1Secret): Record<string, Buffer> {
  return Object.fromEntries(Object.entries(stringMap(secret.data, 'data')).map(([key, value]) => [key, decodeBase64(value, key)]));
}

function configMapFields(configMap: K8s.V1ConfigMap): Record<string, Buffer> {
  return Object.fromEntries([
    ...Object.entries(stringMap(configMap.data, 'data')).map(([key, value]) => [key, Buffer.from(value, 'utf8')] as const),
    ...Object.entries(stringMap(configMap.binaryData, 'binaryData')).map(([key, value]) => [key, decodeBase64(value, key)] as const),
  ]);
}

/**
 * client-node does not check value types: a map of non-strings used to crash the decoding with a
 * TypeError (Internal). Found by fault injection (test/faults, wrong-shape JSON); it is a malformed answer.
 */
function stringMap(value: unknown, field: string): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value) || Object.values(value).some((v) => typeof v !== 'string')) {
    throw new ProviderError('Unavailable', `the API server sent a malformed answer (${field} is not a map of strings)`);
  }
  return value as Record<string, string>;
}

/** Node's base64 decoder skips invalid characters; a round trip catches a corrupted value instead. */
function decodeBase64(value: string, key: string): Buffer {
  const bytes = Buffer.from(value, 'base64');
  if (bytes.toString('base64') !== value) {
    throw new ProviderError('Unavailable', `the API server sent a malformed answer (key ${JSON.stringify(key)} is not valid base64)`);
  }
  return bytes;
}
