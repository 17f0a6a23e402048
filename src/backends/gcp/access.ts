import { ProviderError } from '../../errors.js';
import { bytesContent } from '../kit/content.js';
import type { HttpAnswer } from '../kit/http.js';
import { isObject, shapeOf } from '../kit/json-shape.js';
import type { FetchResult } from '../types.js';
import { answerError, describeAnswer, malformedAnswer, rpcStatusOf } from './client.js';
import { crc32c } from './crc32c.js';
import type { Principal } from './principal.js';
import { describeVersion, secretName, type SecretVersionRef } from './refs.js';

/**
 * A 200 of `versions/V:access`: `{"name": "projects/NUMBER/secrets/S/versions/3", "payload":
 * {"data": "<base64>", "dataCrc32c": "<decimal>"}}`. The payload is checked against its CRC32C
 * before anything reaches a pod; the version returned is the one `name` resolved to.
 */
export function readAccessAnswer(answer: HttpAnswer, ref: SecretVersionRef, peer: string): FetchResult {
  const what = describeVersion(ref);
  const body = answer.json;
  if (!isObject(body)) throw malformedAnswer(peer, what, `the body is ${answer.text.trim() === '' ? 'empty' : 'not a JSON object'}`);
  const name = body['name'];
  const version = resolvedVersion(name, ref);
  if (version === undefined) {
    throw malformedAnswer(peer, what, typeof name === 'string' ? '"name" is not a version of this secret' : `"name" is ${shapeOf(name)}, not a string`);
  }
  const payload = body['payload'];
  if (!isObject(payload)) throw malformedAnswer(peer, what, `"payload" is ${shapeOf(payload)}, not an object`);
  const data = payload['data'] ?? '';
  if (typeof data !== 'string' || !/^[A-Za-z0-9+/_-]*={0,2}$/.test(data)) {
    throw malformedAnswer(peer, what, `"payload.data" is ${typeof data === 'string' ? 'not base64' : shapeOf(data)}`);
  }
  const bytes = Buffer.from(data, 'base64');
  const expected = payload['dataCrc32c'];
  if (typeof expected !== 'string' || !/^\d{1,20}$/.test(expected)) {
    throw malformedAnswer(peer, what, `"payload.dataCrc32c" is ${shapeOf(expected)}, not a decimal checksum`);
  }
  if (BigInt(expected) !== BigInt(crc32c(bytes))) {
    // Corrupted between Google and us: never written; the next attempt may arrive intact.
    throw new ProviderError('Unavailable', `${peer} answered ${what} with data that does not match its CRC32C checksum`, { transient: true });
  }
  return { content: bytesContent(bytes), version };
}

/** The version number in `name`, if `name` is this secret's (the project may come back as its number). */
function resolvedVersion(name: unknown, ref: SecretVersionRef): string | undefined {
  if (typeof name !== 'string') return undefined;
  const where = ref.location === undefined ? '' : `/locations/${ref.location}`;
  const match = new RegExp(`^projects/[^/]+${where}/secrets/([^/]+)/versions/(\\d+)$`).exec(name);
  return match && match[1] === ref.secret ? match[2] : undefined;
}

/** Why Google refused a read, in terms of what to fix. */
export function accessError(answer: HttpAnswer, ref: SecretVersionRef, principal: Principal, scrub: readonly string[]): ProviderError {
  const what = describeVersion(ref);
  const told = describeAnswer(answer, scrub);
  const rpc = rpcStatusOf(answer);
  if (answer.status === 404) return new ProviderError('NotFound', `${what} does not exist ${told}`);
  if (answer.status === 401) return tokenRefused(principal, told);
  if (answer.status === 403) {
    return new ProviderError(
      'PermissionDenied',
      `${principal.describe} may not access ${secretName(ref)}: it needs roles/secretmanager.secretAccessor on the secret or its project ${told}`,
    );
  }
  const state = /\b(DISABLED|DESTROYED)\b/.exec(rpc.message ?? '');
  if (answer.status === 400 && rpc.status === 'FAILED_PRECONDITION' && state) {
    return new ProviderError('NotFound', `${what} is ${state[1]!.toLowerCase()} ${told}`);
  }
  return answerError(answer, `Secret Manager failed to read ${what}`, scrub);
}

/** A 401 after a fresh exchange: Secret Manager does not take the principal's token. */
export function tokenRefused(principal: Principal, told: string): ProviderError {
  return new ProviderError('PermissionDenied', `Secret Manager did not accept the token of ${principal.describe} ${told}`);
}
