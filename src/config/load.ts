import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { findBackend } from '../backends/registry.js';
import type { BackendDefinition } from '../backends/types.js';
import { parseWith } from '../schema.js';
import { firstLine } from '../util.js';
import {
  providerConfig,
  storeCommon,
  type AccessRule,
  type StoreEntry,
  type BreakerSettings,
  type CacheSettings,
  type FairnessSettings,
  type RetrySettings,
} from './schema.js';

export interface StoreConfig {
  readonly name: string;
  readonly definition: BackendDefinition;
  /** The backend's own options, as its definition parsed them. */
  readonly options: unknown;
  /** Pod-token audiences the store presents; a Mount must carry a valid token for each. */
  readonly audiences: readonly string[];
  readonly cache: CacheSettings;
  readonly access: readonly AccessRule[];
  readonly concurrency: number;
  readonly retry: RetrySettings;
  readonly breaker: BreakerSettings;
  readonly fairness: FairnessSettings;
  readonly restrictsNamespaces: boolean;
  /** Canonical text of the whole entry: an unchanged store keeps its clients across reloads. */
  readonly fingerprint: string;
}

export interface ProviderConfig {
  readonly defaultStore?: string;
  readonly versionKey?: Buffer;
  readonly limits: { readonly maxObjects: number; readonly mountTimeout: number };
  readonly stores: readonly StoreConfig[];
  readonly baseDir: string;
}

export type ConfigResult = { ok: true; config: ProviderConfig } | { ok: false; problems: string[] };

const maxConfigBytes = 1024 * 1024;

/** Reads and validates the provider config file, reporting every problem with its field. */
export async function loadProviderConfig(path: string): Promise<ConfigResult> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    return { ok: false, problems: [`${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? 'error'})`] };
  }
  return parseProviderConfig(text, resolve(path, '..'));
}

export async function parseProviderConfig(text: string, baseDir: string): Promise<ConfigResult> {
  if (text.length > maxConfigBytes) return { ok: false, problems: [`config is larger than ${maxConfigBytes} bytes`] };
  let raw: unknown;
  try {
    // logLevel error: YAML warnings would otherwise go to stderr through process.emitWarning with a
    // code frame of the config text, which may hold an inline versionKey. Found by fuzzing.
    raw = parseYaml(text, { maxAliasCount: 0, uniqueKeys: true, logLevel: 'error' });
  } catch (err) {
    return { ok: false, problems: [`config is not valid YAML: ${firstLine(err)}`] };
  }
  const top = parseWith(providerConfig, raw, '');
  if (!top.ok) return { ok: false, problems: [...top.problems, ...commonProblemsOfUnknownKinds(raw)] };
  const problems: string[] = [];
  const rawStores = (raw as { stores: unknown[] }).stores;
  const stores = top.value.stores.map((entry, i) => toStoreConfig(entry, rawStores[i], `stores[${i}]`, problems));
  checkUniqueNames(stores, problems);
  const { defaultStore, versionKey, versionKeyFile, limits } = top.value;
  if (defaultStore !== undefined && !stores.some((s) => s.name === defaultStore)) {
    problems.push(`defaultStore: no store named "${defaultStore}"`);
  }
  if (versionKey && versionKeyFile) problems.push('versionKeyFile: set versionKey or versionKeyFile, not both');
  const key = await readVersionKey(versionKey, versionKeyFile, baseDir, problems);
  if (problems.length > 0) return { ok: false, problems };
  return { ok: true, config: { defaultStore, versionKey: key, limits, stores, baseDir } };
}

/** A store of an unknown kind still has its common fields checked, so one run lists every problem. */
function commonProblemsOfUnknownKinds(raw: unknown): string[] {
  const stores = (raw as { stores?: unknown } | null)?.stores;
  if (!Array.isArray(stores)) return [];
  return stores.flatMap((entry: unknown, i) => {
    const kind = (entry as { backend?: unknown } | null)?.backend;
    if (typeof kind === 'string' && findBackend(kind)) return [];
    const common = parseWith(storeCommon, entry, `stores[${i}]`);
    return common.ok ? [] : common.problems;
  });
}

const commonKeys = new Set([...Object.keys(storeCommon.shape), 'backend']);

function toStoreConfig(entry: StoreEntry, raw: unknown, at: string, problems: string[]): StoreConfig {
  const definition = findBackend(entry.backend)!;
  const options = Object.fromEntries(Object.entries(entry).filter(([k]) => !commonKeys.has(k)));
  const restrictsNamespaces = checkRestrictsNamespaces(entry.access);
  const own = definition.checkStore?.({ name: entry.name, options, restrictsNamespaces }) ?? [];
  problems.push(...own.map((p) => `${at}.${p}`));
  return {
    name: entry.name,
    definition,
    options,
    audiences: definition.audiences(options),
    cache: entry.cache,
    access: entry.access,
    concurrency: entry.concurrency,
    retry: entry.retry,
    breaker: entry.breaker,
    fairness: entry.fairness,
    restrictsNamespaces,
    fingerprint: JSON.stringify(raw),
  };
}

/** True when every allow rule names namespaces, so no pod outside them can read. */
function checkRestrictsNamespaces(rules: readonly AccessRule[]): boolean {
  const allows = rules.flatMap((r) => ('allow' in r ? [r.allow] : []));
  return allows.length > 0 && allows.every((a) => a.namespaces !== undefined && !a.namespaces.includes('*'));
}

function checkUniqueNames(stores: readonly StoreConfig[], problems: string[]): void {
  const seen = new Set<string>();
  stores.forEach((s) => {
    if (seen.has(s.name)) problems.push(`stores: the name "${s.name}" is used twice`);
    seen.add(s.name);
  });
}

async function readVersionKey(
  inline: string | undefined,
  file: string | undefined,
  baseDir: string,
  problems: string[],
): Promise<Buffer | undefined> {
  if (inline) return Buffer.from(inline, 'utf8');
  if (!file) return undefined;
  try {
    const key = (await readFile(resolve(baseDir, file))).subarray(0);
    if (key.length < 16) problems.push('versionKeyFile: the key must be at least 16 bytes');
    return key;
  } catch (err) {
    problems.push(`versionKeyFile: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    return undefined;
  }
}
