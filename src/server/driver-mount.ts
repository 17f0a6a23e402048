import type { CallerSignal } from '../abort.js';
import { toProviderError } from '../errors.js';
import type { MountResult } from '../mount/assemble.js';
import type { MountHandler } from '../mount/handler.js';
import type { MountInput } from '../mount/input.js';
import { createRequestCache } from './request-cache.js';
import type { MountRequestMessage } from './request.js';
import { wellFormed } from './status.js';

/**
 * `signal`: the caller's, or a function that makes it when a store call needs it. `deadlineAt`: the
 * caller's deadline (epoch ms, wall clock) when it has one.
 */
export type DriverMount = (request: MountRequestMessage, signal: CallerSignal, deadlineAt?: number) => Promise<MountResult>;

/**
 * A Mount as the driver sends it: its request parsed into a MountInput (a repeated request reuses
 * its parse: request-cache.ts), then the pipeline. A request that cannot be read still counts and
 * logs as a failed Mount. Every error leaves with a message grpc-js can send.
 */
export function createDriverMount(
  handler: MountHandler,
  parse: (request: MountRequestMessage) => MountInput = createRequestCache(),
): DriverMount {
  return async (request, signal, deadlineAt) => {
    const started = performance.now();
    let input;
    try {
      input = parse(request);
    } catch (err) {
      throw wellFormed(handler.reject(err, started));
    }
    const timeoutMs = deadlineAt === undefined || !Number.isFinite(deadlineAt) ? undefined : deadlineAt - Date.now();
    try {
      return await handler.mount(input, signal, timeoutMs);
    } catch (err) {
      throw wellFormed(toProviderError(err));
    }
  };
}
