import { ProviderError } from '../errors.js';
import type { FetchContext, FetchResult, ListedSecret } from '../backends/types.js';
import type { Store } from '../stores/stores.js';
import { Secret } from '../secret.js';
import { describeObject, type MountObject } from './objects.js';
import { checkDriverPath } from './paths.js';
import { checkAccess } from './policy.js';
import { identityKey, resolveObjects, runOnStore, type Resolution, type ResolveDeps } from './resolve.js';

export interface MountResolution {
  readonly resolutions: Resolution[];
  /** Found refs the access rules left out; undefined when the class has no find object. */
  readonly excluded?: number;
}

/** A store-side bound, whatever the object's limit: past it a listing is refused, not paged on. */
const maxListed = 10_000;
const maxPages = 1_000;

/**
 * Resolves a Mount's objects, all or nothing: single objects as resolveObjects does, and each find
 * object by listing its store (through the store's cache, guard and limiter) and then reading the
 * secrets the listing returned without values.
 */
export async function resolveMount(objects: readonly MountObject[], ctx: FetchContext, deps: ResolveDeps): Promise<MountResolution> {
  const finds = findObjects(objects);
  if (finds.length === 0) return { resolutions: await resolveObjects(objects, ctx, deps) };
  const [single, ...found] = await Promise.all([
    resolveObjects(objects.filter((o) => o.find === undefined), ctx, deps),
    ...finds.map((object) => resolveFind(object, ctx, deps)),
  ]);
  return {
    resolutions: [...single, ...found.flatMap((f) => f.resolutions)],
    excluded: found.reduce((sum, f) => sum + f.excluded, 0),
  };
}

const findsOf = new WeakMap<readonly MountObject[], readonly MountObject[]>();

/** The find objects of a class's objects; worked out once per parsed class, which Mounts reuse. */
export function findObjects(objects: readonly MountObject[]): readonly MountObject[] {
  let finds = findsOf.get(objects);
  if (!finds) findsOf.set(objects, (finds = objects.filter((o) => o.find !== undefined)));
  return finds;
}

async function resolveFind(object: MountObject, ctx: FetchContext, deps: ResolveDeps): Promise<{ resolutions: Resolution[]; excluded: number }> {
  const store = deps.stores.get(object.store);
  if (!store) throw new ProviderError('Internal', 'the store went away during the Mount');
  const where = `${describeObject(object)} (store ${object.store}, find prefix ${JSON.stringify(object.ref)})`;
  try {
    const listed = await listCached(store, object, ctx, deps);
    const allowed = listed.filter((item) => checkAccess(store.config.access, ctx.identity, item.ref).allowed);
    const excluded = listed.length - allowed.length;
    if (excluded > 0) deps.metrics.findExcluded.inc({ store: object.store }, excluded);
    const limit = object.find!.limit;
    if (allowed.length > limit) {
      throw new ProviderError('InvalidArgument', `found ${allowed.length} secrets, more than the limit of ${limit}; narrow the prefix or labels, or raise find.limit`);
    }
    const members = allowed.map((item) => ({ item, object: memberOf(object, item.ref) }));
    checkFoundNames(object, members.map((m) => m.object));
    const unread = members.filter((m) => m.item.value === undefined).map((m) => m.object);
    const read = await resolveObjects(unread, ctx, deps);
    const listedValues = members.flatMap(({ item, object: member }) => (item.value ? [{ object: member, result: item.value }] : []));
    return { resolutions: [...listedValues, ...read].sort((a, b) => (a.object.name < b.object.name ? -1 : 1)), excluded };
  } catch (err) {
    // Reads of found secrets already name their object; the listing's own failures get the find's.
    if (err instanceof ProviderError && err.message.startsWith(`objects[${object.index}] `)) throw err;
    throw (err instanceof ProviderError ? err : new ProviderError('Internal', 'listing failed unexpectedly')).within(where);
  }
}

