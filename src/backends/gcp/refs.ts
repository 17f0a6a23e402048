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
  const parts = ref.split('/');
  let named: { project?: string; location?: string; secret?: string; version?: string } | undefined;
  if (parts.length === 1) named = { secret: parts[0]! };
  else if (parts[0] === 'projects') named = splitLong(parts);
  if (named?.secret === undefined || !secretPattern.test(named.secret)) {
    throw new ProviderError('InvalidArgument', `ref must be ${shapes}; secret ids hold letters, digits, - and _`);
  }
  const project = named.project ?? opts.project;
  if (project === undefined) {
    throw new ProviderError('InvalidArgument', `ref "${ref}" names no project and the store sets none: write projects/P/secrets/${named.secret}`);
  }
  if (!projectPattern.test(project)) throw new ProviderError('InvalidArgument', `ref "${ref}": "${project}" is not a project id or number`);
  const location = named.project === undefined ? opts.location : named.location;
  if (location !== undefined && !locationPattern.test(location)) {
    throw new ProviderError('InvalidArgument', `ref "${ref}": "${location}" is not a location like europe-west1`);
  }
  if (named.version !== undefined && version !== undefined && named.version !== version) {
    throw new ProviderError('InvalidArgument', `ref "${ref}" names version ${named.version} and the object's version is "${version}": set one`);
  }
  const chosen = named.version ?? version ?? 'latest';
  if (!versionPattern.test(chosen)) {
    throw new ProviderError('InvalidArgument', `version "${chosen}" must be "latest", a version number or an alias`);
  }
  return { project, secret: named.secret, version: chosen, ...(location !== undefined ? { location } : {}) };
}

function splitLong(parts: string[]): { project?: string; location?: string; secret?: string; version?: string } | undefined {
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
