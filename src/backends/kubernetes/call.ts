import { withDeadline } from '../../abort.js';
import { ProviderError } from '../../errors.js';
import { isObject, shapeOf } from '../kit/json-shape.js';
import type { ApiClient } from './client.js';
import { classifyFailure, classifyStatus, describeTarget, type CallScope, type Target } from './errors.js';

/** The API path of one object, or of the namespace's objects of its kind. */
export function apiPath({ kind, namespace, name }: Target): string {
  const collection = `/api/v1/namespaces/${encodeURIComponent(namespace)}/${kind === 'secret' ? 'secrets' : 'configmaps'}`;
  return name === undefined ? collection : `${collection}/${encodeURIComponent(name)}`;
}

/**
 * One GET of the scope's target within the store timeout and the Mount's signal: the answer's JSON
 * object, or a classified ProviderError. Retries belong to the shared store guard.
 */
export async function getJsonObject(
  client: ApiClient,
  query: URLSearchParams,
  authorization: string | undefined,
  scope: CallScope,
): Promise<Record<string, unknown>> {
  const deadline = withDeadline(scope.ctx.signal, scope.timeoutMs);
  let value: unknown;
  try {
    const answer = await client.get(apiPath(scope.target), query, authorization, deadline.signal);
    if (answer.status < 200 || answer.status > 299) throw classifyStatus(answer, scope);
    value = JSON.parse(answer.text);
  } catch (err) {
    throw classifyFailure(err, scope, deadline.timedOut);
  } finally {
    deadline.clear();
  }
  if (!isObject(value)) {
    throw new ProviderError('Unavailable', `the API server sent a malformed answer for ${describeTarget(scope.target)} (${shapeOf(value)}, not an object)`);
  }
  return value;
}
