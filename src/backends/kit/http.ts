import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type RequestOptions } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { withDeadline } from '../../abort.js';
import { ProviderError } from '../../errors.js';
import { parseRetryAfter } from './transient.js';
import { tlsVerificationErrors, type TlsMaterial } from './tls.js';

/** Far above any secret a store holds (Vault, Key Vault and Secret Manager cap values at 25-64 KiB...1 MiB). */
export const defaultMaxAnswerBytes = 8 * 1024 * 1024;

export interface HttpClientOptions {
  /** Base URL; call paths are appended to its path. */
  readonly url: string;
  /** How messages name the peer: `Vault at https://vault:8200`. */
  readonly peer: string;
  /** Budget of one call, from sending to the last byte of the answer. */
  readonly timeoutMs: number;
  readonly maxAnswerBytes?: number;
  /** CA bundle, client certificate and server name (https only); verification is always on. */
  readonly tls?: TlsMaterial;
  /** What to tell the user when the certificate does not verify (`check tls.caFile`). */
  readonly tlsHint?: string;
  /** Sent with every call (a namespace header). */
  readonly headers?: Readonly<Record<string, string>>;
  readonly maxSockets?: number;
}

export interface HttpCall {
  readonly method: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'LIST';
  /** Path after the base URL's, already encoded. */
  readonly path: string;
  readonly query?: string | URLSearchParams;
  readonly headers?: Readonly<Record<string, string>>;
  /** Sent as JSON. */
  readonly json?: unknown;
  /** Sent as application/x-www-form-urlencoded (OAuth token endpoints). */
  readonly form?: URLSearchParams;
  /** The caller's cancellation (the Mount's deadline); the client adds its own timeout. */
  readonly signal?: AbortSignal;
}

export interface HttpAnswer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly text: string;
  /** The body parsed as JSON; undefined when it is empty or not JSON (a proxy's HTML page). */
  readonly json: unknown;
  readonly retryAfterSeconds?: number;
}

export interface HttpClient {
  /**
   * One call. Fails with a ProviderError only when no complete answer arrived: an unreachable or
   * resetting peer (Unavailable, transient), no answer in time (DeadlineExceeded, transient), the
   * caller giving up (DeadlineExceeded), a certificate that does not verify or an answer over the
   * cap (Unavailable, permanent: the next call would fail the same way). Any status is an answer.
   */
  call(call: HttpCall): Promise<HttpAnswer>;
  close(): void;
}

/** A keep-alive HTTP(S) JSON client for one store: logins, reads and renewals reuse its sockets. */
export function createHttpClient(options: HttpClientOptions): HttpClient {
  const base = new URL(options.url);
  const secure = base.protocol === 'https:';
  const pool = { keepAlive: true, maxSockets: options.maxSockets ?? 32 };
  const agent = secure ? new HttpsAgent({ ...pool, ...options.tls, rejectUnauthorized: true }) : new HttpAgent(pool);
  const send = secure ? httpsRequest : httpRequest;
  const prefix = base.pathname.replace(/\/+$/, '');
  const maxBytes = options.maxAnswerBytes ?? defaultMaxAnswerBytes;
  return {
    call(call) {
      const deadline = withDeadline(call.signal, options.timeoutMs);
      const { signal } = deadline;
      const { payload, contentType } = encodeBody(call);
      const headers: Record<string, string> = { accept: 'application/json', ...options.headers, ...call.headers };
      if (payload) {
        headers['content-type'] = contentType;
        headers['content-length'] = String(payload.length);
      }
      const query = call.query === undefined ? '' : String(call.query);
      const request: RequestOptions & { servername?: string } = {
        agent,
        protocol: base.protocol,
        hostname: base.hostname.replace(/^\[|\]$/g, ''),
        port: base.port || undefined,
        method: call.method,
        path: `${prefix}${call.path.startsWith('/') ? '' : '/'}${call.path}${query ? `?${query}` : ''}`,
        headers,
        signal,
      };
      if (options.tls?.servername) request.servername = options.tls.servername;
      return new Promise<HttpAnswer>((resolve, reject) => {
        const fail = (err: unknown) => reject(transportError(err, { signal, caller: call.signal, options }));
        const req = send(request, (res) => {
          readAnswer(res, maxBytes, options.peer).then(resolve, fail);
        });
        req.on('error', fail);
        req.end(payload);
      }).finally(() => deadline.clear());
    },
    close: () => agent.destroy(),
  };
}

function encodeBody(call: HttpCall): { payload?: Buffer; contentType: string } {
  if (call.form) return { payload: Buffer.from(call.form.toString(), 'utf8'), contentType: 'application/x-www-form-urlencoded' };
  if (call.json !== undefined) return { payload: Buffer.from(JSON.stringify(call.json), 'utf8'), contentType: 'application/json' };
  return { contentType: '' };
}

async function readAnswer(res: IncomingMessage, maxBytes: number, peer: string): Promise<HttpAnswer> {
  const bytes = await readCapped(res, maxBytes, peer);
  const text = bytes.toString('utf8');
  const retryAfterSeconds = parseRetryAfter(res.headers['retry-after']);
  return {
    status: res.statusCode ?? 0,
    headers: res.headers,
    text,
    json: parseJsonOrUndefined(text),
    ...(retryAfterSeconds !== undefined ? { retryAfterSeconds } : {}),
  };
}

/**
 * Reads a whole answer, but never more than `maxBytes`: stores answer what they hold, and a
 * misbehaving one (or a proxy) must not make every node buffer without bound. An answer cut
 * short of its Content-Length fails as a reset.
 */
export async function readCapped(res: IncomingMessage, maxBytes: number, peer: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res) {
    size += (chunk as Buffer).length;
    if (size > maxBytes) {
      res.destroy();
      // The same object will be as large on the next call: not worth retrying within this Mount.
      throw new ProviderError('Unavailable', `the answer of ${peer} exceeded ${maxBytes} bytes`, { transient: false });
    }
    chunks.push(chunk as Buffer);
  }
  if (!res.complete) throw Object.assign(new Error('aborted'), { code: 'ECONNRESET' });
  return Buffer.concat(chunks);
}

function parseJsonOrUndefined(text: string): unknown {
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

interface FailureScope {
  readonly signal: AbortSignal;
  readonly caller: AbortSignal | undefined;
  readonly options: HttpClientOptions;
}

/** Maps a failed call; names the peer and the error code only, never a body. */
export function transportError(err: unknown, { signal, caller, options }: FailureScope): ProviderError {
  if (err instanceof ProviderError) return err;
  if (caller?.aborted) {
    return new ProviderError('DeadlineExceeded', `the Mount was cancelled or its deadline passed before ${options.peer} answered`);
  }
  if (signal.aborted) {
    return new ProviderError('DeadlineExceeded', `${options.peer} did not answer within ${options.timeoutMs}ms`, { transient: true });
  }
  const code = (err as NodeJS.ErrnoException | null)?.code ?? (err instanceof Error ? err.name : 'unknown error');
  if (tlsVerificationErrors.has(code)) {
    const hint = options.tlsHint ? `; ${options.tlsHint}` : '';
    return new ProviderError('Unavailable', `cannot verify the TLS certificate of ${options.peer} (${code})${hint}`, { transient: false });
  }
  return new ProviderError('Unavailable', `cannot reach ${options.peer} (${code})`, { transient: true });
}
