import { createHmac, randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { lazyDeadline, type CallDeadline, type CallerSignal } from '../abort.js';
import { ProviderError, toProviderError } from '../errors.js';
import type { FetchContext } from '../backends/types.js';
import type { ProviderConfig } from '../config/load.js';
import type { StateHolder } from '../stores/holder.js';
import type { Metrics } from '../observability/metrics.js';
import { flatLineLogger } from '../observability/log.js';
import { createTokenSource, type Identity } from '../identity.js';
import { assemble, type MountResult, type RenderedCache } from './assemble.js';
import { createClassParser } from './class.js';
import type { MountInput } from './input.js';
import type { MountObject } from './objects.js';
import type { Resolution } from './resolve.js';
import type { MountTemplate } from './templates.js';
import { createVolumeMemo, type Volume } from './volume-memo.js';
import { guardOutput, largeResponseBytes } from './output.js';
import { findDenied } from './policy.js';
import { findObjects, resolveMount } from './find.js';

export interface MountHandlerDeps {
  /** The provider's stores; each Mount holds the state it started with until it ends. */
  readonly states: Pick<StateHolder, 'acquire'>;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly now: () => number;
  /** Used when the config has no versionKey; random per process. */
  readonly fallbackVersionKey: Buffer;
}

export interface MountHandler {
  /**
   * The whole Mount pipeline for one pod: parse the class, authorise, resolve, transform, guard.
   * `timeoutMs`: what is left of the caller's deadline when it has one; the config's mountTimeout
   * bounds it too. Failures are counted, logged and thrown as ProviderErrors. `signal` may be a
   * function that makes it: it is called only if a store call must be made.
   */
  mount(input: MountInput, signal: CallerSignal, timeoutMs?: number): Promise<MountResult>;
  /**
   * Counts and logs a Mount that failed before it had an input (a request that could not be
   * read) like any other failed Mount, and returns its error. `started`: performance.now() when
   * the request arrived.
   */
  reject(err: unknown, started: number): ProviderError;
}

export function createMountHandler(deps: MountHandlerDeps): MountHandler {
  const identityKey = randomBytes(32);
  const keyHmac = (data: string) => createHmac('sha256', identityKey).update(data).digest('base64url');
  const parseClassObjects = createClassParser(deps.metrics);
  const rendered: RenderedCache = new WeakMap();
  const volumes = createVolumeMemo();
  /** The checked volume of these resolutions: the one made last time from the same values, or a new one. */
  const volumeOf = (objects: readonly MountObject[], templates: readonly MountTemplate[], input: MountInput, versionKey: Buffer, resolutions: readonly Resolution[]): Volume => {
    const finds = findObjects(objects);
    const known = finds.length === 0 ? volumes.get(objects, input.defaultMode, versionKey, resolutions) : undefined;
    if (known) return known;
    const result = assemble(resolutions, templates, input, versionKey, rendered, finds);
    const volume = { result, bytes: guardOutput(result.files), served: countByStore(resolutions) };
    if (finds.length === 0) volumes.set(objects, input.defaultMode, versionKey, resolutions, volume);
    return volume;
  };

  // Mount lines hold only strings and numbers: no need for the wildcard redaction (log.ts).
  const log = flatLineLogger(deps.logger);

  const fail = (err: unknown, started: number, input?: MountInput, objectCount = 0): ProviderError => {
    const error = toProviderError(err);
    record(deps, 'error', error.code, started);
    const identity = input?.identity;
    log.warn(
      {
        pod: identity?.podName,
        namespace: identity?.namespace,
        serviceAccount: identity?.serviceAccount,
        class: input?.className,
        objects: objectCount,
        durationMs: elapsed(started),
        outcome: 'error',
        code: error.code,
        error: error.message,
      },
      'mount failed',
    );
    return error;
  };

  return {
    async mount(input, callSignal, timeoutMs = Infinity) {
      const started = performance.now();
      let objectCount = 0;
      let deadline: CallDeadline | undefined;
      // Summed over the Mount's store calls (which run in parallel, so it may exceed durationMs).
      const waited = { ms: 0 };
      const lease = deps.states.acquire();
      try {
        const { state } = lease;
        const { objects, templates } = parseClassObjects(input, state);
        objectCount = objects.length;
        authorise(objects, input, state.config);
        // The Mount's deadline runs from here, but its signal and timer are made only once a store
        // call is needed: a Mount served from the cache has nothing to abort.
        const bound = (deadline = lazyDeadline(callSignal, state.config.limits.mountTimeout));
        const deadlineAt = deps.now() + Math.min(timeoutMs, state.config.limits.mountTimeout);
        const ctx: FetchContext = {
          identity: input.identity,
          parameters: { role: input.parameters.get('role') },
          secrets: input.secrets,
          get signal() {
            return bound.signal;
          },
          tokenFor: createTokenSource(input.tokens, deps.now).tokenFor,
        };
        const { resolutions, excluded } = await resolveMount(objects, ctx, { stores: state.stores, metrics: deps.metrics, logger: deps.logger, keyHmac, deadlineAt, waited });
        const { result, bytes, served } = volumeOf(objects, templates, input, state.config.versionKey ?? deps.fallbackVersionKey, resolutions);
        record(deps, 'ok', 'OK', started, bytes);
        served.forEach((n, store) => deps.metrics.objectsServed.inc({ store }, n));
        const { identity } = input;
        log.info(
          {
            pod: identity.podName,
            namespace: identity.namespace,
            serviceAccount: identity.serviceAccount,
            class: input.className,
            objects: objectCount,
            files: result.files.length,
            bytes,
            durationMs: elapsed(started),
            queueWaitMs: Math.round(waited.ms * 100) / 100,
            // Found refs the access rules left out: counted, never named.
            findExcluded: excluded,
            outcome: 'ok',
          },
          'mount',
        );
        return result;
      } catch (err) {
        throw fail(err, started, input, objectCount);
      } finally {
        deadline?.clear();
        lease.release();
      }
    },
    reject(err, started) {
      return fail(err, started);
    },
  };
}

/**
 * The first denial per parsed class (its objects, parsed for one config) and pod identity: the
 * access rules read only those, and a reused MountInput (server/request-cache.ts) brings the same
 * identity object, so a rotation Mount matches no glob again.
 */
const decisions = new WeakMap<readonly MountObject[], WeakMap<Identity, string | false>>();

function authorise(objects: readonly MountObject[], input: MountInput, config: ProviderConfig): void {
  let byIdentity = decisions.get(objects);
  if (!byIdentity) decisions.set(objects, (byIdentity = new WeakMap()));
  let denied = byIdentity.get(input.identity);
  if (denied === undefined) byIdentity.set(input.identity, (denied = findDenied(objects, input.identity, config)[0] ?? false));
  if (denied) throw new ProviderError('PermissionDenied', denied);
}

function countByStore(resolutions: readonly { object: MountObject }[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const { object } of resolutions) counts.set(object.store, (counts.get(object.store) ?? 0) + 1);
  return counts;
}

function record(deps: MountHandlerDeps, outcome: 'ok' | 'error', code: string, started: number, bytes?: number): void {
  deps.metrics.mounts.inc({ outcome, code });
  deps.metrics.mountDuration.observe({ outcome }, elapsed(started) / 1000);
  if (bytes !== undefined) {
    deps.metrics.responseBytes.observe(bytes);
    if (bytes > largeResponseBytes) deps.metrics.largeResponses.inc();
  }
}

function elapsed(started: number): number {
  return Math.round((performance.now() - started) * 100) / 100;
}
