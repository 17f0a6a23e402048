import { createHash } from 'node:crypto';
import { ProviderError } from '../../errors.js';
import type { FetchContext } from '../types.js';
import { Secret } from '../../secret.js';
import { BoundedMap } from '../kit/bounded-map.js';
import { matchesPattern } from '../kit/placeholders.js';
import { createSingleFlight } from '../kit/single-flight.js';
import { agentUrlOf, type AwsStoreOptions, type IrsaAuth, type PodIdentityAuth } from './options.js';

export interface AwsCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
  readonly expiration?: Date;
}

export interface CredentialEntry {
  readonly credentials: Secret<AwsCredentials>;
  readonly obtainedAt: number;
  /** Undefined for static keys, which do not expire on their own. */
  readonly expiresAt?: number;
}

export interface HeldCredentials {
  readonly entry: CredentialEntry;
  readonly cached: boolean;
}

/** Who a fetch reads as. */
export interface AwsCaller {
  /** Cache key of the identity; holds no secret material. */
  readonly key: string;
  /** How messages name the identity, e.g. `role arn:... (session shop.app)`. */
  readonly describe: string;
  /** Strings that must never appear in messages. */
  readonly scrub: readonly string[];
  obtain(): Promise<HeldCredentials>;
  evict(entry: CredentialEntry): void;
}

/** How a store turns a pod token into AWS credentials (the SDK's providers, see sources.ts). */
export interface CredentialSources {
  assumeRole(roleArn: string, sessionName: string, token: string, describe: string): Promise<AwsCredentials>;
  fromAgent(agentUrl: string, token: string, describe: string): Promise<AwsCredentials>;
}

export interface Callers {
  callerFor(ctx: FetchContext): AwsCaller;
  clear(): void;
}

const maxCacheEntries = 10_000;
const sessionNameLimit = 64;

/**
 * Credentials of one store, cached per identity (namespace, service account, role or agent) until
 * shortly before they expire; concurrent Mounts of one identity share one fetch. The SDK's own
 * providers cache one identity per provider: a node serves many service accounts, so this cache
 * keys by identity and never hands one pod's credentials to another.
 */
