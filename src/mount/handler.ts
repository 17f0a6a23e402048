import { setMaxListeners } from 'node:events';
import { createHmac, randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { withDeadline, type CallDeadline } from '../abort.js';
import { ProviderError, toProviderError } from '../errors.js';
import type { FetchContext } from '../backends/types.js';
import type { ProviderConfig } from '../config/load.js';
import type { StateHolder } from '../stores/holder.js';
import type { Metrics } from '../observability/metrics.js';
import { createTokenSource } from '../identity.js';
import { assemble, type MountResult, type RenderedCache } from './assemble.js';
import { createClassParser } from './class.js';
import type { MountInput } from './input.js';
import type { MountObject } from './objects.js';
import { guardOutput, largeResponseBytes } from './output.js';
import { findDenied } from './policy.js';
import { resolveMount } from './find.js';

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
   * bounds it too. Failures are counted, logged and thrown as ProviderErrors.
   */
  mount(input: MountInput, signal: AbortSignal, timeoutMs?: number): Promise<MountResult>;
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

  const fail = (err: unknown, started: number, input?: MountInput, objectCount = 0): ProviderError => {
    const error = toProviderError(err);
    record(deps, 'error', error.code, started);
    deps.logger.warn(
      { ...(input ? describeCall(input) : {}), objects: objectCount, durationMs: elapsed(started), outcome: 'error', code: error.code, error: error.message },
      'mount failed',
    );
    return error;
  };

  return {
    async mount(input, callSignal, timeoutMs = Infinity) {
      const started = performance.now();
      let objectCount = 0;
      let bound: CallDeadline | undefined;
      // Summed over the Mount's store calls (which run in parallel, so it may exceed durationMs).
      const waited = { ms: 0 };
      const lease = deps.states.acquire();
      try {
        const { state } = lease;
        const { objects, templates } = parseClassObjects(input, state);
        objectCount = objects.length;
        authorise(objects, input, state.config);
        bound = withDeadline(callSignal, state.config.limits.mountTimeout);
        const { signal } = bound;
        // Every object of the Mount (and every shared load it joins) listens for the deadline.
        setMaxListeners(0, signal);
        const deadlineAt = deps.now() + Math.min(timeoutMs, state.config.limits.mountTimeout);
        const ctx: FetchContext = {
          identity: input.identity,
          parameters: { role: input.parameters.get('role') },
          secrets: input.secrets,
          signal,
          ...createTokenSource(input.tokens, deps.now),
        };
        const { resolutions, excluded } = await resolveMount(objects, ctx, { stores: state.stores, metrics: deps.metrics, logger: deps.logger, keyHmac, deadlineAt, waited });
        const finds = objects.filter((o) => o.find !== undefined);
        const result = assemble(resolutions, templates, input, state.config.versionKey ?? deps.fallbackVersionKey, rendered, finds);
        const bytes = guardOutput(result.files);
        record(deps, 'ok', 'OK', started, bytes);
        countByStore(resolutions).forEach((n, store) => deps.metrics.objectsServed.inc({ store }, n));
        deps.logger.info(
          {
            ...describeCall(input),
            objects: objectCount,
            files: result.files.length,
            bytes,
            durationMs: elapsed(started),
            queueWaitMs: Math.round(waited.ms * 100) / 100,
            // Found refs the access rules left out: counted, never named.
            ...(excluded !== undefined && { findExcluded: excluded }),
            outcome: 'ok',
          },
          'mount',
        );
        return result;
      } catch (err) {
        throw fail(err, started, input, objectCount);
      } finally {
        bound?.clear();
        lease.release();
      }
    },
    reject(err, started) {
      return fail(err, started);
    },
  };
}

function authorise(objects: readonly MountObject[], input: MountInput, config: ProviderConfig): void {
  const denied = findDenied(objects, input.identity, config)[0];
  if (denied) throw new ProviderError('PermissionDenied', denied);
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

function elapsed(started: number): number {
  return Math.round((performance.now() - started) * 100) / 100;
}
