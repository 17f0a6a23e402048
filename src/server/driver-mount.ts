import { toProviderError } from '../errors.js';
import type { MountResult } from '../mount/assemble.js';
import type { MountHandler } from '../mount/handler.js';
import { parseMountRequest, type MountRequestMessage } from './request.js';
import { wellFormed } from './status.js';

/** `deadlineAt`: the caller's deadline (epoch ms, wall clock) when it has one. */
export type DriverMount = (request: MountRequestMessage, signal: AbortSignal, deadlineAt?: number) => Promise<MountResult>;

/**
 * A Mount as the driver sends it: its request parsed into a MountInput, then the pipeline. A
 * request that cannot be read still counts and logs as a failed Mount. Every error leaves with a
 * message grpc-js can send.
 */
export function createDriverMount(handler: MountHandler): DriverMount {
  return async (request, signal, deadlineAt) => {
    const started = performance.now();
    let input;
    try {
      input = parseMountRequest(request);
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
