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
    const decision = object.find ? checkPrefix(store.access, identity, object.ref) : checkAccess(store.access, identity, object.ref);
    if (decision.allowed) return [];
    return [
      `${describeObject(object)} (store ${object.store}, ref ${object.ref}): service account ` +
        `${identity.namespace}/${identity.serviceAccount} may not read this ref from store ${object.store} (${decision.reason})`,
    ];
  });
}

/**
 * Whether some ref under `prefix` could be allowed: checked before a find object lists anything.
 * A glob could match a ref starting with the prefix when its literal head and the prefix agree as
 * far as both go. Conservative (it may let a listing run that finds nothing allowed): every found
 * ref is still checked with checkAccess.
 */
export function checkPrefix(rules: readonly AccessRule[], identity: Identity, prefix: string): AccessDecision {
  const allows = rules.filter((r): r is { allow: AccessMatch } => 'allow' in r);
  if (allows.length === 0) return { allowed: true };
  const could = allows.some(
    ({ allow }) =>
      matchesAny(allow.namespaces, identity.namespace, identity) &&
      matchesAny(allow.serviceAccounts, identity.serviceAccount, identity) &&
      (allow.refs === undefined || allow.refs.some((glob) => headAgrees(fillPlaceholders(glob, identity), prefix))),
  );
  return could ? { allowed: true } : { allowed: false, reason: 'no access rule allows any ref under this prefix' };
}

/** Braces and extglobs are off (see compileGlob), so only these characters start a pattern. */
const globChars = /[*?[\\]/;

function headAgrees(glob: string, prefix: string): boolean {
  const at = glob.search(globChars);
  const literal = at < 0 ? glob : glob.slice(0, at);
  // A literal glob matches one ref exactly; a pattern matches refs longer than its head too.
  if (at < 0) return literal.startsWith(prefix);
  return literal.startsWith(prefix) || prefix.startsWith(literal);
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
