import { ProviderError } from '../../errors.js';
import { createHttpClient, type HttpAnswer, type HttpClient } from '../kit/http.js';
import { isObject } from '../kit/json-shape.js';
import { quoteStoreText } from '../kit/redact.js';
import { readTlsMaterial } from '../kit/tls.js';
import { statusError } from '../kit/transient.js';
import type { GcpStoreOptions } from './options.js';

/** Secret Manager payloads are at most 64 KiB (about 88 KiB in base64): anything far larger is not an answer. */
const maxAnswerBytes = 1024 * 1024;
/** Regions a store keeps clients for; Google has fewer, so more means refs naming made-up locations. */
const maxLocations = 64;

/** The three Google APIs a store calls, each with its own keep-alive pool. */
export interface GcpApis {
  readonly sts: HttpClient;
  readonly iam: HttpClient;
  /** The Secret Manager client serving `location` (undefined: the global endpoint). */
  secretManager(location: string | undefined): { client: HttpClient; peer: string };
  close(): void;
}

export async function createGcpApis(opts: GcpStoreOptions, baseDir: string): Promise<GcpApis> {
  const tls = await readTlsMaterial(opts.tls, baseDir);
  // The CA bundle is for overridden endpoints (Private Service Connect, a proxy); Google's own keep the system CAs.
  const client = (url: string, peer: string, overridden: boolean) =>
    createHttpClient({ url, peer, timeoutMs: opts.timeout, maxAnswerBytes, ...(overridden ? { tls, tlsHint: 'check tls.caFile and endpoints' } : {}) });
  const stsUrl = opts.endpoints?.sts ?? 'https://sts.googleapis.com';
  const iamUrl = opts.endpoints?.iamCredentials ?? 'https://iamcredentials.googleapis.com';
  const override = opts.endpoints?.secretManager;
  const managers = new Map<string, { client: HttpClient; peer: string }>();
  const managerFor = (location: string | undefined) => {
    const url = override ?? (location === undefined ? 'https://secretmanager.googleapis.com' : `https://secretmanager.${location}.rep.googleapis.com`);
    const existing = managers.get(url);
    if (existing) return existing;
    if (managers.size >= maxLocations) {
      throw new ProviderError('InvalidArgument', `this store already reads from ${maxLocations} Secret Manager locations; "${location}" is one too many`);
    }
    const peer = `Secret Manager at ${url}`;
    const created = { client: client(url, peer, override !== undefined), peer };
    managers.set(url, created);
    return created;
  };
  const sts = client(stsUrl, `Google STS at ${stsUrl}`, opts.endpoints?.sts !== undefined);
  const iam = client(iamUrl, `IAM credentials at ${iamUrl}`, opts.endpoints?.iamCredentials !== undefined);
  return {
    sts,
    iam,
    secretManager: managerFor,
    close() {
      sts.close();
      iam.close();
      for (const m of managers.values()) m.client.close();
      managers.clear();
    },
  };
}

export function isOk(status: number): boolean {
  return status >= 200 && status < 300;
}

/** A google.rpc.Status error body: `{"error": {"code", "message", "status"}}`. */
export interface RpcStatus {
  readonly status?: string;
  readonly message?: string;
}

export function rpcStatusOf(answer: HttpAnswer): RpcStatus {
  const error = isObject(answer.json) ? answer.json['error'] : undefined;
  if (!isObject(error)) return {};
  return {
    ...(typeof error['status'] === 'string' ? { status: error['status'] } : {}),
    ...(typeof error['message'] === 'string' ? { message: error['message'] } : {}),
  };
}

/** `(HTTP 429 RESOURCE_EXHAUSTED: Quota exceeded ...)`, Google's words bounded and scrubbed of tokens. */
export function describeAnswer(answer: HttpAnswer, scrub: readonly string[]): string {
  const rpc = rpcStatusOf(answer);
  const status = rpc.status ? ` ${rpc.status}` : '';
  const message = rpc.message ? `: ${quoteStoreText(rpc.message, scrub, 200)}` : '';
  return `(HTTP ${answer.status}${status}${message})`;
}

/** A failure no cause-specific rule covers: its code follows the status, 429 and 5xx are transient. */
export function answerError(answer: HttpAnswer, what: string, scrub: readonly string[]): ProviderError {
  return statusError(answer.status, `${what} ${describeAnswer(answer, scrub)}`, answer.retryAfterSeconds);
}

/** A 2xx that is not the JSON object Google sends (a proxy's page, another API): transient, body never quoted. */
export function malformedAnswer(peer: string, what: string, problem: string): ProviderError {
  return new ProviderError('Unavailable', `${peer} answered ${what} with a malformed answer (${problem})`, { transient: true });
}
