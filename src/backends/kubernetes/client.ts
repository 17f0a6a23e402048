import http from 'node:http';
import https from 'node:https';
import { resolve } from 'node:path';
import type * as K8s from '@kubernetes/client-node';
import { ProviderError } from '../../errors.js';
import { sendGet, type ApiAnswer } from './transport.js';

type Client = typeof import('../../vendor/client-node.js');

/** Whose rights a read uses: the pod's token, or the kubeconfig's own credentials. */
export type ReadIdentity = 'pod' | 'provider';

export interface ClientOptions {
  readonly identity: ReadIdentity;
  readonly kubeconfig?: string;
  readonly context?: string;
}

/** One pooled connection to the API server per store; only the Authorization header is per request. */
export interface ApiClient {
  /** The API server's origin, for logs (the origin drops any user:password a server URL might carry). */
  readonly origin: string;
  /**
   * One GET of an API path (`/api/v1/...`), read whole up to the answer cap. `authorization` is the
   * pod's (`Bearer ...`); without it the kubeconfig's own credentials are applied.
   */
  get(path: string, query: URLSearchParams, authorization: string | undefined, signal: AbortSignal): Promise<ApiAnswer>;
  close(): void;
}

/**
 * client-node is kept for what a kubeconfig means (in-cluster files, contexts, client
 * certificates, token files, exec plugins); its generated API is not loaded: the two calls the
 * store makes go through one pooled agent of our own.
 */
export async function createApiClient(opts: ClientOptions, baseDir: string): Promise<ApiClient> {
  const k8s: Client = await import('../../vendor/client-node.js');
  const kc = loadKubeConfig(k8s, opts, baseDir);
  const cluster = currentCluster(kc);
  const agent = createPooledAgent(k8s, kc, cluster, opts.identity);
  const server = new URL(cluster.server);
  const base = { server, agent, prefix: server.pathname.replace(/\/+$/, '') };
  return {
    origin: server.origin,
    async get(path, query, authorization, signal) {
      const headers = authorization === undefined ? await kubeconfigHeaders(kc) : { authorization };
      return sendGet(base, path, query, headers, signal);
    },
    close: () => agent.destroy(),
  };
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
 * One agent per store keeps TLS sessions and sockets pooled (client-node builds a fresh agent,
 * and rereads the CA file, for every request). Client certificates go into it only for identity
 * `provider`: the API server prefers a client certificate over a bearer token, so with identity
 * `pod` it would silently read as the provider.
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
 * The kubeconfig user's headers for one request: a token (file, exec plugin or inline), basic
 * credentials, impersonation. client-node's public way to get them also builds a throwaway agent;
 * only the headers are kept, the TLS material is already in the pooled agent.
 */
async function kubeconfigHeaders(kc: K8s.KubeConfig): Promise<Record<string, string>> {
  const options: https.RequestOptions = {};
  await kc.applyToHTTPSOptions(options);
  const headers: Record<string, string> = {};
  if (typeof options.auth === 'string') headers['authorization'] = `Basic ${Buffer.from(options.auth).toString('base64')}`;
  for (const [name, value] of Object.entries(options.headers ?? {})) {
    if (value !== undefined) headers[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : String(value);
  }
  return headers;
}

/** Names a foreign error by its code or class only: its message may quote paths or content. */
export function describeCause(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return code;
  return err instanceof Error ? err.constructor.name : typeof err;
}
