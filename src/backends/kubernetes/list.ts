import { ProviderError } from '../../errors.js';
import { listProblem } from '../kit/json-shape.js';
import type { ListedSecret, ListPage, ListRequest } from '../types.js';
import { getJsonObject } from './call.js';
import type { ApiClient } from './client.js';
import { describeTarget, type CallScope, type ObjectKind, type Target } from './errors.js';
import { metadataString, toFetchResult, type WireObject } from './objects.js';

/** A listing's call scope: the object-less CallScope, with the client and the request's credentials. */
export interface ListScope extends Omit<CallScope, 'target'> {
  readonly client: ApiClient;
  readonly authorization: string | undefined;
}

/** Objects per page: typical Secrets are a few KiB, so a page stays far below the client's answer cap. */
const pageSize = 50;

const dnsLabel = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const labelName = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const labelValue = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

/**
 * One page of a namespace's Secrets or ConfigMaps (RBAC verb `list`), by label selector, kept to
 * the names that start with the prefix's name part. Values come with the listing.
 */
export async function listObjects(request: ListRequest<{ kind: ObjectKind }>, scope: ListScope): Promise<ListPage> {
  const { namespace, namePrefix, qualified } = parsePrefix(request.prefix, scope.ctx.identity.namespace);
  const labelSelector = toSelector(request.labels);
  const target: Target = { kind: request.spec.kind, namespace };
  const query = new URLSearchParams({ limit: String(pageSize) });
  if (labelSelector) query.set('labelSelector', labelSelector);
  if (request.page) query.set('continue', request.page);
  const answer = await getJsonObject(scope.client, query, scope.authorization, { ...scope, target });
  const problem = listProblem(answer['items'], 'items', 'object') ?? (answer['items'] === undefined ? 'items is missing' : undefined);
  if (problem) throw new ProviderError('Unavailable', `the API server sent a malformed answer listing ${describeTarget(target)} (${problem})`);
  const items: ListedSecret[] = [];
  for (const object of answer['items'] as WireObject[]) {
    const name = metadataString(object, 'name');
    if (name === undefined || !name.startsWith(namePrefix)) continue;
    items.push({ ref: qualified ? `${namespace}/${name}` : name, value: toFetchResult(request.spec.kind, object) });
  }
  // The next page's token; empty or absent on the last page.
  const next = metadataString(answer, 'continue');
  scope.logger.debug({ objects: describeTarget(target), found: items.length, more: Boolean(next) }, 'listed Kubernetes objects');
  return { items, ...(next ? { next } : {}) };
}

/** `NAME-PREFIX` (the pod's namespace) or `NAMESPACE/NAME-PREFIX`; found refs take the same form. */
function parsePrefix(prefix: string, podNamespace: string): { namespace: string; namePrefix: string; qualified: boolean } {
  const parts = prefix.split('/');
  const qualified = parts.length === 2;
  const [namespace, namePrefix] = qualified ? [parts[0]!, parts[1]!] : [podNamespace, parts[0]!];
  if (parts.length > 2 || !dnsLabel.test(namespace) || !/^[a-z0-9.-]*$/.test(namePrefix)) {
    throw new ProviderError('InvalidArgument', 'find.prefix must be a name prefix or NAMESPACE/NAME-PREFIX (lowercase letters, digits, "-" and ".")');
  }
  return { namespace, namePrefix, qualified };
}

/** Equality terms only; names and values are checked so that no selector syntax comes in with them. */
function toSelector(labels: Readonly<Record<string, string>>): string | undefined {
  const terms = Object.entries(labels).map(([key, value]) => {
    const slash = key.lastIndexOf('/');
    const name = key.slice(slash + 1);
    const domain = slash < 0 ? '' : key.slice(0, slash);
    if (!labelName.test(name) || (slash >= 0 && !/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(domain)) || !labelValue.test(value)) {
      throw new ProviderError('InvalidArgument', `find.labels: ${JSON.stringify(key.slice(0, 100))} is not a Kubernetes label with a valid value`);
    }
    return `${key}=${value}`;
  });
  return terms.length > 0 ? terms.join(',') : undefined;
}
