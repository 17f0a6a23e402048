import { ProviderError } from '../../errors.js';
import { isWellFormed } from '../../util.js';
import type { ListedSecret, ListPage, ListRequest } from '../types.js';
import type { Caller } from './auth.js';
import { listKvFolder, type VaultKv } from './kv.js';
import type { VaultAuth } from './auth.js';

/** Folders below the prefix's own that a recursive listing descends into. */
const maxDepth = 8;

/** A folder still to list, relative to the prefix's folder (`""`, `db/`, `db/eu/`). */
interface Pending {
  readonly folder: string;
  readonly depth: number;
}

const segmentPattern = /^[^\s?#%\\/\u0000-\u001f]+$/;

/**
 * One page of a KV listing: one LIST of one folder. A recursive listing carries the folders still
 * to list in its page token, so each folder is one page behind the store's guard and limiter.
 * Values are not in a KV listing: each found ref is then read like a single object.
 */
export async function listKvPage(kv: VaultKv, auth: VaultAuth, caller: Caller, request: ListRequest<unknown>, signal: AbortSignal): Promise<ListPage> {
  if (Object.keys(request.labels).length > 0) throw new ProviderError('InvalidArgument', 'Vault KV has no labels; remove find.labels');
  const slash = request.prefix.lastIndexOf('/');
  const base = request.prefix.slice(0, slash + 1);
  const namePrefix = request.prefix.slice(slash + 1);
  const baseSegments = base.split('/').filter((s) => s !== '');
  if (baseSegments.length === 0 || !baseSegments.every(isSegment)) {
    throw new ProviderError('InvalidArgument', 'find.prefix must be a Vault KV folder like "secret/app/" or "secret/app/db-" (no empty, "." or ".." segments, no ?, # or %)');
  }
  const [current, ...pending] = request.page === undefined ? [{ folder: '', depth: 0 }] : decodePage(request.page);
  const segments = [...baseSegments, ...current!.folder.split('/').filter((s) => s !== '')];
  const mount = await kv.mountFor(segments, caller, signal);
  if (mount?.kvVersion === undefined) throw new ProviderError('InvalidArgument', `"${base}" is not in a KV mount; find lists KV secrets only`);
  const items: ListedSecret[] = [];
  for (const key of await listKvFolder(auth, segments, mount, caller, signal)) {
    if (current!.depth === 0 && !key.startsWith(namePrefix)) continue;
    if (!key.endsWith('/')) items.push({ ref: `${base}${current!.folder}${key}` });
    else if (!request.recursive || current!.depth >= maxDepth) continue;
    // The folder's name is the store's, possibly hostile; it is not quoted (an access rule may deny it).
    else if (!isSegment(key.slice(0, -1))) throw new ProviderError('InvalidArgument', `Vault listed a folder under "${segments.join('/')}" whose name is not a valid path segment`);
    else pending.push({ folder: `${current!.folder}${key}`, depth: current!.depth + 1 });
  }
  return { items, ...(pending.length > 0 && { next: Buffer.from(JSON.stringify(pending)).toString('base64url') }) };
}

function isSegment(s: string): boolean {
  return s !== '.' && s !== '..' && segmentPattern.test(s) && isWellFormed(s);
}

function decodePage(page: string): Pending[] {
  try {
    const pending = JSON.parse(Buffer.from(page, 'base64url').toString('utf8')) as Pending[];
    if (Array.isArray(pending) && pending.length > 0 && pending.every((p) => typeof p.folder === 'string' && typeof p.depth === 'number')) return pending;
  } catch {
    // Our own token; anything else is a caller's bug, reported below.
  }
  throw new ProviderError('Internal', 'the Vault listing page token is not one this store made');
}
