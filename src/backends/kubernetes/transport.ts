import http from 'node:http';
import https from 'node:https';
import { ProviderError } from '../../errors.js';
import { defaultMaxAnswerBytes, readCapped } from '../kit/http.js';

/** A complete answer of the API server, any status. */
export interface ApiAnswer {
  readonly status: number;
  readonly retryAfter: string | undefined;
  readonly text: string;
}

/** No complete answer arrived: the connection failed, broke or did not verify; `code` is Node's. */
export class TransportFailure extends Error {
  override readonly name = 'TransportFailure';
  constructor(readonly code: string) {
    super(`request failed (${code})`);
  }
}

export interface Endpoint {
  readonly server: URL;
  /** The server URL's path without its trailing slash: API paths go below it (a cluster behind a path-routing proxy). */
  readonly prefix: string;
  readonly agent: http.Agent;
}

/**
 * One GET through the store's pooled agent, read with the kit's capped reader (etcd refuses values
 * over 1.5 MiB, far below the cap). A connection reset mid-body fails at once rather than waiting
 * for the store timeout. Fails with the answer cap's ProviderError, an AbortError when `signal`
 * ended the call (even if it surfaced as a reset), or a TransportFailure.
 */
export function sendGet({ server, prefix, agent }: Endpoint, path: string, query: URLSearchParams, headers: Record<string, string>, signal: AbortSignal): Promise<ApiAnswer> {
  const search = query.size > 0 ? `?${query.toString()}` : '';
  const send = server.protocol === 'https:' ? https.request : http.request;
  const options: http.RequestOptions = {
    protocol: server.protocol,
    hostname: server.hostname.replace(/^\[|\]$/g, ''),
    port: server.port || undefined,
    path: `${prefix}${path}${search}`,
    method: 'GET',
    headers: { accept: 'application/json', ...headers },
    agent,
    signal,
  };
  return new Promise<ApiAnswer>((resolve, reject) => {
    const fail = (err: unknown) => reject(asFailure(err, signal));
    const req = send(options, (res) => {
      readCapped(res, defaultMaxAnswerBytes, 'the API server').then((bytes) => {
        const retryAfter = res.headers['retry-after'];
        resolve({ status: res.statusCode ?? 0, retryAfter, text: bytes.toString('utf8') });
      }, fail);
    });
    req.on('error', fail);
    req.end();
  });
}

function asFailure(err: unknown, signal: AbortSignal): unknown {
  if (err instanceof ProviderError) return err;
  if (signal.aborted) return Object.assign(new Error('aborted'), { name: 'AbortError' });
  const code = (err as { code?: unknown } | null)?.code;
  return new TransportFailure(typeof code === 'string' ? code : 'ECONNRESET');
}
