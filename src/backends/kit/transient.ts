import { ProviderError, type ErrorCode } from '../../errors.js';

/**
 * The one answer to "may calling the store again help?", used by every backend and the store
 * guard. A ProviderError says so itself (`transient`, set where it is built); anything else was
 * not classified and is not retried.
 */
export function isTransient(err: unknown): boolean {
  return err instanceof ProviderError && err.transient;
}

/** Statuses that say the store is down, overloaded or restarting rather than refusing. */
export function isTransientStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/** How an HTTP status of a store maps onto our codes. */
export function codeForStatus(status: number): ErrorCode {
  if (status === 400 || status === 405 || status === 422) return 'InvalidArgument';
  if (status === 401 || status === 403) return 'PermissionDenied';
  if (status === 404) return 'NotFound';
  if (status === 412 || isTransientStatus(status)) return 'Unavailable';
  // Any other refusal of the request (409, 413, 431: a huge pod token...) is about what was sent;
  // anything else (a redirect from a proxy in front of the store) is the store's side.
  return status >= 400 && status < 500 ? 'InvalidArgument' : 'Unavailable';
}

/** A store's HTTP error status as a ProviderError; transient exactly when `isTransientStatus` says so. */
export function statusError(status: number, message: string, retryAfterSeconds?: number): ProviderError {
  return new ProviderError(codeForStatus(status), message, {
    transient: isTransientStatus(status) || status === 412,
    ...(retryAfterSeconds !== undefined ? { retryAfterSeconds } : {}),
  });
}

/** Node's codes for connections that failed or broke: the store may answer the next call. */
const networkCodes = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE', 'ECONNABORTED']);

export function isNetworkCode(code: unknown): code is string {
  return typeof code === 'string' && (networkCodes.has(code) || /^E[A-Z_]+$/.test(code));
}

/** `Retry-After` as seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | string[] | undefined, now: number = Date.now()): number | undefined {
  const text = (Array.isArray(value) ? value[0] : value)?.trim();
  if (text === undefined || text === '') return undefined;
  if (/^\d+$/.test(text)) return Number(text);
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - now) / 1000));
}
