import { z } from 'zod';
import type { Identity } from '../../identity.js';

/** The names a store option may take from the pod: `{namespace}` and `{serviceAccount}`. */
const placeholder = /\{([^}]*)\}/g;
const known = new Set(['namespace', 'serviceAccount']);

/** A string option that may hold `{namespace}` and `{serviceAccount}` and no other placeholder. */
export const placeholderTemplate = z
  .string()
  .min(1)
  .refine((t) => [...t.matchAll(placeholder)].every((m) => known.has(m[1]!)), {
    message: 'only {namespace} and {serviceAccount} may appear as placeholders',
  });

/** Fills `{namespace}` and `{serviceAccount}` with the pod's. Pod names are DNS labels: no glob or regex syntax. */
export function fillPlaceholders(template: string, identity: Pick<Identity, 'namespace' | 'serviceAccount'>): string {
  return template.replaceAll('{namespace}', identity.namespace).replaceAll('{serviceAccount}', identity.serviceAccount);
}

/** Whether `value` matches `pattern` once filled, where `*` matches any run of characters (role ARNs, client ids). */
export function matchesPattern(pattern: string, value: string, identity: Pick<Identity, 'namespace' | 'serviceAccount'>): boolean {
  const source = fillPlaceholders(pattern, identity)
    .split('*')
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  return new RegExp(`^${source}$`).test(value);
}
