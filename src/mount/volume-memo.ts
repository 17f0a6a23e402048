import type { MountResult } from './assemble.js';
import type { MountObject } from './objects.js';
import type { Resolution } from './resolve.js';

/** A checked volume and what the Mount reports about it. */
export interface Volume {
  readonly result: MountResult;
  /** guardOutput's total. */
  readonly bytes: number;
  /** Objects served per store, for usp_objects_served_total. */
  readonly served: ReadonlyMap<string, number>;
}

export interface VolumeMemo {
  /** The volume made from exactly these resolutions, if one was made and they are all values. */
  get(objects: readonly MountObject[], defaultMode: number, versionKey: Buffer, resolutions: readonly Resolution[]): Volume | undefined;
  set(objects: readonly MountObject[], defaultMode: number, versionKey: Buffer, resolutions: readonly Resolution[], volume: Volume): void;
}

interface Node {
  readonly next: WeakMap<object, Node>;
  volume?: Volume;
}

/**
 * The volume a class's objects made last time, by the store results it was made from. A rotation
 * Mount served from the cache gets the very FetchResult objects of the Mount before it, and a volume
 * is a function of those, the parsed class, the default mode and the version key: it reuses that
 * volume instead of assembling and checking it again. Only for classes without find objects (their
 * members change with the listing) whose objects all resolved to values.
 *
 * One WeakMap level per key, the store results last: an entry lives only while the parsed class, the
 * version key and every result it was made from do, so, like the RenderedCache, nothing here
 * outlives the value cache (with the cache off, results are new each Mount and nothing is found).
 */
export function createVolumeMemo(): VolumeMemo {
  const roots = new WeakMap<readonly MountObject[], Map<number, Node>>();
  const walk = (objects: readonly MountObject[], defaultMode: number, versionKey: Buffer, resolutions: readonly Resolution[], create: boolean): Node | undefined => {
    let modes = roots.get(objects);
    if (!modes) {
      if (!create) return undefined;
      roots.set(objects, (modes = new Map()));
    }
    let node = modes.get(defaultMode);
    if (!node) {
      if (!create) return undefined;
      modes.set(defaultMode, (node = { next: new WeakMap() }));
    }
    const step = (key: object): boolean => {
      let child = node!.next.get(key);
      if (!child) {
        if (!create) return false;
        node!.next.set(key, (child = { next: new WeakMap() }));
      }
      node = child;
      return true;
    };
    if (!step(versionKey)) return undefined;
    for (const resolution of resolutions) {
      if (!('result' in resolution) || !step(resolution.result)) return undefined;
    }
    return node;
  };
  return {
    get(objects, defaultMode, versionKey, resolutions) {
      return walk(objects, defaultMode, versionKey, resolutions, false)?.volume;
    },
    set(objects, defaultMode, versionKey, resolutions, volume) {
      if (resolutions.length !== objects.length || resolutions.some((r) => !('result' in r))) return;
      walk(objects, defaultMode, versionKey, resolutions, true)!.volume = volume;
    },
  };
}
