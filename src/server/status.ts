import { status as GrpcStatus } from '@grpc/grpc-js';
import { errorCodes, type ErrorCode, type ProviderError } from '../errors.js';
import { toWellFormed } from '../util.js';

const grpcStatusByCode: Record<ErrorCode, GrpcStatus> = {
  InvalidArgument: GrpcStatus.INVALID_ARGUMENT,
  NotFound: GrpcStatus.NOT_FOUND,
  PermissionDenied: GrpcStatus.PERMISSION_DENIED,
  Unavailable: GrpcStatus.UNAVAILABLE,
  DeadlineExceeded: GrpcStatus.DEADLINE_EXCEEDED,
  Internal: GrpcStatus.INTERNAL,
};

/** The single mapping from our codes to gRPC status codes. */
export function toGrpcStatus(code: ErrorCode): GrpcStatus {
  return grpcStatusByCode[code];
}

export function fromGrpcStatus(status: GrpcStatus): ErrorCode {
  const found = errorCodes.find((c) => grpcStatusByCode[c] === status);
  return found ?? 'Internal';
}

/**
 * Messages quote class text (names, store names, JMESPath errors), which may hold unpaired UTF-16
 * surrogates. grpc-js sends the message through encodeURI, which throws on them, so the caller got
 * no status at all. Replace them with U+FFFD. Found by fuzzing.
 */
export function wellFormed(error: ProviderError): ProviderError {
  const message = toWellFormed(error.message);
  // Idempotent, and keeps every other field (code, retry hints) of the error as it is.
  if (message !== error.message) error.message = message;
  return error;
}
