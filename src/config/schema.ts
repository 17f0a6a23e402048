import { z } from 'zod';
import { duration } from '../schema.js';

const dnsLabel = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

const accessMatch = z
  .strictObject({
    /** Namespace globs (`team-*`). */
    namespaces: z.array(z.string().min(1)).min(1).optional(),
    /** Service-account name globs. */
    serviceAccounts: z.array(z.string().min(1)).min(1).optional(),
    /** Ref globs; `{namespace}` and `{serviceAccount}` are replaced by the pod's. `*` stays within one path element, `**` crosses them. */
    refs: z.array(z.string().min(1)).min(1).optional(),
  })
  .refine((m) => m.namespaces || m.serviceAccounts || m.refs, {
    message: 'name at least one of namespaces, serviceAccounts, refs',
  });
export type AccessMatch = z.infer<typeof accessMatch>;

export const accessRule = z.union([
  z.strictObject({ allow: accessMatch }),
  z.strictObject({ deny: accessMatch }),
]);
export type AccessRule = z.infer<typeof accessRule>;

export const cacheSettings = z.strictObject({
  /** How long a resolved value is reused for the same identity; 0 disables the cache. */
  ttl: duration.default(60_000),
  maxEntries: z.number().int().positive().default(10_000),
  maxBytes: z.number().int().positive().default(64 * 1024 * 1024),
  /** When the store fails, serve a cached value up to this old instead. Off by default. */
  staleIfError: duration.optional(),
});
export type CacheSettings = z.infer<typeof cacheSettings>;

/** Fields every store has; the rest of a store entry belongs to its backend. */
export const storeCommon = z.object({
  name: z.string().regex(dnsLabel, 'must be a DNS label (lowercase letters, digits, -)'),
  backend: z.string().min(1),
  cache: cacheSettings.default(() => cacheSettings.parse({})),
  access: z.array(accessRule).default([]),
  /** Most calls in flight to this store at once. */
  concurrency: z.number().int().positive().max(1024).default(16),
});
export const storeCommonKeys = Object.keys(storeCommon.shape);

export const providerConfig = z.strictObject({
  /** Store used by objects that name none. */
  defaultStore: z.string().optional(),
  /** Key for HMAC object versions, inline (prefer versionKeyFile). Same on every node keeps versions stable. */
  versionKey: z.string().min(16).optional(),
  versionKeyFile: z.string().min(1).optional(),
  limits: z
    .strictObject({
      maxObjects: z.number().int().positive().max(1000).default(256),
      /** Deadline of a Mount when the driver sends none (old rotation calls). */
      mountTimeout: duration.default(60_000),
    })
    .default(() => ({ maxObjects: 256, mountTimeout: 60_000 })),
  stores: z.array(z.record(z.string(), z.unknown())).min(1, 'define at least one store'),
});
export type ProviderConfigInput = z.infer<typeof providerConfig>;
