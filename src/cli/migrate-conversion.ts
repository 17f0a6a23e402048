import { parse as parseYaml } from 'yaml';
import { isPlainObject } from '../util.js';

// What the vault and aws converters of `usp migrate` share: the result of a conversion and the
// helpers for the vendors' common formats (the objects list, file modes, boolean parameters).

export type Vendor = 'vault' | 'aws' | 'gcp' | 'azure';
export type Plain = Record<string, unknown>;

/** One object of our class, in the order its fields are written. */
export type OurObject = Plain;

export interface Conversion {
  readonly objects: OurObject[];
  readonly role?: string;
  /** Store entries to add to the provider config. */
  readonly stores: Plain[];
  /** Audiences the CSIDriver must request tokens for. */
  readonly audiences: string[];
  /** Settings with no equivalent, or values only the admin or app team can supply. */
  readonly attention: string[];
  /** Differences worth knowing that need no action. */
  readonly notes: string[];
  /** Problems that make the class unconvertible. */
  readonly problems: string[];
}

export interface VendorClass {
  readonly apiVersion: unknown;
  readonly metadata: Plain;
  readonly spec: Plain;
  readonly parameters: Record<string, string>;
}

export function emptyConversion(): Conversion {
  return { objects: [], stores: [], audiences: [], attention: [], notes: [], problems: [] };
}

/**
 * The vendor's `objects` parameter: a YAML list. Vendors parse it as YAML 1.1, where `0600` is
 * octal, so we do too.
 */
export function parseVendorObjects(text: string | undefined, c: Conversion, listKey?: string): Plain[] {
  if (text === undefined || text.trim() === '') {
    c.problems.push('parameters.objects: missing');
    return [];
  }
  let raw: unknown;
  try {
    raw = parseYaml(text, { version: '1.1', maxAliasCount: 0 });
  } catch (err) {
    c.problems.push(`parameters.objects: not valid YAML (${(err as Error).message.split('\n', 1)[0]})`);
    return [];
  }
  // vault-csi-provider also accepts the older `array:` wrapper of one-object YAML strings.
  if (listKey && isPlainObject(raw) && Array.isArray(raw[listKey])) {
    raw = raw[listKey].map((entry) => (typeof entry === 'string' ? parseYaml(entry, { version: '1.1' }) : entry));
  }
  if (!Array.isArray(raw)) {
    c.problems.push('parameters.objects: must be a YAML list');
    return [];
  }
  return raw.flatMap((entry, i) => {
    if (isPlainObject(entry)) return [entry];
    c.problems.push(`objects[${i}]: must be a mapping`);
    return [];
  });
}

/** File modes: octal text (`"0600"`) or, after YAML 1.1 parsing, the mode's number (`0600` is 384). */
export function convertMode(value: unknown, at: string, c: Conversion): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const mode = typeof value === 'number' ? value : /^0?o?[0-7]{1,4}$/i.test(String(value).trim()) ? Number.parseInt(String(value).trim().replace(/^0o/i, ''), 8) : Number.NaN;
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o777) {
    c.attention.push(`${at}.filePermission: ${JSON.stringify(value)} is not a file mode; left out (the default 0644 applies)`);
    return undefined;
  }
  return `0${mode.toString(8).padStart(3, '0')}`;
}

export function text(value: unknown): string | undefined {
  if (typeof value === 'string' && value !== '') return value;
  if (typeof value === 'number') return String(value);
  return undefined;
}

export function isTrue(value: string | undefined): boolean {
  return value !== undefined && /^(true|1|yes)$/i.test(value.trim());
}

export function reportUnknown(parameters: Record<string, string>, known: readonly string[], c: Conversion): void {
  for (const key of Object.keys(parameters)) {
    if (!known.includes(key)) c.attention.push(`parameters.${key}: not a parameter this converter knows; not converted`);
  }
}
