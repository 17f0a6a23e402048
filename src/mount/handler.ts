import { setMaxListeners } from 'node:events';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { ProviderError, toProviderError } from '../errors.js';
import type { FetchContext, FetchResult } from '../backends/types.js';
import type { ProviderConfig } from '../config/load.js';
import type { ProviderState } from '../stores/stores.js';
import type { Metrics } from '../observability/metrics.js';
import { createTokenSource, type Identity } from '../identity.js';
import { describeObject, parseObjects, type MountObject } from './objects.js';
import { checkFile, guardOutput, hmacVersion, largeResponseBytes } from './output.js';
import { checkAccess } from './policy.js';
import { parseMountRequest, type MountInput, type MountRequestMessage } from './request.js';
import { resolveObjects } from './resolve.js';
import { parseTemplates, renderTemplates, type MountTemplate, type TemplateInput } from './templates.js';
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

export interface MountHandlerDeps {
  readonly state: () => ProviderState;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly now: () => number;
  /** Used when the config has no versionKey; random per process. */
  readonly fallbackVersionKey: Buffer;
}

/** `deadlineAt`: the caller's deadline (epoch ms) when it has one; the config's mountTimeout bounds it too. */
export type MountHandler = (request: MountRequestMessage, signal: AbortSignal, deadlineAt?: number) => Promise<MountResult>;

/** Parameters a class may set; anything else is a typo we report rather than ignore. */
const knownParameters = new Set(['objects', 'role', 'templates']);

/** The whole Mount pipeline: parse, authorise, resolve, transform, guard. */
export function createMountHandler(deps: MountHandlerDeps): MountHandler {
  const identityKey = randomBytes(32);
  const keyHmac = (data: string) => createHmac('sha256', identityKey).update(data).digest('base64url');
  const parseClassObjects = createClassParser(deps.metrics);
  const rendered: RenderedCache = new WeakMap();
  return async (request, callSignal, callDeadline = Infinity) => {
    const started = performance.now();
    let input: MountInput | undefined;
    let objectCount = 0;
    let bound: ReturnType<typeof boundSignal> | undefined;
    try {
      input = parseMountRequest(request);
      const state = deps.state();
      const { objects, templates } = parseClassObjects(input, state);
      objectCount = objects.length;
      authorise(objects, input, state);
      bound = boundSignal(callSignal, state.config.limits.mountTimeout);
      const { signal } = bound;
      const deadlineAt = Math.min(callDeadline, Date.now() + state.config.limits.mountTimeout);
      const ctx: FetchContext = {
        identity: input.identity,
        parameters: { role: input.parameters.get('role') },
        secrets: input.secrets,
        signal,
        ...createTokenSource(input.tokens, deps.now),
      };
      const resolutions = await resolveObjects(objects, ctx, { stores: state.stores, metrics: deps.metrics, logger: deps.logger, keyHmac, deadlineAt });
      const result = assemble(resolutions, templates, input, state.config.versionKey ?? deps.fallbackVersionKey, rendered);
      const bytes = guardOutput(result.files);
      record(deps, 'ok', 'OK', started, bytes);
      countByStore(resolutions).forEach((n, store) => deps.metrics.objectsServed.inc({ store }, n));
      deps.logger.info(
        { ...describeCall(input), objects: objectCount, files: result.files.length, bytes, durationMs: elapsed(started), outcome: 'ok' },
        'mount',
      );
      return result;
    } catch (err) {
      const error = wellFormed(toProviderError(err));
      record(deps, 'error', error.code, started);
      deps.logger.warn(
        { ...(input ? describeCall(input) : {}), objects: objectCount, durationMs: elapsed(started), outcome: 'error', code: error.code, error: error.message },
        'mount failed',
      );
      throw error;
    } finally {
      bound?.release();
    }
  };
}

type ParsedClass = ReturnType<typeof parseClass>;

const maxParsedClasses = 1024;

interface ClassContent {
  readonly objects: MountObject[];
  readonly templates: MountTemplate[];
}

/**
 * Parses a class once per config: rotation Mounts repeat the same parameters every poll, so they
 * reuse the parsed objects and compiled templates instead of parsing again. Keyed by a digest of
 * the parameters.
 */
function createClassParser(metrics: Metrics) {
  const byState = new WeakMap<ProviderState, Map<string, ParsedClass>>();
  return (input: MountInput, state: ProviderState): ClassContent => {
    let parsedClasses = byState.get(state);
    if (!parsedClasses) byState.set(state, (parsedClasses = new Map()));
    const digest = createHash('sha256');
    for (const [k, v] of [...input.parameters].sort(([a], [b]) => (a < b ? -1 : 1))) digest.update(`${k}\0${v}\0`);
    const key = digest.digest('base64url');
    let parsed = parsedClasses.get(key);
    if (parsed) metrics.classParses.inc({ outcome: 'reused' });
    else {
      parsed = parseClass(input.parameters, state.config);
      metrics.classParses.inc({ outcome: 'parsed' });
      if (parsedClasses.size >= maxParsedClasses) parsedClasses.delete(parsedClasses.keys().next().value!);
      parsedClasses.set(key, parsed);
    }
    if (!parsed.ok) throw new ProviderError('InvalidArgument', parsed.problems.join('; '));
    return parsed;
  };
}

