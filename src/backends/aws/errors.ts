import type * as Classification from '@smithy/service-error-classification';
import { ProviderError, type ErrorCode } from '../../errors.js';
import { quoteStoreText } from '../kit/redact.js';
import { isNetworkCode } from '../kit/transient.js';

/*
 * Whether a failure is worth another call (throttling, 5xx, timeouts, dropped connections) is the
 * SDK's own classification (@smithy/service-error-classification). It says nothing about what a
 * refusal means, so these lists stay: which AWS error names are a missing object and which a
 * denial, and the few the classification does not call transient although AWS says to retry.
 */
const notFoundErrors = new Set(['ResourceNotFoundException', 'ParameterNotFound', 'ParameterVersionNotFound']);
const deniedErrors = new Set([
  'AccessDeniedException',
  'AccessDenied',
  'ExpiredTokenException',
  'ExpiredToken',
  // The SDK names STS's modelled errors by shape (InvalidIdentityTokenException), others by code.
  'InvalidIdentityToken',
  'InvalidIdentityTokenException',
  'IDPRejectedClaim',
  'IDPRejectedClaimException',
  'UnrecognizedClientException',
  'InvalidSignatureException',
  'InvalidClientTokenId',
  'SignatureDoesNotMatch',
  'MissingAuthenticationToken',
  'IncompleteSignature',
  'DecryptionFailure',
  'RegionDisabledException',
]);
/** STS asks callers to retry when it cannot reach the identity provider; the classification has no such name. */
const alsoTransient = new Set(['IDPCommunicationError', 'IDPCommunicationErrorException']);
/** A cached credential the service no longer accepts: fetch a fresh one once. */
const staleCredentialErrors = new Set(['ExpiredTokenException', 'ExpiredToken', 'UnrecognizedClientException', 'InvalidClientTokenId']);

/** The name the answer-size cap gives its failure. */
export const answerTooLarge = 'AnswerTooLarge';
/** Far above any AWS answer we ask for (20 secrets of 64 KiB in one batch). */
export const maxAnswerBytes = 8 * 1024 * 1024;

interface SdkErrorShape {
  name?: string;
  message?: string;
  code?: string;
  $fault?: string;
  $metadata?: { httpStatusCode?: number };
}

function asSdkError(err: unknown): SdkErrorShape {
  return err !== null && typeof err === 'object' ? (err as SdkErrorShape) : {};
}

function statusOf(err: unknown): number | undefined {
  return asSdkError(err).$metadata?.httpStatusCode;
}

function isAbort(err: unknown): boolean {
  return asSdkError(err).name === 'AbortError';
}

/** What the SDK's deserializer throws for a body it cannot parse (its $response is hidden). */
function isMalformedAnswer(err: unknown): boolean {
  const e = asSdkError(err);
  return e.name === 'SyntaxError' || (typeof e.message === 'string' && e.message.includes('Deserialization error'));
}

/** Connection-level failures: no HTTP answer at all. */
function isNetworkError(err: unknown): boolean {
  return !(err instanceof ProviderError) && statusOf(err) === undefined && isNetworkCode(asSdkError(err).code);
}

function isTimeout(err: unknown): boolean {
  const e = asSdkError(err);
  return e.name === 'TimeoutError' || e.code === 'ETIMEDOUT';
}

/**
 * The SDK's classification, loaded with the first AWS store (`loadErrorClassification`) like the
 * SDK itself: a provider without AWS stores never loads it.
 */
let classification: typeof Classification | undefined;

export async function loadErrorClassification(): Promise<void> {
  classification ??= await import('@smithy/service-error-classification');
}

/** An SDK failure another call may cure: throttled, 5xx, timed out, disconnected or garbled. */
function isRetryable(err: unknown): boolean {
  if (err === null || typeof err !== 'object' || err instanceof ProviderError) return false;
  const e = asSdkError(err);
  if (isAbort(err) || e.name === answerTooLarge) return false;
  if (!classification) throw new ProviderError('Internal', 'the AWS error classification was not loaded');
  const { isServerError, isThrottlingError, isTransientError } = classification;
  const sdk = err as Parameters<typeof isTransientError>[0];
  return (
    isThrottlingError(sdk) ||
    isTransientError(sdk) ||
    isServerError(sdk) ||
    alsoTransient.has(e.name ?? '') ||
    isNetworkError(err) ||
    isMalformedAnswer(err)
  );
}

/**
 * Worth trying the failover region within the same attempt: the primary is down, overloaded,
 * unreachable or answering garbage, not refusing. The Mount giving up is not a reason.
 */
