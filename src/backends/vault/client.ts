import { ProviderError } from '../../errors.js';
import { createHttpClient } from '../kit/http.js';
import { isObject, shapeOf } from '../kit/json-shape.js';
import { quoteStoreText } from '../kit/redact.js';
import { readTlsMaterial } from '../kit/tls.js';
import { statusError } from '../kit/transient.js';
import type { VaultStoreOptions } from './options.js';

export interface VaultCall {
  readonly method: 'GET' | 'POST' | 'PUT';
  /** Path after /v1/, already encoded (see `encodePath`). */
  readonly path: string;
  readonly token?: string;
  readonly body?: unknown;
  readonly query?: string;
  readonly signal?: AbortSignal;
}

export interface VaultAnswer {
  readonly status: number;
  /** Vault answers JSON objects; an empty or non-JSON error body reads as `{}`. */
  readonly body: Record<string, unknown>;
  readonly retryAfterSeconds?: number;
}

export interface VaultClient {
  call(call: VaultCall): Promise<VaultAnswer>;
  close(): void;
}

/** Who a message names and which strings it must never carry (the pod's token, a Vault token). */
export interface Speaker {
  readonly describe: string;
  readonly scrub: readonly string[];
}

/** Vault's HTTP API over the kit's client: one keep-alive agent per store, the namespace on every call. */
export async function createVaultClient(opts: VaultStoreOptions, baseDir: string): Promise<VaultClient> {
  const secure = opts.address.startsWith('https:');
  const http = createHttpClient({
    url: opts.address,
    peer: `Vault at ${opts.address}`,
    timeoutMs: opts.timeout,
    tls: secure ? await readTlsMaterial(opts.tls, baseDir) : {},
    tlsHint: 'check tls.caFile and tls.serverName',
    ...(opts.namespace !== undefined ? { headers: { 'x-vault-namespace': opts.namespace } } : {}),
  });
  return {
    async call(call) {
      const answer = await http.call({
        method: call.method,
        path: `v1/${call.path}`,
        ...(call.query !== undefined ? { query: call.query } : {}),
        ...(call.token !== undefined ? { headers: { 'x-vault-token': call.token } } : {}),
        ...(call.body !== undefined ? { json: call.body } : {}),
        ...(call.signal ? { signal: call.signal } : {}),
      });
      return {
        status: answer.status,
        body: bodyOf(answer.status, answer.text, answer.json),
        ...(answer.retryAfterSeconds !== undefined ? { retryAfterSeconds: answer.retryAfterSeconds } : {}),
      };
    },
    close: () => http.close(),
  };
}

function bodyOf(status: number, text: string, json: unknown): Record<string, unknown> {
  if (isObject(json)) return json;
  // An error page from a proxy or load balancer: the status still says what happened.
  if (text.trim() === '' || !isOk(status)) return {};
  throw new ProviderError('Unavailable', `Vault answered ${status} with a body that is not a JSON object`, { transient: true });
}

export function isOk(status: number): boolean {
  return status >= 200 && status < 300;
}

export function encodePath(segments: readonly string[]): string {
  return segments.map(encodeURIComponent).join('/');
}

/** Vault's `errors` strings (they describe the failure, not secret data), bounded and scrubbed. */
function describeVaultErrors(body: Record<string, unknown>, scrub: readonly string[]): string {
  const errors = Array.isArray(body['errors']) ? body['errors'].filter((e): e is string => typeof e === 'string') : [];
  const shown = errors.slice(0, 3).map((e) => quoteStoreText(e, scrub));
  return shown.length > 0 ? `: ${shown.join('; ')}` : '';
}

/** Sealed and standby Vaults say so in `errors` (503 "Vault is sealed"), which the message quotes. */
export function vaultStatusError(res: VaultAnswer, message: string, scrub: readonly string[]): ProviderError {
  return statusError(res.status, `${message} (HTTP ${res.status})${describeVaultErrors(res.body, scrub)}`, res.retryAfterSeconds);
}

/** A failed read of `segments`: missing, denied to the speaker, or Vault's own failure. */
export function readError(res: VaultAnswer, speaker: Speaker, doing: string, segments: readonly string[]): ProviderError {
  const path = segments.join('/');
  if (res.status === 404) {
    return new ProviderError('NotFound', `no secret at "${path}"${describeVaultErrors(res.body, speaker.scrub)}`);
  }
  if (res.status === 403) return vaultStatusError(res, `Vault denied ${doing} "${path}" to ${speaker.describe}`, speaker.scrub);
  return vaultStatusError(res, `Vault failed ${doing} "${path}"`, speaker.scrub);
}

/**
 * A 2xx whose JSON object has the wrong shape (another API, a proxy, a broken plugin): Vault
 * misbehaved, the secret is not missing. Transient like the other malformed answers, so the
 * guard's retries apply; the message names the path and the shape, never the body.
 */
export function unexpectedShape(segments: readonly string[], field: string, value: unknown): ProviderError {
  return new ProviderError(
    'Unavailable',
    `Vault answered "${segments.join('/')}" with an unexpected response shape (${field} is ${shapeOf(value)}, not an object)`,
    { transient: true },
  );
}

/** The `data` object of a 2xx answer. Only a 204 (no content at all) is Vault saying there is nothing. */
export function requireData(res: VaultAnswer, segments: readonly string[]): Record<string, unknown> {
  const data = res.body['data'];
  if (isObject(data)) return data;
  if (res.status === 204) throw new ProviderError('NotFound', `Vault returned no data for "${segments.join('/')}"`);
  throw unexpectedShape(segments, '"data"', data);
}
