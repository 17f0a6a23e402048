import type { Identity, PodToken } from '../identity.js';
import type { Secret } from '../secret.js';

/** What the Mount pipeline needs to know about one Mount, however it was asked for. */
export interface MountInput {
  readonly identity: Identity;
  readonly className?: string;
  /** Class parameters (volume attributes that are not the driver's own keys). */
  readonly parameters: ReadonlyMap<string, string>;
  readonly tokens: ReadonlyMap<string, PodToken>;
  readonly secrets: ReadonlyMap<string, Secret<string>>;
  /** Default file mode, 0..0o777. */
  readonly defaultMode: number;
}

const dnsLabel = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const dnsSubdomain = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/**
 * The pod's names feed access rules, placeholders and store logins, so whoever builds a MountInput
 * checks them with these: a namespace is a DNS label, a service account a DNS subdomain.
 */
export const podNameRules = { namespace: dnsLabel, serviceAccount: dnsSubdomain } as const;
