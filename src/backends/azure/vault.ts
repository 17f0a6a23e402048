import { ProviderError } from '../../errors.js';
import type { HttpAnswer, HttpCall, HttpClient } from '../kit/http.js';
import { isObject } from '../kit/json-shape.js';
import { quoteStoreText } from '../kit/redact.js';
import { statusError } from '../kit/transient.js';
import type { AzureCaller } from './token.js';

export type ItemKind = 'secret' | 'key' | 'cert';

const collections: Record<ItemKind, string> = { secret: 'secrets', key: 'keys', cert: 'certificates' };
const itemWords: Record<ItemKind, string> = { secret: 'secret', key: 'key', cert: 'certificate' };

/** One item to read: its kind, name and optional version. */
export interface ItemRef {
  readonly kind: ItemKind;
  readonly name: string;
  readonly version?: string;
}

const namePattern = /^[0-9A-Za-z-]{1,127}$/;
const versionPattern = /^[0-9A-Za-z]{1,64}$/;

/** Checks a ref and version the way Key Vault names them, before anything is sent. */
export function parseItemRef(kind: ItemKind, ref: string, version: string | undefined): ItemRef {
  if (!namePattern.test(ref)) throw new ProviderError('InvalidArgument', 'ref must be a Key Vault object name: 1-127 letters, digits and dashes');
  if (version !== undefined && !versionPattern.test(version)) {
    throw new ProviderError('InvalidArgument', 'version must be a Key Vault version id (32 hex digits)');
  }
  return { kind, name: ref, ...(version !== undefined ? { version } : {}) };
}

export function describeItem(item: ItemRef): string {
  return `${itemWords[item.kind]} "${item.name}"${item.version !== undefined ? ` version ${item.version}` : ''}`;
}

/** Reads one item as the caller. */
export async function readItem(client: HttpClient, apiVersion: string, item: ItemRef, caller: AzureCaller, signal: AbortSignal): Promise<Record<string, unknown>> {
  const path = `${collections[item.kind]}/${encodeURIComponent(item.name)}${item.version !== undefined ? `/${item.version}` : ''}`;
  const answer = await callAs(client, caller, { method: 'GET', path, query: new URLSearchParams({ 'api-version': apiVersion }), signal });
  if (answer.status < 200 || answer.status >= 300) throw readError(answer, item, caller);
  if (!isObject(answer.json)) {
    throw new ProviderError('Unavailable', `Key Vault answered the read of ${describeItem(item)} with a body that is not a JSON object`, { transient: true });
  }
  return answer.json;
}

/**
 * One Key Vault call as the caller. A 401 with a cached access token (revoked, or the vault's
 * clock ahead of ours) drops it and tries once more with a fresh exchange, inside this attempt.
 */
export async function callAs(client: HttpClient, caller: AzureCaller, call: Omit<HttpCall, 'headers'>): Promise<HttpAnswer> {
  const send = async () => {
    const held = await caller.obtain();
    const answer = await client.call({ ...call, headers: { authorization: `Bearer ${held.token}` } });
    return { answer, cached: held.cached };
  };
  const first = await send();
  if (first.answer.status !== 401 || !first.cached) return first.answer;
  caller.evict();
  return (await send()).answer;
}

/** Key Vault's error body `{error: {code, message, innererror: {code}}}`, as messages show it. */
export interface VaultRefusal {
  readonly inner: string;
  readonly message: string;
  /** `(HTTP 403 Forbidden/ForbiddenByRbac)` */
  readonly tag: string;
  /** `: <Key Vault's message, bounded and scrubbed>` or empty. */
  readonly quoted: string;
}

export function refusalOf(answer: HttpAnswer, caller: AzureCaller): VaultRefusal {
  const error = isObject(answer.json) && isObject(answer.json['error']) ? answer.json['error'] : {};
  const innerError = isObject(error['innererror']) ? error['innererror'] : {};
  const text = (v: unknown) => (typeof v === 'string' ? v : '');
  const [code, inner, message] = [text(error['code']), text(innerError['code']), text(error['message'])];
  const codes = [code, inner].filter((c) => c !== '' && /^[A-Za-z0-9]{1,60}$/.test(c)).join('/');
  return { inner, message, tag: `(HTTP ${answer.status}${codes ? ` ${codes}` : ''})`, quoted: message ? `: ${quoteStoreText(message, caller.scrub, 200)}` : '' };
}

function readError(answer: HttpAnswer, item: ItemRef, caller: AzureCaller): ProviderError {
  const { inner, message, tag, quoted } = refusalOf(answer, caller);
  const what = describeItem(item);
  if (answer.status === 403 && (inner === 'SecretDisabled' || /\bdisabled\b/i.test(message))) {
    return new ProviderError('PermissionDenied', `${what} is disabled in Key Vault ${tag}; enable it or pin an enabled version`);
  }
  if (answer.status === 404) return new ProviderError('NotFound', `Key Vault has no ${what} ${tag}`);
  if (answer.status === 403) {
    const why = inner === 'ForbiddenByRbac' ? 'its Azure RBAC role assignments do not allow reading' : 'the vault\'s access policy or network rules refuse reading';
    return new ProviderError('PermissionDenied', `${caller.describe}: ${why} ${what} ${tag}${quoted}`);
  }
  if (answer.status === 401) return tokenRefused(caller, { tag, quoted });
  return statusError(answer.status, `Key Vault failed reading ${what} ${tag}${quoted}`, answer.retryAfterSeconds);
}

/** A 401 after a fresh exchange: the vault does not take this application's tokens (audience, tenant). */
export function tokenRefused(caller: AzureCaller, { tag, quoted }: Pick<VaultRefusal, 'tag' | 'quoted'>): ProviderError {
  return new ProviderError('PermissionDenied', `Key Vault did not accept the access token of ${caller.describe} ${tag}${quoted}`);
}

/** The version id at the end of an item id like `https://v.vault.azure.net/secrets/name/<32 hex>`. */
export function versionOf(id: unknown): string | undefined {
  if (typeof id !== 'string') return undefined;
  const last = id.split('/').pop() ?? '';
  return versionPattern.test(last) ? last : undefined;
}