/** A listing is cached per identity like a value, so concurrent Mounts of one identity share one. */
async function listCached(store: Store, object: MountObject, ctx: FetchContext, deps: ResolveDeps): Promise<readonly ListedSecret[]> {
  // A cached listing needs what a store call would: the pod's valid token for the store's audience.
  for (const audience of store.config.audiences) ctx.tokenFor(audience);
  const { prefix, recursive, labels } = object.find!;
  const sortedLabels = Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1));
  const key = `${identityKey(ctx, deps.keyHmac)}\0find\0${JSON.stringify([prefix, recursive, sortedLabels, object.spec ?? null])}`;
  const carrier = await store.cache.get(key, (signal) => listAll(store, object, { ...ctx, signal }, deps), () => ctx.signal);
  return (carrier as ListingCarrier).listing;
}

/** A listing held in the value cache: its content is only what the cache sizes it by. */
interface ListingCarrier extends FetchResult {
  readonly listing: readonly ListedSecret[];
}

async function listAll(store: Store, object: MountObject, ctx: FetchContext, deps: ResolveDeps): Promise<ListingCarrier> {
  const { prefix, recursive, labels } = object.find!;
  const list = store.backend.list!.bind(store.backend);
  const listing: ListedSecret[] = [];
  let page: string | undefined;
  for (let pages = 0; pages === 0 || page !== undefined; pages += 1) {
    if (pages >= maxPages) throw new ProviderError('Unavailable', `the store kept paging past ${maxPages} pages`, { transient: false });
    const request = { prefix, recursive, labels, page, spec: object.spec };
    const answer = await runOnStore(store, (attemptCtx) => list(request, attemptCtx), ctx, deps);
    listing.push(...answer.items);
    if (listing.length > maxListed) {
      throw new ProviderError('InvalidArgument', `the listing found more than ${maxListed} secrets; narrow the prefix or labels`);
    }
    page = answer.next;
  }
  const sizes = Object.fromEntries(listing.map((item, i) => [String(i), item.value ? sizeView(item.value) : item.ref]));
  return { content: new Secret({ kind: 'fields', fields: sizes }), listing };
}

function sizeView(value: FetchResult): unknown {
  const content = value.content.reveal();
  return content.kind === 'bytes' ? content.data : content.fields;
}

/** Member objects are kept per find object, so render caches keyed by object stay bounded. */
const members = new WeakMap<MountObject, Map<string, MountObject>>();

/** The object of one found secret: the find's fields, its own ref, named by the ref under the prefix. */
function memberOf(find: MountObject, ref: string): MountObject {
  let known = members.get(find);
  if (!known) members.set(find, (known = new Map()));
  const hit = known.get(ref);
  if (hit) return hit;
  if (!ref.startsWith(find.ref)) throw new ProviderError('Internal', 'the store listed a ref outside the prefix');
  const relative = ref.slice(find.ref.length).replace(/^\/+/, '');
  const { find: _selection, ...fields } = find;
  // A found secret removed between listing and read is gone, not an error: it drops out as rotation would.
  const member: MountObject = { ...fields, name: `${find.name}/${relative}`, ref, optional: true, foundBy: find };
  if (known.size >= 4 * find.find!.limit) known.clear();
  known.set(ref, member);
  return member;
}

/** Found names must be volume paths, and distinct without regard to case (case-insensitive tools collide). */
function checkFoundNames(find: MountObject, found: readonly MountObject[]): void {
  const seen = new Map<string, string>();
  for (const member of found) {
    const relative = member.name.slice(find.name.length + 1);
    const problem = relative === '' ? 'is empty' : checkDriverPath(member.name);
    if (problem) throw new ProviderError('InvalidArgument', `found secret ${JSON.stringify(relative.slice(0, 300))} is not a valid file name in the volume: ${problem}`);
    const folded = relative.toLowerCase();
    const earlier = seen.get(folded);
    if (earlier !== undefined) {
      throw new ProviderError('InvalidArgument', `found secrets ${JSON.stringify(earlier)} and ${JSON.stringify(relative)} differ only in case; they would collide on case-insensitive tooling`);
    }
    seen.set(folded, relative);
  }
}
