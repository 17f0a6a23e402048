import http from 'node:http';
import https from 'node:https';
import { resolve } from 'node:path';
import type * as K8s from '@kubernetes/client-node';
import { ProviderError } from '../../errors.js';
import { defaultMaxAnswerBytes, readCapped } from '../kit/http.js';

export type Client = typeof import('../../vendor/client-node.js');

/** Whose rights a read uses: the pod's token, or the kubeconfig's own credentials. */
export type ReadIdentity = 'pod' | 'provider';

export interface ClientOptions {
  readonly identity: ReadIdentity;
  readonly kubeconfig?: string;
  readonly context?: string;
}

/** One API client per store; only the small auth object of `requestAuth` is per request. */
export interface ApiClient {
  readonly k8s: Client;
  readonly kc: K8s.KubeConfig;
  readonly agent: http.Agent;
  readonly api: K8s.CoreV1Api;
  /** The API server's origin, for logs (the origin drops any user:password a server URL might carry). */
  readonly origin: string;
}

export async function createApiClient(opts: ClientOptions, baseDir: string): Promise<ApiClient> {
  const k8s: Client = await import('../../vendor/client-node.js');
  const kc = loadKubeConfig(k8s, opts, baseDir);
  const cluster = currentCluster(kc);
  const agent = createPooledAgent(k8s, kc, cluster, opts.identity);
  const api = new k8s.CoreV1Api(
    k8s.createConfiguration({ baseServer: new k8s.ServerConfiguration(cluster.server, {}), httpApi: boundedHttpLibrary(k8s) }),
  );
  return { k8s, kc, agent, api, origin: new URL(cluster.server).origin };
}

function loadKubeConfig(k8s: Client, opts: ClientOptions, baseDir: string): K8s.KubeConfig {
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
function createPooledAgent(k8s: Client, kc: K8s.KubeConfig, cluster: K8s.Cluster, identity: ReadIdentity): http.Agent {
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

/**
 * Replaces client-node's node-fetch library, which buffers an answer however large it is and, for
 * an answer with a Content-Length, never notices a connection reset mid-body (it waited for the
 * store timeout). Found by fault injection (test/faults): a 64 MiB answer was read whole, and a
 * reset ended as DeadlineExceeded. This reads through the store's agent with the kit's capped
 * reader (etcd refuses values over 1.5 MiB, far below the cap) and fails a cut-off answer at once;
 * failures look like node-fetch's, so the store's classification applies.
 */
function boundedHttpLibrary(k8s: Client): K8s.HttpLibrary {
  return k8s.wrapHttpLibrary({
    send(request) {
      return new Promise((resolvePromise, reject) => {
        const url = new URL(request.getUrl());
        const send = url.protocol === 'https:' ? https.request : http.request;
        const signal = request.getSignal();
        const fail = (err: unknown) => reject(asFetchFailure(err, signal));
        const req = send(
          url,
          { method: request.getHttpMethod(), headers: request.getHeaders(), agent: request.getAgent(), ...(signal ? { signal } : {}) },
          (res) => {
            readCapped(res, defaultMaxAnswerBytes, 'the API server').then((bytes) => {
              const headers = Object.fromEntries(Object.entries(res.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : (v ?? '')]));
              const body = { text: async () => bytes.toString('utf8'), binary: async () => bytes };
              resolvePromise(new k8s.ResponseContext(res.statusCode ?? 0, headers, body));
            }, fail);
          },
        );
        req.on('error', fail);
        const body = request.getBody();
        req.end(typeof body === 'string' ? body : body === undefined ? undefined : String(body));
      });
    },
  });
}

/** An abort mid-body surfaces as a reset; it is still an abort (the Mount's deadline or the store timeout). */
function asFetchFailure(err: unknown, signal: AbortSignal | undefined): unknown {
  if (err instanceof ProviderError || (err instanceof Error && err.name === 'AbortError')) return err;
  if (signal?.aborted) return Object.assign(new Error('aborted'), { name: 'AbortError' });
  const code = (err as { code?: unknown } | null)?.code ?? 'ECONNRESET';
  return Object.assign(new Error('request failed'), { name: 'FetchError', code });
}

/**
 * Per-request authentication passed as call options: client-node merges `authMethods` from the
 * call over the client's, so one CoreV1Api serves every pod and only this small object is per
 * request. (Call-time middleware would also work, but the generated Promise API wraps it in a way
 * that breaks client-node's own `setHeaderOptions`.)
 */
export function requestAuth(client: ApiClient, authorization: string | undefined, signal: AbortSignal): K8s.ConfigurationOptions {
  const auth: K8s.SecurityAuthentication = {
    getName: () => 'usp',
    async applySecurityAuthentication(request) {
      if (authorization === undefined) {
        // The kubeconfig's own credentials (token file, exec plugin, ...); its throwaway agent is replaced.
        await client.kc.applySecurityAuthentication(request);
      } else {
        request.setHeaderParam('Authorization', authorization);
      }
      request.setAgent(client.agent);
      request.setSignal(signal);
    },
  };
  return { authMethods: { default: auth } };
}

/** Names a foreign error by its code or class only: its message may quote paths or content. */
export function describeCause(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return code;
  return err instanceof Error ? err.constructor.name : typeof err;
}
