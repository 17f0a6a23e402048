import { ProviderError } from '../../errors.js';
import type { HttpAnswer } from '../kit/http.js';
import { isObject, listProblem } from '../kit/json-shape.js';
import type { ListedSecret, ListPage } from '../types.js';
import { tokenRefused } from './access.js';
import { answerError, describeAnswer, malformedAnswer } from './client.js';
import type { Principal } from './principal.js';
import type { SecretPrefix } from './refs.js';

/**
 * Secrets per page. A secret's metadata may carry up to 16 KiB of annotations, so 50 stay below
 * the client's 1 MiB answer cap whatever they carry.
 */
const pageSize = 50;

const labelKey = /^[\p{Ll}\p{Lo}][\p{Ll}\p{Lo}\p{N}_-]{0,62}$/u;
const labelValue = /^[\p{Ll}\p{Lo}\p{N}_-]{0,63}$/u;
/** Label keys the filter language takes as a field name as they are; others are matched here only. */
const plainKey = /^[a-z][a-z0-9_]*$/;

/** `projects/P/secrets` or `projects/P/locations/L/secrets`, as messages name the listing. */
export function parentOf(prefix: SecretPrefix): string {
  return `projects/${prefix.project}${prefix.location === undefined ? '' : `/locations/${prefix.location}`}/secrets`;
}

/**
 * The query of one `secrets.list` page. Google's `name:` matches a substring and its label terms
 * narrow the pages; what a find keeps is decided again on each answer (`readListAnswer`).
 */
export function listQuery(prefix: SecretPrefix, labels: Readonly<Record<string, string>>, page: string | undefined): URLSearchParams {
  const terms = prefix.name === '' ? [] : [`name:"${prefix.name}"`];
  for (const [key, value] of Object.entries(labels)) {
    if (!labelKey.test(key) || !labelValue.test(value)) {
      throw new ProviderError(
        'InvalidArgument',
        `find.labels: ${JSON.stringify(key.slice(0, 100))} is not a Secret Manager label: keys start with a lowercase letter; keys and values hold lowercase letters, digits, _ and - (63 at most)`,
      );
    }
    if (plainKey.test(key)) terms.push(`labels.${key}="${value}"`);
  }
  return new URLSearchParams({ pageSize: String(pageSize), ...(terms.length > 0 && { filter: terms.join(' AND ') }), ...(page !== undefined && { pageToken: page }) });
}

/**
 * A 200 of `secrets.list`: `{"secrets": [{"name": "projects/NUMBER/secrets/S", "labels": {...}}],
 * "nextPageToken": "..."}` (an empty page is `{}`). Kept: ids that start with the prefix, in the
 * prefix's location, carrying every label asked for; each is then read at `versions/latest`.
 */
export function readListAnswer(answer: HttpAnswer, prefix: SecretPrefix, labels: Readonly<Record<string, string>>, peer: string): ListPage {
  const what = `the listing of ${parentOf(prefix)}`;
  const body = answer.json;
  if (!isObject(body)) throw malformedAnswer(peer, what, `the body is ${answer.text.trim() === '' ? 'empty' : 'not a JSON object'}`);
  const secrets = body['secrets'] ?? [];
  const problem = Array.isArray(secrets) ? listProblem(secrets, '"secrets"', 'object') : '"secrets" is not a list';
  if (problem !== undefined) throw malformedAnswer(peer, what, problem);
  const where = prefix.location === undefined ? '' : `/locations/${prefix.location}`;
  const namePattern = new RegExp(`^projects/[^/]+${where}/secrets/([A-Za-z0-9_-]{1,255})$`);
  const items: ListedSecret[] = [];
  for (const secret of secrets as Record<string, unknown>[]) {
    const id = typeof secret['name'] === 'string' ? namePattern.exec(secret['name'])?.[1] : undefined;
    if (id === undefined) throw malformedAnswer(peer, what, 'a secret\'s "name" is not a secret of this parent');
    const carried = isObject(secret['labels']) ? secret['labels'] : {};
    if (!id.startsWith(prefix.name) || !Object.entries(labels).every(([key, value]) => carried[key] === value)) continue;
    items.push({ ref: `${prefix.head}${id}` });
  }
  const next = body['nextPageToken'];
  if (next !== undefined && typeof next !== 'string') throw malformedAnswer(peer, what, '"nextPageToken" is not a string');
  return { items, ...(next ? { next } : {}) };
}

/** Why Google refused a listing, in terms of what to fix. */
export function listError(answer: HttpAnswer, prefix: SecretPrefix, principal: Principal, scrub: readonly string[]): ProviderError {
  const told = describeAnswer(answer, scrub);
  if (answer.status === 401) return tokenRefused(principal, told);
  if (answer.status === 403) {
    return new ProviderError(
      'PermissionDenied',
      `${principal.describe} may not list ${parentOf(prefix)}: it needs secretmanager.secrets.list (roles/secretmanager.viewer) on the project ${told}`,
    );
  }
  return answerError(answer, `Secret Manager failed listing ${parentOf(prefix)}`, scrub);
}
