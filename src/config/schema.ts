import { z } from 'zod';
import { backendDefinitions, backendKinds } from '../backends/registry.js';
import type { BackendDefinition } from '../backends/types.js';
import { duration } from '../schema.js';

const dnsLabel = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

const accessMatch = z
  .strictObject({
    namespaces: z.array(z.string().min(1)).min(1).optional().describe('Namespace globs of the pod (`shop`, `team-*`).'),
    serviceAccounts: z.array(z.string().min(1)).min(1).optional().describe('Service-account name globs of the pod.'),
    refs: z
      .array(z.string().min(1))
      .min(1)
      .optional()
      .describe(
        'Ref globs; `{namespace}` and `{serviceAccount}` are replaced by the pod\'s. `*` stays within one path element, `**` crosses them.',
      ),
  })
  .refine((m) => m.namespaces || m.serviceAccounts || m.refs, {
    message: 'name at least one of namespaces, serviceAccounts, refs',
  });
export type AccessMatch = z.infer<typeof accessMatch>;

export const accessRule = z.union([
  z.strictObject({ allow: accessMatch.describe('Allows the Mount when every field it names matches; with allow rules, one must match.') }),
  z.strictObject({ deny: accessMatch.describe('Refuses the object when every field it names matches; a matching deny always wins.') }),
]);
export type AccessRule = z.infer<typeof accessRule>;

export const cacheSettings = z.strictObject({
  ttl: duration.default(60_000).describe('How long a resolved value is reused for the same identity; 0 disables the cache.'),
  maxEntries: z.number().int().positive().default(10_000).describe('Most values the store\'s cache holds; the least recently used go first.'),
  maxBytes: z
    .number()
    .int()
    .positive()
    .default(64 * 1024 * 1024)
    .describe('Most bytes of values the store\'s cache holds.'),
  staleIfError: duration
    .optional()
    .describe('When the store fails, serve a cached value up to this old instead. Off when absent.'),
});
export type CacheSettings = z.infer<typeof cacheSettings>;

export const retrySettings = z.strictObject({
  attempts: z.number().int().min(1).max(10).default(3).describe('Calls per object at most, the first included; only transient failures (outages, throttling, resets, store timeouts) are retried.'),
  baseDelay: duration.default(100).describe("First backoff; doubles per attempt up to maxDelay, with jitter. A store's Retry-After wins."),
  maxDelay: duration.default(2_000).describe('Longest backoff between two attempts.'),
});
export type RetrySettings = z.infer<typeof retrySettings>;

export const breakerSettings = z.strictObject({
  failures: z.number().int().min(1).default(5).describe('Consecutive failed calls (outage, timeout) that open the circuit.'),
  openFor: duration.default(30_000).describe('How long an open circuit fails fast before one probe call may try the store again.'),
});
export type BreakerSettings = z.infer<typeof breakerSettings>;

export const fairnessSettings = z.strictObject({
  maxShare: z
    .number()
    .gt(0)
    .max(1)
    .default(0.75)
    .describe(
      "Most of the store's concurrency slots one namespace holds while another namespace's calls wait (at least one slot). Free slots go to waiting namespaces in turn, then to their service accounts; a namespace alone gets every slot. 1 leaves the turns without a cap.",
    ),
});
export type FairnessSettings = z.infer<typeof fairnessSettings>;

/** Fields every store has, whatever its backend. */
export const storeCommon = z.object({
  name: z
    .string()
    .regex(dnsLabel, 'must be a DNS label (lowercase letters, digits, -)')
    .describe('The store\'s name (a DNS label); objects refer to it with `store:`.'),
  cache: cacheSettings.default(() => cacheSettings.parse({})).describe('Value cache of this store.'),
  access: z
    .array(accessRule)
    .default([])
    .describe('Access rules, checked before the store is called. No rules: everything is allowed.'),
  concurrency: z.number().int().positive().max(1024).default(16).describe('Most calls in flight to this store at once.'),
  retry: retrySettings.default(() => retrySettings.parse({})).describe('Retries of transient store failures, bounded by the Mount deadline.'),
  breaker: breakerSettings.default(() => breakerSettings.parse({})).describe('Circuit breaker: fail fast while the store keeps failing.'),
  fairness: fairnessSettings
    .default(() => fairnessSettings.parse({}))
    .describe('How waiting calls share the concurrency slots between namespaces.'),
});

/** One store entry of a backend kind: the common fields, `backend`, and that kind's options. */
function storeEntryOf(definition: BackendDefinition) {
  return z.strictObject({
    ...storeCommon.shape,
    backend: z.literal(definition.kind).describe(definition.docs.summary),
    ...definition.options.shape,
  });
}

/** A store entry: one strict object per backend kind in the registry, told apart by `backend`. */
export const storeEntry = z.discriminatedUnion(
  'backend',
  backendDefinitions.map(storeEntryOf) as unknown as [ReturnType<typeof storeEntryOf>, ...ReturnType<typeof storeEntryOf>[]],
);
export type StoreEntry = z.infer<typeof storeEntry>;

export const providerConfig = z.strictObject({
  defaultStore: z.string().optional().describe('Store used by objects that name none.'),
  versionKey: z
    .string()
    .min(16)
    .optional()
    .describe(
      'Key for HMAC object versions, inline (prefer versionKeyFile). The same key on every node keeps versions stable; without one a random per-process key is used.',
    ),
  versionKeyFile: z
    .string()
    .min(1)
    .optional()
    .describe('File holding the HMAC key for object versions (e.g. from a Secret); relative to the config file.'),
  limits: z
    .strictObject({
      maxObjects: z.number().int().positive().max(1000).default(256).describe('Most objects one class may list.'),
      mountTimeout: duration
        .default(60_000)
        .describe('Deadline of a Mount, and the only one when the driver sends none (old rotation calls).'),
    })
    .default(() => ({ maxObjects: 256, mountTimeout: 60_000 }))
    .describe('Limits of one Mount.'),
  stores: z
    .array(storeEntry)
    .min(1, 'define at least one store')
    .describe(`The stores: common fields, \`backend\` (${backendKinds().join(', ')}) and that backend's options.`),
});
export type ProviderConfigInput = z.infer<typeof providerConfig>;
