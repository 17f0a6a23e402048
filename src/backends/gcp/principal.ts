import { ProviderError } from '../../errors.js';
import type { Identity } from '../../identity.js';
import { fillPlaceholders, matchesPattern } from '../kit/placeholders.js';
import type { GcpObjectSpec, GcpStoreOptions } from './options.js';

/** Who reads a secret: the pod's federated principal, or a Google service account it impersonates. */
export interface Principal {
  /** The service account to impersonate; undefined when the federated token reads directly. */
  readonly serviceAccount?: string;
  /** How messages name the reader (IAM's own member syntax, so it can be pasted into a binding). */
  readonly describe: string;
  /** The pod's federated principal, which logs in and impersonates. */
  readonly federated: string;
  /** The pod token's subject, as STS sees it. */
  readonly subject: string;
}

const emailFormat = /^[a-z0-9-]+@[a-z0-9.-]+\.gserviceaccount\.com$/;

/** The principal an object reads as: the object's service account (if the store allows it), the store's, or the pod's own. */
export function principalFor(opts: GcpStoreOptions, spec: GcpObjectSpec, identity: Identity): Principal {
  const federated = federatedPrincipal(opts.audience, identity);
  const subject = `system:serviceaccount:${identity.namespace}:${identity.serviceAccount}`;
  const serviceAccount = serviceAccountFor(opts, spec, identity);
  return serviceAccount === undefined
    ? { describe: federated, federated, subject }
    : { serviceAccount, describe: `serviceAccount:${serviceAccount}`, federated, subject };
}

function serviceAccountFor(opts: GcpStoreOptions, spec: GcpObjectSpec, identity: Identity): string | undefined {
  const pod = `${identity.namespace}/${identity.serviceAccount}`;
  if (spec.serviceAccount !== undefined) {
    if (opts.serviceAccountPattern === undefined) {
      throw new ProviderError('PermissionDenied', `serviceAccount ${spec.serviceAccount}: this store lets no object choose the service account to impersonate`);
    }
    if (!matchesPattern(opts.serviceAccountPattern, spec.serviceAccount, identity)) {
      throw new ProviderError(
        'PermissionDenied',
        `serviceAccount ${spec.serviceAccount} is not allowed for service account ${pod} by this store (allowed: ${opts.serviceAccountPattern})`,
      );
    }
    return spec.serviceAccount;
  }
  if (opts.serviceAccount === undefined) return undefined;
  const filled = fillPlaceholders(opts.serviceAccount, identity);
  if (!emailFormat.test(filled)) {
    throw new ProviderError('InvalidArgument', `the store's serviceAccount gives "${filled}" for ${pod}, which is not a service account email`);
  }
  return filled;
}

/**
 * The IAM member of a pod's federated identity: the pool's subject principal, or on GKE the
 * identity namespace's member form. Assumes the usual mapping google.subject = assertion.sub.
 */
export function federatedPrincipal(audience: string, identity: Pick<Identity, 'namespace' | 'serviceAccount'>): string {
  const pool = /^\/\/iam\.googleapis\.com\/(projects\/\d+\/locations\/global\/workloadIdentityPools\/[^/]+)\/providers\//.exec(audience);
  if (pool) return `principal://iam.googleapis.com/${pool[1]}/subject/system:serviceaccount:${identity.namespace}:${identity.serviceAccount}`;
  const gke = /^identitynamespace:([^:]+):/.exec(audience);
  return `serviceAccount:${gke?.[1] ?? audience}[${identity.namespace}/${identity.serviceAccount}]`;
}
