import { ProviderError } from '../../errors.js';
import { locationPattern, projectPattern, type GcpStoreOptions } from './options.js';

/** One secret version to read, with everything resolved from the store's defaults. */
export interface SecretVersionRef {
  readonly project: string;
  /** Regional secrets only. */
  readonly location?: string;
  readonly secret: string;
  /** `latest`, a version number or an alias. */
  readonly version: string;
}

const secretPattern = /^[A-Za-z0-9_-]{1,255}$/;
const versionPattern = /^(latest|[1-9]\d{0,18}|[A-Za-z][A-Za-z0-9_-]{0,62})$/;
const shapes = '"SECRET", "projects/P/secrets/S" or "projects/P/locations/L/secrets/S" (optionally ending in /versions/V)';

/** Reads a class's ref and version against the store's default project and location. */
export function parseSecretRef(ref: string, version: string | undefined, opts: Pick<GcpStoreOptions, 'project' | 'location'>): SecretVersionRef {
  const named = splitRef(ref);
  if (named?.secret === undefined || !secretPattern.test(named.secret)) {
    throw new ProviderError('InvalidArgument', `ref must be ${shapes}; secret ids hold letters, digits, - and _`);
  }
  const { project, location } = placeOf(ref, named, opts);
  if (named.version !== undefined && version !== undefined && named.version !== version) {
    throw new ProviderError('InvalidArgument', `ref "${ref}" names version ${named.version} and the object's version is "${version}": set one`);
  }
  const chosen = named.version ?? version ?? 'latest';
  if (!versionPattern.test(chosen)) {
    throw new ProviderError('InvalidArgument', `version "${chosen}" must be "latest", a version number or an alias`);
  }
  return { project, secret: named.secret, version: chosen, ...(location !== undefined ? { location } : {}) };
}

/** Where a find lists, and how its found refs are written: `head` + secret id, in the prefix's own form. */
export interface SecretPrefix {
  readonly project: string;
  readonly location?: string;
  /** The start of the secret ids to find. */
  readonly name: string;
  /** `""` for a short prefix, else `projects/P/secrets/` or `projects/P/locations/L/secrets/`. */
  readonly head: string;
}

/** Reads a find's prefix: `ID-PREFIX`, `projects/P/secrets/ID-PREFIX` or `projects/P/locations/L/secrets/ID-PREFIX`. */
export function parseSecretPrefix(prefix: string, opts: Pick<GcpStoreOptions, 'project' | 'location'>): SecretPrefix {
  const named = splitRef(prefix);
  if (named?.secret === undefined || named.version !== undefined || !/^[A-Za-z0-9_-]{0,254}$/.test(named.secret)) {
    throw new ProviderError(
      'InvalidArgument',
      'find.prefix must be the start of a secret id, "projects/P/secrets/ID-PREFIX" or "projects/P/locations/L/secrets/ID-PREFIX"; secret ids hold letters, digits, - and _',
    );
  }
  const place = placeOf(prefix, named, opts);
  return { ...place, name: named.secret, head: prefix.slice(0, prefix.length - named.secret.length) };
}

interface NamedRef {
  readonly project?: string;
  readonly location?: string;
  readonly secret?: string;
  readonly version?: string;
}

function splitRef(ref: string): NamedRef | undefined {
  const parts = ref.split('/');
  if (parts.length === 1) return { secret: parts[0]! };
  return parts[0] === 'projects' ? splitLong(parts) : undefined;
}

/** The project and location a ref names, or the store's for a short one; both checked. */
function placeOf(ref: string, named: NamedRef, opts: Pick<GcpStoreOptions, 'project' | 'location'>): { project: string; location?: string } {
  const project = named.project ?? opts.project;
  if (project === undefined) {
    throw new ProviderError('InvalidArgument', `ref "${ref}" names no project and the store sets none: write projects/P/secrets/${named.secret ?? ''}`);
  }
  if (!projectPattern.test(project)) throw new ProviderError('InvalidArgument', `ref "${ref}": "${project}" is not a project id or number`);
  const location = named.project === undefined ? opts.location : named.location;
  if (location !== undefined && !locationPattern.test(location)) {
    throw new ProviderError('InvalidArgument', `ref "${ref}": "${location}" is not a location like europe-west1`);
  }
  return { project, ...(location !== undefined ? { location } : {}) };
}

function splitLong(parts: string[]): NamedRef | undefined {
  const [, project, third, ...rest] = parts;
  const regional = third === 'locations';
  const tail = regional ? rest.slice(1) : [third, ...rest];
  const [secretsWord, secret, versionsWord, version, ...extra] = tail;
  if (project === undefined || secretsWord !== 'secrets' || extra.length > 0) return undefined;
  if (versionsWord !== undefined && (versionsWord !== 'versions' || version === undefined)) return undefined;
  return {
    project,
    ...(regional ? { location: rest[0] ?? '' } : {}),
    ...(secret !== undefined ? { secret } : {}),
    ...(version !== undefined ? { version } : {}),
  };
}

/** The secret's resource name, as messages show it: `projects/P/locations/L/secrets/S`. */
export function secretName(ref: SecretVersionRef): string {
  const where = ref.location === undefined ? '' : `/locations/${ref.location}`;
  return `projects/${ref.project}${where}/secrets/${ref.secret}`;
}

/** The path of the access call below the Secret Manager base URL. */
export function accessPath(ref: SecretVersionRef): string {
  return `/v1/${secretName(ref)}/versions/${ref.version}:access`;
}

/** How messages name the version asked for. */
export function describeVersion(ref: SecretVersionRef): string {
  if (ref.version === 'latest') return `the latest version of ${secretName(ref)}`;
  return /^\d+$/.test(ref.version) ? `version ${ref.version} of ${secretName(ref)}` : `the version aliased "${ref.version}" of ${secretName(ref)}`;
}
