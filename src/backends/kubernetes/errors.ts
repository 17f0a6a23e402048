import { STATUS_CODES } from 'node:http';
import type { Logger } from 'pino';
import { ProviderError, type ErrorCode } from '../../errors.js';
import { tlsVerificationErrors } from '../kit/tls.js';
import { codeForStatus, isNetworkCode, parseRetryAfter } from '../kit/transient.js';
import type { FetchContext } from '../types.js';
import { describeCause, type ReadIdentity } from './client.js';
import { TransportFailure, type ApiAnswer } from './transport.js';

export type ObjectKind = 'secret' | 'configmap';

/** One object of the API server, as a ref names it. */
export interface Target {
  readonly kind: ObjectKind;
  readonly namespace: string;
  /** The object's name; undefined for a listing of the namespace's objects of this kind. */
  readonly name?: string;
}

/** What a failure message needs to name the object, the reader and the budget. */
export interface CallScope {
  readonly target: Target;
  readonly ctx: FetchContext;
  readonly identity: ReadIdentity;
  readonly audience: string;
  readonly timeoutMs: number;
  readonly storeName: string;
  /** Already bound to the store's name. */
  readonly logger: Logger;
}

/** Maps a failed read; the store timeout is told apart from the Mount's own signal. */
export function classifyFailure(err: unknown, scope: CallScope, timedOut: boolean): ProviderError {
  if (err instanceof ProviderError) return err;
  const what = describeTarget(scope.target);
  if (err instanceof Error && err.name === 'AbortError') {
    if (scope.ctx.signal.aborted) {
      return new ProviderError('DeadlineExceeded', `reading ${what} was cancelled (the Mount ended or its deadline passed)`);
    }
    if (timedOut) {
      return new ProviderError(
        'DeadlineExceeded',
        `the API server did not answer for ${what} within ${scope.timeoutMs / 1000}s (the store timeout)`,
        { transient: true },
      );
    }
  }
  // Cut-off or non-JSON answers (a proxy's HTML page) are the store's fault, not the pod's: retryable.
  if (err instanceof SyntaxError) return new ProviderError('Unavailable', `the API server sent a malformed answer for ${what} (not JSON)`);
  if (err instanceof TransportFailure) {
    const { code } = err;
    if (tlsVerificationErrors.has(code)) {
      return new ProviderError('Unavailable', `TLS verification of the API server failed reading ${what} (${code})`, { transient: false });
    }
    return new ProviderError('Unavailable', `cannot reach the API server reading ${what} (${isNetworkCode(code) ? code : 'network error'})`);
  }
  // Only the class or code is kept for the user; the log says where it came from for whoever debugs it.
  const cause = describeCause(err);
  scope.logger.warn({ object: what, cause }, 'unexpected failure reading a Kubernetes object');
  return new ProviderError('Internal', `reading ${what} failed unexpectedly (${cause})`);
}

/** Maps an error answer (a `Status`, or a proxy's page); only the Status's `reason` word is quoted, never its message. */
export function classifyStatus({ status: code, text, retryAfter: retryAfterHeader }: ApiAnswer, scope: CallScope): ProviderError {
  const status = parseStatus(text);
  const what = describeTarget(scope.target);
  if (status.reason === undefined) {
    // A proxy or load balancer in front of the API server answers with its own page, not a Status.
    scope.logger.warn({ object: what, status: code }, 'the API server answered an error without a Kubernetes Status reason');
  }
  const reason = status.reason ?? defaultReason(code);
  const who = describeActor(scope);
  const fail = (errorCode: ErrorCode, message: string, retryAfterSeconds?: number) => new ProviderError(errorCode, message, retryAfterSeconds);
  if (code === 401) {
    const credentials = scope.identity === 'pod'
      ? `the token of ${who} for audience ${JSON.stringify(scope.audience)}`
      : `the credentials of ${who}`;
    return fail('PermissionDenied', `the API server did not accept ${credentials} reading ${what} (${reason})`);
  }
  if (code === 403) return fail('PermissionDenied', `${who} may not ${scope.target.name === undefined ? 'list' : 'get'} ${what} (${reason})`);
  if (code === 404) return fail('NotFound', `${what} not found (${reason})`);
  if (code === 429 || code >= 500) {
    const retryAfter = parseRetryAfter(retryAfterHeader) ?? status.retryAfterSeconds;
    return fail('Unavailable', `the API server answered ${code} (${reason}) for ${what}`, retryAfter);
  }
  return fail(codeForStatus(code), `the API server answered ${code} (${reason}) for ${what}`);
}

interface StatusFacts {
  readonly reason?: string;
  readonly retryAfterSeconds?: number;
}

function parseStatus(text: string): StatusFacts {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return {};
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

function defaultReason(code: number): string {
  return STATUS_CODES[code]?.replace(/[^A-Za-z]/g, '') ?? 'Unknown';
}

export function describeTarget({ kind, namespace, name }: Target): string {
  const type = kind === 'secret' ? 'Secret' : 'ConfigMap';
  return name === undefined ? `the ${type}s of namespace ${namespace}` : `${type} ${namespace}/${name}`;
}

function describeActor({ ctx, identity, storeName }: CallScope): string {
  const pod = `service account ${ctx.identity.namespace}/${ctx.identity.serviceAccount}`;
  return identity === 'pod' ? pod : `the provider's identity of store ${JSON.stringify(storeName)} (for ${pod})`;
}

