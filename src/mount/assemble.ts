import { toProviderError } from '../errors.js';
import type { FetchResult } from '../backends/types.js';
import type { MountInput } from './input.js';
import { describeObject, type MountObject } from './objects.js';
import { checkFile, hmacVersion } from './output.js';
import type { Resolution } from './resolve.js';
import type { MountTemplate } from './templates.js';
import { renderTemplates, type TemplateInput } from './template-render.js';
import { toObjectFiles, type ObjectFile } from './transform.js';

export interface ObjectVersion {
  readonly id: string;
  readonly version: string;
}

export interface MountResult {
  readonly files: ObjectFile[];
  readonly objectVersions: ObjectVersion[];
  /** Where each file came from, for `usp render` and logs; never values. A template has no store. */
  readonly sources: ReadonlyMap<string, FileSource>;
}

export interface FileSource {
  readonly store?: string;
  readonly ref: string;
  readonly version: string;
}

/**
 * Files and version of each object, rendered once per cached value: a cache hit then costs no
 * transform and no HMAC. Keyed weakly by the store's result, so nothing outlives the value cache
 * (with the cache off, nothing is kept at all).
 */
export type RenderedCache = WeakMap<FetchResult, Map<MountObject, Rendered>>;

interface Rendered {
  readonly files: ObjectFile[];
  readonly version: string;
  readonly defaultMode: number;
  readonly versionKey: Buffer;
}

function render(object: MountObject, result: FetchResult, defaultMode: number, versionKey: Buffer, cache: RenderedCache): Rendered {
  let byObject = cache.get(result);
  const hit = byObject?.get(object);
  if (hit && hit.defaultMode === defaultMode && hit.versionKey === versionKey) return hit;
  let files: ObjectFile[];
  try {
    files = toObjectFiles(object, result.content.reveal(), defaultMode);
    files.forEach(checkFile);
  } catch (err) {
    throw toProviderError(err).within(`${describeObject(object)} (store ${object.store}, ref ${object.ref})`);
  }
  const rendered = { files, version: result.version ?? hmacVersion(versionKey, files), defaultMode, versionKey };
  if (!byObject) cache.set(result, (byObject = new Map()));
  byObject.set(object, rendered);
  return rendered;
}

/** The volume of one Mount: each mounted object's files, then the templates', with a version each. */
export function assemble(
  resolutions: readonly Resolution[],
  templates: readonly MountTemplate[],
  input: MountInput,
  versionKey: Buffer,
  cache: RenderedCache,
  finds: readonly MountObject[] = [],
): MountResult {
  const files: ObjectFile[] = [];
  const objectVersions: ObjectVersion[] = [];
  const sources = new Map<string, FileSource>();
  const inputs: TemplateInput[] = [];
  const skipped: MountObject[] = [];
  for (const resolution of resolutions) {
    if (!('result' in resolution)) {
      skipped.push(resolution.object);
      continue;
    }
    const { object, result } = resolution;
    const { files: produced, version } = render(object, result, input.defaultMode, versionKey, cache);
    inputs.push({ object, files: produced, version });
    if (!object.mount) continue;
    objectVersions.push({ id: object.name, version });
    for (const file of produced) {
      files.push(file);
      sources.set(file.path, { store: object.store, ref: object.ref, version });
    }
  }
  if (templates.length > 0) inputs.push(...foundSets(finds, inputs, versionKey));
  for (const { template, file, version } of renderTemplates(templates, inputs, skipped, { defaultMode: input.defaultMode, versionKey })) {
    objectVersions.push({ id: template.name, version });
    files.push(file);
    sources.set(file.path, { ref: `templates[${template.index}]`, version });
  }
  // The driver fails a Mount without versions; all objects may have been optional and missing.
  if (objectVersions.length === 0) objectVersions.push({ id: 'usp/no-objects', version: 'empty' });
  return { files, objectVersions, sources };
}

const setViews = new WeakMap<MountObject, MountObject>();

/**
 * Each find object as templates see it: like an expanded object, `objects["NAME"]` iterates over
 * the files found (keyed by their path under NAME), with a version made of its members'.
 */
function foundSets(finds: readonly MountObject[], inputs: readonly TemplateInput[], versionKey: Buffer): TemplateInput[] {
  return finds.map((find) => {
    let view = setViews.get(find);
    if (!view) setViews.set(find, (view = { ...find, expand: 'keys' }));
    const members = inputs.filter((i) => i.object.foundBy === find);
    const versions = members.map((m) => `${m.object.name}\0${m.version}`);
    return { object: view, files: members.flatMap((m) => m.files), version: hmacVersion(versionKey, [], versions) };
  });
}