export function shouldFailOver(err: unknown): boolean {
  if (err instanceof ProviderError) return err.code === 'Unavailable' && err.transient;
  return isRetryable(err);
}

export function isStaleCredentialError(err: unknown): boolean {
  return staleCredentialErrors.has(asSdkError(err).name ?? '');
}

/** A name for logs: the error class or Node's code, never a message. */
export function errorName(err: unknown): string {
  if (err instanceof ProviderError) return err.code;
  const e = asSdkError(err);
  return isNetworkCode(e.code) ? e.code : (e.name ?? 'Error');
}

function codeFor(err: unknown): ErrorCode {
  const name = asSdkError(err).name ?? '';
  if (notFoundErrors.has(name)) return 'NotFound';
  if (deniedErrors.has(name)) return 'PermissionDenied';
  if (isRetryable(err)) return 'Unavailable';
  const status = statusOf(err);
  if (status === 401 || status === 403) return 'PermissionDenied';
  if (status === 404) return 'NotFound';
  if (status !== undefined && status >= 400) return 'InvalidArgument';
  return 'Unavailable';
}

export interface ErrorContext {
  /** `AWS Secrets Manager` */
  readonly service: string;
  /** `reading secret "shop/db"` */
  readonly doing: string;
  readonly region: string;
  /** The identity, as AwsCaller.describe. */
  readonly caller: string;
  readonly scrub: readonly string[];
}

/**
 * One message shape for every AWS failure: service, action, object, region, identity and AWS's own
 * cause. Transient exactly when another attempt may help: the store guard owns the retries (every
 * SDK client runs with maxAttempts 1) and the failover region was already tried.
 */
export function describeAwsError(err: unknown, where: ErrorContext): ProviderError {
  if (err instanceof ProviderError) return err;
  const at = `${where.doing} in ${where.region}`;
  if (isAbort(err)) return new ProviderError('DeadlineExceeded', `${where.service} did not answer ${at} before the deadline`);
  const e = asSdkError(err);
  if (e.name === answerTooLarge) {
    // The same object will be as large on the next call: not worth retrying.
    return new ProviderError('Unavailable', `${where.service} answered ${at} with more than ${maxAnswerBytes} bytes`, { transient: false });
  }
  // The parser's message quotes the body (a secret, in a real answer): name the failure only.
  if (isMalformedAnswer(err)) {
    return new ProviderError('Unavailable', `${where.service} sent a cut-off or malformed answer ${at} (${e.name ?? 'Error'})`, { transient: true });
  }
  if (isTimeout(err)) {
    return new ProviderError('DeadlineExceeded', `${where.service} did not answer ${at} within the store's timeout`, { transient: true });
  }
  if (isNetworkError(err)) {
    return new ProviderError('Unavailable', `cannot reach ${where.service} in ${where.region} for ${where.doing} (${errorName(err)})`, { transient: true });
  }
  const code = codeFor(err);
  const name = e.name ?? 'Error';
  const detail = typeof e.message === 'string' && e.message !== '' && e.message !== name ? `: ${quoteStoreText(e.message, where.scrub)}` : '';
  const status = statusOf(err);
  const verb = code === 'PermissionDenied' ? 'denied' : 'failed';
  return new ProviderError(code, `${where.service} ${verb} ${at} as ${where.caller}: ${name}${status ? ` (HTTP ${status})` : ''}${detail}`, {
    transient: isRetryable(err),
  });
}

/** An error AWS reported for one item of a batch, shaped like the SDK's own. */
export function itemError(name: string, message: string | undefined): SdkErrorShape {
  return { name, ...(message ? { message } : {}), $fault: 'client', $metadata: { httpStatusCode: 400 } };
}

/**
 * A 200 of the wrong shape (the SDKs check no types): Unavailable and transient, like the answers
 * the SDK cannot parse. Thrown inside `AwsAccess.run`'s operation, it makes the failover region be
 * tried, as a 5xx would. Names the shape, never the body.
 */
export function malformedAnswer(service: string, doing: string, why: string): ProviderError {
  return new ProviderError('Unavailable', `${service} sent a malformed answer ${doing} (${why})`, { transient: true });
}

/** Why a caller stopped waiting for AWS. */
export function awsCancelled(): ProviderError {
  return new ProviderError('DeadlineExceeded', 'the Mount was cancelled or its deadline passed before AWS answered');
}

/** Whether a failed batch says something about every read in it (then no read is tried alone). */
export function failsWholeBatch(err: unknown): boolean {
  if (err instanceof ProviderError) return err.transient || err.code === 'DeadlineExceeded';
  return isRetryable(err) || isAbort(err) || isTimeout(err);
}
