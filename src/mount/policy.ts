import picomatch from 'picomatch';
import type { AccessMatch, AccessRule } from '../config/schema.js';
import type { Identity } from '../identity.js';

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

function matches(m: AccessMatch, identity: Identity, ref: string): boolean {
  return (
    matchesAny(m.namespaces, identity.namespace, identity) &&
    matchesAny(m.serviceAccounts, identity.serviceAccount, identity) &&
    matchesAny(m.refs, ref, identity)
  );
}

function matchesAny(globs: readonly string[] | undefined, value: string, identity: Identity): boolean {
  if (globs === undefined) return true;
  return globs.some((glob) => compileGlob(fillPlaceholders(glob, identity))(value));
}

function fillPlaceholders(glob: string, identity: Identity): string {
  // The pod's names are DNS labels, so they carry no glob syntax of their own.
  return glob.replaceAll('{namespace}', identity.namespace).replaceAll('{serviceAccount}', identity.serviceAccount);
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
