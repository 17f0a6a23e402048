import { ProviderError } from '../../errors.js';
import type { HttpAnswer, HttpClient } from '../kit/http.js';
import { isObject, listProblem } from '../kit/json-shape.js';
import { statusError } from '../kit/transient.js';
import type { ListedSecret, ListPage, ListRequest } from '../types.js';
import type { AzureObjectSpec } from './options.js';
import type { AzureCaller } from './token.js';
import { callAs, refusalOf, tokenRefused } from './vault.js';

/** The vault a store reads: its client, its URL and the api-version it speaks. */
export interface VaultTarget {
  readonly client: HttpClient;
  readonly url: string;
  readonly apiVersion: string;
}

/** Key Vault's largest page: `maxresults` is 1 to 25. */
const pageSize = 25;
const namePrefixPattern = /^[0-9A-Za-z-]{0,126}$/;
const secretIdPattern = /\/secrets\/([0-9A-Za-z-]{1,127})$/;

/**
 * One page of `GET /secrets` (permission secrets/list, or RBAC readMetadata): ids, attributes and
 * tags, never values, so each secret found is then read. Kept: names that start with the prefix
 * (Key Vault names have no folders), enabled, carrying every tag asked for. Pages follow
 * `nextLink` only within this vault, so the access token is never sent anywhere else.
 */
export async function listSecretsPage(vault: VaultTarget, request: ListRequest<AzureObjectSpec>, caller: AzureCaller, signal: AbortSignal): Promise<ListPage> {
  if (request.spec.kind !== 'secret') {
    throw new ProviderError('InvalidArgument', `find lists secrets only, not kind ${request.spec.kind}; certificates are found as their secrets (kind secret)`);
  }
  if (!namePrefixPattern.test(request.prefix)) {
    throw new ProviderError('InvalidArgument', 'find.prefix must be the start of a Key Vault secret name: letters, digits and dashes (names have no folders)');
  }
  const query = request.page ?? new URLSearchParams({ maxresults: String(pageSize), 'api-version': vault.apiVersion }).toString();
  const answer = await callAs(vault.client, caller, { method: 'GET', path: 'secrets', query, signal });
  if (answer.status < 200 || answer.status >= 300) throw listError(answer, caller);
  const body = isObject(answer.json) ? answer.json : undefined;
  const problem = body === undefined ? 'the body is not a JSON object' : Array.isArray(body['value']) ? listProblem(body['value'], '"value"', 'object') : '"value" is not a list';
  if (problem !== undefined) throw malformed(problem);
  const items: ListedSecret[] = [];
  for (const item of body!['value'] as Record<string, unknown>[]) {
    const name = typeof item['id'] === 'string' ? secretIdPattern.exec(item['id'])?.[1] : undefined;
    if (name === undefined) throw malformed('an item\'s "id" is not the id of a secret');
    if (!name.startsWith(request.prefix) || isDisabled(item) || !carriesTags(item['tags'], request.labels)) continue;
    items.push({ ref: name });
  }
  const next = nextPage(body!['nextLink'], vault);
  return { items, ...(next !== undefined ? { next } : {}) };
}

function isDisabled(item: Record<string, unknown>): boolean {
  return isObject(item['attributes']) && item['attributes']['enabled'] === false;
}

function carriesTags(tags: unknown, wanted: Readonly<Record<string, string>>): boolean {
  return Object.entries(wanted).every(([key, value]) => isObject(tags) && tags[key] === value);
}

/** The query of the next page, if `nextLink` is one of this vault's listing pages; never another host's. */
function nextPage(nextLink: unknown, vault: VaultTarget): string | undefined {
  if (nextLink === undefined || nextLink === null || nextLink === '') return undefined;
  if (typeof nextLink !== 'string' || !URL.canParse(nextLink)) throw malformed('"nextLink" is not a URL');
  const link = new URL(nextLink);
  const base = new URL(vault.url);
  // URL lowercases hosts and drops default ports: Key Vault writes `https://name.vault.azure.net:443/secrets?...`.
  const listing = `${base.pathname.replace(/\/+$/, '')}/secrets`;
  if (link.protocol !== 'https:' || link.host !== base.host || link.pathname !== listing || link.username !== '' || link.password !== '') {
    throw new ProviderError('Unavailable', `Key Vault pointed the next page of its listing away from ${vault.url}; not followed, as the access token is for this vault only`, { transient: false });
  }
  const query = link.search.slice(1);
  return new URLSearchParams(query).has('api-version') ? query : `${query}&api-version=${encodeURIComponent(vault.apiVersion)}`;
}

function listError(answer: HttpAnswer, caller: AzureCaller): ProviderError {
  const refusal = refusalOf(answer, caller);
  const { inner, tag, quoted } = refusal;
  if (answer.status === 403) {
    const why =
      inner === 'ForbiddenByRbac'
        ? 'its Azure RBAC role assignments do not allow listing the vault\'s secrets (Microsoft.KeyVault/vaults/secrets/readMetadata/action, e.g. Key Vault Reader on the vault)'
        : 'the vault\'s access policy (secret permission List) or network rules refuse listing its secrets';
    return new ProviderError('PermissionDenied', `${caller.describe}: ${why} ${tag}${quoted}`);
  }
  if (answer.status === 401) return tokenRefused(caller, refusal);
  return statusError(answer.status, `Key Vault failed listing its secrets ${tag}${quoted}`, answer.retryAfterSeconds);
}

/** A 2xx that is not a listing (a proxy's page): transient, like other malformed answers; never quoted. */
function malformed(problem: string): ProviderError {
  return new ProviderError('Unavailable', `Key Vault answered the listing of its secrets with a malformed answer (${problem})`, { transient: true });
}