/** Checks a class's parameters, objects and templates against the stores, listing every problem. */
export function parseClass(
  parameters: ReadonlyMap<string, string>,
  config: ProviderConfig,
): ({ ok: true } & ClassContent) | { ok: false; problems: string[] } {
  const unknown = [...parameters.keys()].filter((k) => !knownParameters.has(k));
  const problems = unknown.map(
    (k) => `parameters.${k.slice(0, 100)}: unknown parameter (known: ${[...knownParameters].join(', ')})`,
  );
  const stores = new Map(config.stores.map((store) => [store.name, store]));
  const parsed = parseObjects(parameters.get('objects'), {
    stores,
    defaultStore: config.defaultStore,
    maxObjects: config.limits.maxObjects,
  });
  if (!parsed.ok) problems.push(...parsed.problems);
  const templates = parseTemplates(parameters.get('templates'), parsed.ok ? parsed.objects : undefined);
  if (!templates.ok) problems.push(...templates.problems);
  return problems.length > 0 || !parsed.ok || !templates.ok
    ? { ok: false, problems }
    : { ok: true, objects: parsed.objects, templates: templates.templates };
}

function authorise(objects: readonly MountObject[], input: MountInput, state: ProviderState): void {
  const denied = findDenied(objects, input.identity, state.config)[0];
  if (denied) throw new ProviderError('PermissionDenied', denied);
}

/** One message per object the identity may not read under its store's access rules. */
export function findDenied(objects: readonly MountObject[], identity: Identity, config: ProviderConfig): string[] {
  return objects.flatMap((object) => {
    const store = config.stores.find((s) => s.name === object.store)!;
    const decision = checkAccess(store.access, identity, object.ref);
    if (decision.allowed) return [];
    return [
      `${describeObject(object)} (store ${object.store}, ref ${object.ref}): service account ` +
        `${identity.namespace}/${identity.serviceAccount} may not read this ref from store ${object.store} (${decision.reason})`,
    ];
  });
}

/**
 * Files and version of each object, rendered once per cached value: a cache hit then costs no
 * transform and no HMAC. Keyed weakly by the store's result, so nothing outlives the value cache
 * (with the cache off, nothing is kept at all).
 */
type RenderedCache = WeakMap<FetchResult, Map<MountObject, Rendered>>;

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

function assemble(
  resolutions: Awaited<ReturnType<typeof resolveObjects>>,
  templates: readonly MountTemplate[],
  input: MountInput,
  versionKey: Buffer,
  cache: RenderedCache,
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
  for (const { template, file, version } of renderTemplates(templates, inputs, skipped, { defaultMode: input.defaultMode, versionKey })) {
    objectVersions.push({ id: template.name, version });
    files.push(file);
    sources.set(file.path, { ref: `templates[${template.index}]`, version });
  }
  // The driver fails a Mount without versions; all objects may have been optional and missing.
  if (objectVersions.length === 0) objectVersions.push({ id: 'usp/no-objects', version: 'empty' });
  return { files, objectVersions, sources };
}

/**
 * The Mount's signal: the caller's cancellation or our own timeout, whichever comes first. A plain
 * timer cleared on completion, since AbortSignal.timeout keeps a timer per Mount alive until it fires.
 */
function boundSignal(callSignal: AbortSignal, timeoutMs: number) {
  const controller = new AbortController();
  // Every object of the Mount (and every shared load it joins) listens for the deadline.
  setMaxListeners(0, controller.signal);
  const abort = () => controller.abort();
  const timer = setTimeout(abort, timeoutMs);
  if (callSignal.aborted) abort();
  else callSignal.addEventListener('abort', abort, { once: true });
  return {
    signal: controller.signal,
    release() {
      clearTimeout(timer);
      callSignal.removeEventListener('abort', abort);
    },
  };
}

function countByStore(resolutions: readonly { object: MountObject }[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const { object } of resolutions) counts.set(object.store, (counts.get(object.store) ?? 0) + 1);
  return counts;
}

function describeCall(input: MountInput) {
  return {
    pod: input.identity.podName,
    namespace: input.identity.namespace,
    serviceAccount: input.identity.serviceAccount,
    class: input.className,
  };
}

function record(deps: MountHandlerDeps, outcome: 'ok' | 'error', code: string, started: number, bytes?: number): void {
  deps.metrics.mounts.inc({ outcome, code });
  deps.metrics.mountDuration.observe({ outcome }, elapsed(started) / 1000);
  if (bytes !== undefined) {
    deps.metrics.responseBytes.observe(bytes);
    if (bytes > largeResponseBytes) deps.metrics.largeResponses.inc();
  }
}

/**
 * Messages quote class text (names, store names, JMESPath errors), which may hold unpaired UTF-16
 * surrogates. grpc-js sends the message through encodeURI, which throws on them, so the caller got
 * no status at all. Replace them with U+FFFD. Found by fuzzing.
 */
function wellFormed(error: ProviderError): ProviderError {
  const message = error.message.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');
  // Idempotent, and keeps every other field (code, retry hints) of the error as it is.
  if (message !== error.message) error.message = message;
  return error;
}

function elapsed(started: number): number {
  return Math.round((performance.now() - started) * 100) / 100;
}
