import picomatch from 'picomatch';
import { fillPlaceholders } from '../backends/kit/placeholders.js';
import type { ProviderConfig } from '../config/load.js';
import type { AccessMatch, AccessRule } from '../config/schema.js';
import type { Identity } from '../identity.js';
import { describeObject, type MountObject } from './objects.js';

export type AccessDecision = { allowed: true } | { allowed: false; reason: string };

/**
 * Decides whether `identity` may read `ref` through a store with these rules.
 * No rules: allowed. A matching deny: refused. With allow rules, one must match.
 */
export function checkAccess(rules: readonly AccessRule[], identity: Identity, ref: string): AccessDecision {
  if (rules.length === 0) return { allowed: true };
  const denied = rules.findIndex((r) => 'deny' in r && matches(r.deny, identity, ref));
  if (denied >= 0) return { allowed: false, reason: `denied by access[${denied}]` };
  const allows = rules.filter((r): r is { allow: AccessMatch } => 'allow' in r);
  if (allows.length === 0 || allows.some((r) => matches(r.allow, identity, ref))) return { allowed: true };
  return { allowed: false, reason: 'no access rule allows it' };
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

function matches(m: AccessMatch, identity: Identity, ref: string): boolean {
  return (
    matchesAny(m.namespaces, identity.namespace, identity) &&
    matchesAny(m.serviceAccounts, identity.serviceAccount, identity) &&
    matchesAny(m.refs, ref, identity)
  );
}

function matchesAny(globs: readonly string[] | undefined, value: string, identity: Identity): boolean {
  if (globs === undefined) return true;
  // The pod's names are DNS labels, so filling them in adds no glob syntax.
  return globs.some((glob) => compileGlob(fillPlaceholders(glob, identity))(value));
}

const compiled = new Map<string, (value: string) => boolean>();

function compileGlob(glob: string): (value: string) => boolean {
  let matcher = compiled.get(glob);
  if (!matcher) {
    matcher = picomatch(glob, { dot: true, nobrace: true, noextglob: true });
    if (compiled.size > 10_000) compiled.clear();
    compiled.set(glob, matcher);
  }
  return matcher;
}
