import { ProviderError } from '../../errors.js';
import { fieldsContent } from '../kit/content.js';
import { isObject } from '../kit/json-shape.js';
import type { FetchResult } from '../types.js';
import type { Caller, VaultAuth } from './auth.js';
import { encodePath, isOk, readError, requireData, unexpectedShape, type VaultAnswer } from './client.js';
import type { VaultStoreOptions } from './options.js';

export interface MountInfo {
  /** Mount path with trailing slash, e.g. `secret/`. */
  readonly path: string;
  readonly type: string;
  readonly kvVersion?: 1 | 2;
}

/** Mounts rarely change; the list only stops growing past this many. */
const maxKnownMounts = 1000;

/** KV secrets: which mounts are KV (asked once per mount), and reads of v1 values and v2 versions. */
export class VaultKv {
  readonly #mounts: MountInfo[] = [];

  constructor(
    private readonly kvVersion: VaultStoreOptions['kvVersion'],
    private readonly auth: VaultAuth,
  ) {}

  /** The mount under `segments`; undefined when Vault cannot say, so the path is read as given. */
  async mountFor(segments: readonly string[], caller: Caller, signal: AbortSignal): Promise<MountInfo | undefined> {
    if (this.kvVersion !== 'auto') return { path: `${segments[0]}/`, type: 'kv', kvVersion: this.kvVersion };
    const joined = `${segments.join('/')}/`;
    const known = this.#mounts.filter((m) => joined.startsWith(m.path)).sort((a, b) => b.path.length - a.path.length)[0];
    if (known) return known;
    const res = await this.auth.callAs(caller, { method: 'GET', path: `sys/internal/ui/mounts/${encodePath(segments)}`, signal });
    // Vaults without the preflight endpoint: read the path as given.
    if (res.status === 404 || res.status === 405) return undefined;
    if (!isOk(res.status)) throw readError(res, caller, 'looking up the mount of', segments);
    const data = res.body['data'];
    if (!isObject(data)) {
      if (res.status === 204) return undefined;
      // Read as a plain path, a KV v2 answer would mount its envelope: refuse instead.
      throw unexpectedShape(['sys/internal/ui/mounts', ...segments], '"data"', data);
    }
    const mountPath = typeof data['path'] === 'string' ? data['path'] : undefined;
    if (!mountPath || !joined.startsWith(mountPath)) return undefined;
    const kvVersion = kvVersionOf(data);
    const info: MountInfo = { path: mountPath, type: String(data['type']), ...(kvVersion ? { kvVersion } : {}) };
    if (this.#mounts.length < maxKnownMounts) this.#mounts.push(info);
    return info;
  }

  async read(segments: readonly string[], mount: MountInfo, versionPin: number | undefined, caller: Caller, signal: AbortSignal): Promise<FetchResult> {
    if (mount.kvVersion === 1) {
      if (versionPin !== undefined) {
        throw new ProviderError('InvalidArgument', `version applies only to KV v2; mount "${mount.path}" is KV v1`);
      }
      const res = await this.auth.callAs(caller, { method: 'GET', path: encodePath(segments), signal });
      if (!isOk(res.status)) throw readError(res, caller, 'reading', segments);
      return { content: fieldsContent(requireData(res, segments)) };
    }
    const depth = mount.path.replace(/\/$/, '').split('/').length;
    const full = kvV2Segments(segments, depth);
    const query = versionPin === undefined ? {} : { query: `version=${versionPin}` };
    const res = await this.auth.callAs(caller, { method: 'GET', path: encodePath(full), signal, ...query });
    if (!isOk(res.status)) throw kvV2Error(res, caller, full, versionPin);
    return unwrapKvV2(res, full, versionPin);
  }
}

/** The keys one level below a KV folder (sub-folders end in `/`), with the policy capability `list`. */
export async function listKvFolder(auth: VaultAuth, folder: readonly string[], mount: MountInfo, caller: Caller, signal: AbortSignal): Promise<string[]> {
  const depth = mount.path.replace(/\/$/, '').split('/').length;
  const rest = folder.slice(depth);
  const path = mount.kvVersion === 2 ? [...folder.slice(0, depth), 'metadata', ...(rest[0] === 'data' ? rest.slice(1) : rest)] : [...folder];
  const res = await auth.callAs(caller, { method: 'GET', path: `${encodePath(path)}/`, query: 'list=true', signal });
  // Vault answers an empty or missing folder with 404.
  if (res.status === 404) return [];
  if (!isOk(res.status)) throw readError(res, caller, 'listing', path);
  const keys = requireData(res, path)['keys'];
  if (!Array.isArray(keys) || !keys.every((k): k is string => typeof k === 'string')) {
    throw new ProviderError('Unavailable', `Vault answered listing "${path.join('/')}" with an unexpected response shape ("data.keys" is not a list of strings)`);
  }
  return keys;
}

/** A KV v2 version pin: a positive integer. */
export function parseVersionPin(version: string | undefined): number | undefined {
  if (version === undefined) return undefined;
  if (!/^[1-9]\d{0,9}$/.test(version)) {
    throw new ProviderError('InvalidArgument', `version must be a KV v2 version number, got ${JSON.stringify(version.slice(0, 40))}`);
  }
  return Number(version);
}

function kvVersionOf(info: Record<string, unknown>): 1 | 2 | undefined {
  if (info['type'] !== 'kv' && info['type'] !== 'generic') return undefined;
  const opts = info['options'];
  return isObject(opts) && opts['version'] === '2' ? 2 : 1;
}

/** KV v2 refs may omit `data/` after the mount, as users of vault-csi-provider write both. */
function kvV2Segments(segments: readonly string[], mountDepth: number): string[] {
  const rest = segments.slice(mountDepth);
  if (rest[0] === 'data' && rest.length > 1) return [...segments];
  return [...segments.slice(0, mountDepth), 'data', ...rest];
}

/** Vault answers a deleted or destroyed version with 404 and the version's metadata. */
function kvV2Error(res: VaultAnswer, caller: Caller, segments: readonly string[], versionPin: number | undefined): ProviderError {
  const outer = res.body['data'];
  const metadata = isObject(outer) ? outer['metadata'] : undefined;
  if (res.status === 404 && isObject(metadata)) {
    const state = metadata['destroyed'] === true ? 'destroyed' : 'deleted';
    return new ProviderError('NotFound', `${whichVersion(versionPin)} of "${segments.join('/')}" was ${state}`);
  }
  return readError(res, caller, 'reading', segments);
}

function unwrapKvV2(res: VaultAnswer, segments: readonly string[], versionPin: number | undefined): FetchResult {
  const outer = requireData(res, segments);
  const data = outer['data'];
  const metadata = outer['metadata'];
  if (!isObject(data)) {
    // Accept the metadata of a deleted or destroyed version on a 2xx too, but only when it says
    // so: any other non-object is a malformed answer.
    const deleted = isObject(metadata) && typeof metadata['deletion_time'] === 'string' && metadata['deletion_time'] !== '';
    const destroyed = isObject(metadata) && metadata['destroyed'] === true;
    if ((data === null || data === undefined) && (deleted || destroyed)) {
      throw new ProviderError('NotFound', `${whichVersion(versionPin)} of "${segments.join('/')}" was ${destroyed ? 'destroyed' : 'deleted'}`);
    }
    throw unexpectedShape(segments, '"data.data"', data);
  }
  const version = isObject(metadata) ? metadata['version'] : undefined;
  return {
    content: fieldsContent(data),
    ...(typeof version === 'number' ? { version: String(version) } : {}),
  };
}

function whichVersion(versionPin: number | undefined): string {
  return versionPin === undefined ? 'the current version' : `version ${versionPin}`;
}
