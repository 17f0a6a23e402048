/** The closed set of failure codes. Each is a stable, low-cardinality label. */
export const errorCodes = [
  'InvalidArgument',
  'NotFound',
  'PermissionDenied',
  'Unavailable',
  'DeadlineExceeded',
  'Internal',
] as const;
export type ErrorCode = (typeof errorCodes)[number];

/**
 * The one error type of the provider. Messages are shown to users verbatim (the driver puts them
 * in the pod's FailedMount event), so they name what failed and why, and never carry secret
 * material: build them from locators and field names only.
 */
export class ProviderError extends Error {
  override readonly name = 'ProviderError';
  /** Seconds the caller may wait before retrying, when the store said so. */
  readonly retryAfterSeconds?: number;
  /**
   * Whether calling the store again may help (an outage, throttling, a reset connection). Defaults
   * to true for Unavailable; a backend sets false where a retry cannot help (a TLS verification
   * failure) or where it already retried itself, and true for its own per-call timeouts.
   */
  readonly transient: boolean;

  constructor(
    readonly code: ErrorCode,
    message: string,
    extra?: number | { retryAfterSeconds?: number; transient?: boolean },
  ) {
    super(message);
    const options = typeof extra === 'number' ? { retryAfterSeconds: extra } : (extra ?? {});
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.transient = options.transient ?? code === 'Unavailable';
  }

  /** Same code, message prefixed with where it happened (`objects[2] "db": ...`). */
  within(context: string): ProviderError {
    return new ProviderError(this.code, `${context}: ${this.message}`, {
      retryAfterSeconds: this.retryAfterSeconds,
      transient: this.transient,
    });
  }
}

export function isProviderError(err: unknown): err is ProviderError {
  return err instanceof ProviderError;
}

/**
 * Turns anything thrown into a ProviderError. Foreign errors keep only their class name: their
 * messages may quote input (JSON.parse does), so they never reach a user.
 */
export function toProviderError(err: unknown): ProviderError {
  if (err instanceof ProviderError) return err;
  if (err instanceof Error && err.name === 'AbortError') {
    return new ProviderError('DeadlineExceeded', 'the call was cancelled or its deadline passed');
  }
  if (err instanceof Error && err.name === 'TimeoutError') {
    return new ProviderError('DeadlineExceeded', 'the operation timed out');
  }
  const kind = err instanceof Error ? err.constructor.name : typeof err;
  return new ProviderError('Internal', `unexpected ${kind}`);
}