export function createCallers(opts: AwsStoreOptions, sources: CredentialSources, now: () => number): Callers {
  const isUsable = (entry: CredentialEntry) => {
    if (entry.expiresAt === undefined) return true;
    // Usable until shortly before expiry, so a signed request never races it.
    const margin = Math.min((entry.expiresAt - entry.obtainedAt) / 4, 5 * 60_000);
    return now() < entry.expiresAt - margin;
  };
  const cache = new BoundedMap<string, CredentialEntry>(maxCacheEntries, (e) => !isUsable(e));
  const fetches = createSingleFlight<CredentialEntry>();
  const entryFor = (credentials: AwsCredentials): CredentialEntry => ({
    credentials: new Secret(credentials),
    obtainedAt: now(),
    ...(credentials.expiration ? { expiresAt: credentials.expiration.getTime() } : {}),
  });

  const obtain = async (key: string, fetchCredentials: () => Promise<AwsCredentials>): Promise<HeldCredentials> => {
    const cached = cache.get(key);
    if (cached && isUsable(cached)) return { entry: cached, cached: true };
    cache.delete(key);
    const entry = await fetches.run(key, async () => {
      const fresh = entryFor(await fetchCredentials());
      cache.set(key, fresh);
      return fresh;
    });
    return { entry, cached: false };
  };

  const cachedCaller = (key: string, describe: string, token: string, fetchCredentials: () => Promise<AwsCredentials>): AwsCaller => ({
    key,
    describe,
    scrub: [token],
    obtain: () => obtain(key, fetchCredentials),
    evict: (entry) => {
      if (cache.get(key) === entry) cache.delete(key);
    },
  });

  const irsaCaller = (auth: IrsaAuth, ctx: FetchContext): AwsCaller => {
    const roleArn = resolveRoleArn(auth, ctx);
    // Asked even when credentials are cached: a Mount must carry the pod's own token to use them.
    const token = ctx.tokenFor(auth.audience);
    const { namespace, serviceAccount } = ctx.identity;
    const sessionName = sessionNameFor(namespace, serviceAccount);
    const describe = `role ${roleArn} (session ${sessionName})`;
    return cachedCaller(`${namespace}\u0000${serviceAccount}\u0000irsa:${roleArn}`, describe, token, () =>
      sources.assumeRole(roleArn, sessionName, token, describe),
    );
  };

  const podIdentityCaller = (auth: PodIdentityAuth, ctx: FetchContext): AwsCaller => {
    const agentUrl = agentUrlOf(auth);
    const token = ctx.tokenFor(auth.audience);
    const { namespace, serviceAccount } = ctx.identity;
    const describe = `the EKS Pod Identity association of service account ${namespace}/${serviceAccount}`;
    return cachedCaller(`${namespace}\u0000${serviceAccount}\u0000pod-identity:${agentUrl}`, describe, token, () =>
      sources.fromAgent(agentUrl, token, describe),
    );
  };

  const staticCaller = (ctx: FetchContext): AwsCaller => {
    if (opts.auth.method !== 'static' || !opts.auth.allowFromSecret) {
      throw new ProviderError('PermissionDenied', 'this store does not accept AWS access keys from nodePublishSecretRef');
    }
    const accessKeyId = ctx.secrets.get('awsAccessKeyId')?.reveal();
    const secretAccessKey = ctx.secrets.get('awsSecretAccessKey')?.reveal();
    const sessionToken = ctx.secrets.get('awsSessionToken')?.reveal();
    if (!accessKeyId || !secretAccessKey) {
      throw new ProviderError(
        'InvalidArgument',
        'this store reads AWS access keys from nodePublishSecretRef keys "awsAccessKeyId" and "awsSecretAccessKey", which the Mount did not carry',
      );
    }
    const credentials: AwsCredentials = { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) };
    const entry = entryFor(credentials);
    const { namespace, serviceAccount } = ctx.identity;
    return {
      key: `${namespace}\u0000${serviceAccount}\u0000static:${fingerprintOf(credentials)}`,
      describe: `access key ${accessKeyId} from nodePublishSecretRef`,
      scrub: [secretAccessKey, ...(sessionToken ? [sessionToken] : [])],
      obtain: async () => ({ entry, cached: false }),
      evict: () => {},
    };
  };

  return {
    callerFor(ctx) {
      const auth = opts.auth;
      if (auth.method === 'irsa') return irsaCaller(auth, ctx);
      if (auth.method === 'pod-identity') return podIdentityCaller(auth, ctx);
      return staticCaller(ctx);
    },
    clear: () => cache.clear(),
  };
}

const roleArnFormat = /^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/;

function resolveRoleArn(auth: IrsaAuth, ctx: FetchContext): string {
  const roleArn = ctx.parameters.role;
  if (roleArn === undefined || roleArn === '') {
    throw new ProviderError('InvalidArgument', 'no IAM role: set the class parameter "role" to the role ARN to assume');
  }
  if (!roleArnFormat.test(roleArn)) {
    throw new ProviderError('InvalidArgument', `role "${roleArn}" is not an IAM role ARN like arn:aws:iam::123456789012:role/name`);
  }
  if (auth.roleArnPattern !== undefined && !matchesPattern(auth.roleArnPattern, roleArn, ctx.identity)) {
    throw new ProviderError(
      'PermissionDenied',
      `role ${roleArn} is not allowed for service account ${ctx.identity.namespace}/${ctx.identity.serviceAccount} by this store (allowed: ${auth.roleArnPattern})`,
    );
  }
  return roleArn;
}

/** `namespace.serviceAccount` (namespaces have no dots), shortened with a hash past STS's 64 characters. */
export function sessionNameFor(namespace: string, serviceAccount: string): string {
  const name = `${namespace}.${serviceAccount}`.replace(/[^\w+=,.@-]/g, '-');
  if (name.length <= sessionNameLimit) return name;
  const digest = createHash('sha256').update(name).digest('hex').slice(0, 8);
  return `${name.slice(0, sessionNameLimit - 9)}-${digest}`;
}

/** Tells credentials apart without keeping them: SDK clients are replaced when it changes. */
export function fingerprintOf(credentials: AwsCredentials): string {
  return createHash('sha256')
    .update(`${credentials.accessKeyId}\u0000${credentials.secretAccessKey}\u0000${credentials.sessionToken ?? ''}`)
    .digest('hex')
    .slice(0, 32);
}
