import { createHash } from 'node:crypto';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { pipeline, Readable, Transform } from 'node:stream';
import type * as Sts from '@aws-sdk/client-sts';
import type { Logger } from 'pino';
import { z } from 'zod';
import { ProviderError, type ErrorCode } from '../errors.js';
import { duration } from '../schema.js';
import { Secret } from '../secret.js';
import type { BackendDefinition, BackendDocs, FetchContext, FetchRequest, FetchResult, StoreBackend, StoreSettings } from './types.js';

// ---------------------------------------------------------------------------------------------
// Store options shared by aws-secrets-manager and aws-parameter-store

const region = z.string().regex(/^[a-z]{2,}(-[a-z0-9]+)*-\d+$/, 'must be an AWS region like "eu-west-1"');
const httpUrl = z.url({ protocol: /^https?$/, message: 'must be an http(s) URL' });

const auth = z.discriminatedUnion('method', [
  z.strictObject({
    method: z.literal('irsa').describe('IRSA: AssumeRoleWithWebIdentity with the pod\'s token and the class\'s `role`.'),
    audience: z
      .string()
      .min(1)
      .default('sts.amazonaws.com')
      .describe('Audience of the pod token presented to STS (the IAM OIDC provider\'s client id).'),
    roleArnPattern: z
      .string()
      .min(1)
      .optional()
      .describe(
        'Role ARNs a class may ask for, e.g. `arn:aws:iam::123456789012:role/{namespace}-*`; `{namespace}` and `{serviceAccount}` are the pod\'s, `*` matches anything.',
      ),
    stsEndpoint: httpUrl.optional().describe('STS endpoint; the store region\'s regional endpoint when absent.'),
  }),
  z.strictObject({
    method: z.literal('pod-identity').describe('EKS Pod Identity: the node\'s agent exchanges the pod\'s token for credentials.'),
    audience: z
      .string()
      .min(1)
      .default('pods.eks.amazonaws.com')
      .describe('Audience of the pod token presented to the Pod Identity agent.'),
    agentUrl: httpUrl.optional().describe('The Pod Identity agent\'s credentials URL (default `http://169.254.170.23/v1/credentials`).'),
    ipv6: z.boolean().default(false).describe('Use the agent\'s IPv6 address (IPv6-only clusters).'),
  }),
  z.strictObject({
    method: z.literal('static').describe('Access keys from the volume\'s nodePublishSecretRef (discouraged).'),
    allowFromSecret: z
      .boolean()
      .default(false)
      .describe('Must be true for static auth: keys come from nodePublishSecretRef (awsAccessKeyId, awsSecretAccessKey, awsSessionToken).'),
  }),
]);

export const awsStoreOptions = z.strictObject({
  region: region.describe('Region of the service.'),
  endpoint: httpUrl
    .optional()
    .describe('Service endpoint (VPC interface or FIPS endpoints); the SDK\'s regional endpoint when absent.'),
  failoverRegion: region
    .optional()
    .describe('Region read when the primary answers 5xx, throttles, sends a malformed answer or cannot be reached (not on 4xx).'),
  failoverEndpoint: httpUrl.optional().describe('Service endpoint in failoverRegion (needs failoverRegion).'),
  auth: auth.describe('How the store obtains AWS credentials for the pod.'),
  timeout: duration
    .refine((ms) => ms > 0, 'must be above zero')
    .default(10_000)
    .describe('Budget of one call to AWS, SDK retries included.'),
});

export type AwsStoreOptions = z.infer<typeof awsStoreOptions>;
type AuthOptions = AwsStoreOptions['auth'];
type IrsaAuth = Extract<AuthOptions, { method: 'irsa' }>;
type PodIdentityAuth = Extract<AuthOptions, { method: 'pod-identity' }>;

const podIdentityAgentUrl = 'http://169.254.170.23/v1/credentials';
const podIdentityAgentUrlIpv6 = 'http://[fd00:ec2::23]/v1/credentials';

export function checkAwsStore({ options: opts }: StoreSettings<AwsStoreOptions>): string[] {
  const problems: string[] = [];
  if (opts.auth.method === 'static' && !opts.auth.allowFromSecret) {
    problems.push('auth.allowFromSecret: static auth reads access keys from nodePublishSecretRef; set it to true to allow that');
  }
  if (opts.auth.method === 'pod-identity' && opts.auth.ipv6 && opts.auth.agentUrl !== undefined) {
    problems.push('auth.ipv6: set either agentUrl or ipv6, not both');
  }
  if (opts.failoverEndpoint !== undefined && opts.failoverRegion === undefined) {
    problems.push('failoverEndpoint: needs failoverRegion');
  }
  if (opts.failoverRegion !== undefined && opts.failoverRegion === opts.region && opts.failoverEndpoint === undefined) {
    problems.push('failoverRegion: must differ from region');
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// Credentials and callers

export interface AwsCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
  readonly expiration?: Date;
}

interface CredentialEntry {
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

export interface AwsTarget {
  readonly region: string;
  readonly endpoint?: string;
}

/** What the SDK clients of a store share: region, endpoint, credentials and the HTTP pool. */
export interface AwsClientConfig {
  region: string;
  endpoint?: string;
  credentials: AwsCredentials;
  maxAttempts: number;
  retryMode: string;
  requestHandler: Record<string, unknown>;
}

/** Attempts per call: throttling is retried with backoff, bounded by the call's timeout. */
const maxAttempts = 4;
const maxCacheEntries = 10_000;
/** SDK clients are heavier than credentials; identities beyond this rebuild theirs when next used. */
const maxClients = 1_000;
const sessionNameLimit = 64;

export interface AwsAccessDeps {
  readonly logger: Logger;
  readonly now: () => number;
}

/**
 * Credentials, SDK clients and failover of one AWS store. Credentials are cached per identity
 * (namespace, service account, role or agent) until shortly before they expire, and concurrent
 * Mounts of one identity share one credential fetch; identities never share an entry.
 */
export class AwsAccess {
  readonly #credentials = new Map<string, CredentialEntry>();
  readonly #fetches = new Map<string, Promise<CredentialEntry>>();
  readonly #clients = new Map<string, { fingerprint: string; client: unknown }>();
  readonly #httpAgent = new HttpAgent({ keepAlive: true, maxSockets: 64 });
  readonly #httpsAgent = new HttpsAgent({ keepAlive: true, maxSockets: 64 });
  readonly #sts: { client: Sts.STSClient; AssumeRoleWithWebIdentityCommand: typeof Sts.AssumeRoleWithWebIdentityCommand } | undefined;
  readonly primary: AwsTarget;
  readonly failover: AwsTarget | undefined;

  constructor(
    readonly opts: AwsStoreOptions,
    sts: typeof Sts | undefined,
    private readonly deps: AwsAccessDeps,
  ) {
    this.primary = { region: opts.region, ...(opts.endpoint ? { endpoint: opts.endpoint } : {}) };
    this.failover = opts.failoverRegion
      ? { region: opts.failoverRegion, ...(opts.failoverEndpoint ? { endpoint: opts.failoverEndpoint } : {}) }
      : undefined;
    if (sts && opts.auth.method === 'irsa') {
      const client = new sts.STSClient({
        region: opts.region,
        ...(opts.auth.stsEndpoint ? { endpoint: opts.auth.stsEndpoint } : {}),
        maxAttempts,
        retryMode: 'standard',
        requestHandler: this.#requestHandler(),
      });
      this.#sts = { client, AssumeRoleWithWebIdentityCommand: sts.AssumeRoleWithWebIdentityCommand };
    }
  }

  /** The pod token audience this store presents; static keys need none. */
  get audience(): string | undefined {
    return this.opts.auth.method === 'static' ? undefined : this.opts.auth.audience;
  }

  callerFor(ctx: FetchContext): AwsCaller {
    const auth = this.opts.auth;
    switch (auth.method) {
      case 'irsa':
        return this.#irsaCaller(auth, ctx);
      case 'pod-identity':
        return this.#podIdentityCaller(auth, ctx);
      case 'static':
        return this.#staticCaller(ctx);
    }
  }

  /**
   * Runs `op` in the primary region and, when that fails transiently (5xx, throttling, network),
   * in the failover region. If both fail, the primary's error is the one thrown. A cached
   * credential the service no longer accepts is dropped and fetched again once.
   */
  async run<T>(caller: AwsCaller, op: (target: AwsTarget, credentials: AwsCredentials, fingerprint: string) => Promise<T>): Promise<T> {
    const held = await caller.obtain();
    try {
      return await this.#acrossRegions(held.entry, op);
    } catch (err) {
      if (!held.cached || !isStaleCredentialError(err)) throw err;
      caller.evict(held.entry);
      const again = await caller.obtain();
      return this.#acrossRegions(again.entry, op);
    }
  }

  async #acrossRegions<T>(entry: CredentialEntry, op: (target: AwsTarget, credentials: AwsCredentials, fingerprint: string) => Promise<T>): Promise<T> {
    const credentials = entry.credentials.reveal();
    const fingerprint = fingerprintOf(credentials);
    try {
      return await op(this.primary, credentials, fingerprint);
    } catch (err) {
      if (!this.failover || !shouldFailOver(err)) throw err;
      this.deps.logger.warn(
        { region: this.primary.region, failoverRegion: this.failover.region, cause: errorName(err) },
        'the primary region failed; reading from the failover region',
      );
      try {
        return await op(this.failover, credentials, fingerprint);
      } catch (failoverErr) {
        this.deps.logger.warn({ failoverRegion: this.failover.region, cause: errorName(failoverErr) }, 'the failover region failed too');
        throw err;
      }
    }
  }

  /** One SDK client per (service, region, identity), replaced when the identity's credentials change. */
  clientFor<C>(service: string, target: AwsTarget, callerKey: string, credentials: AwsCredentials, fingerprint: string, make: (config: AwsClientConfig) => C): C {
    const key = `${service}\u0000${target.region}\u0000${target.endpoint ?? ''}\u0000${callerKey}`;
    const held = this.#clients.get(key);
    if (held && held.fingerprint === fingerprint) return held.client as C;
    const client = make({
      region: target.region,
      ...(target.endpoint ? { endpoint: target.endpoint } : {}),
      credentials,
      maxAttempts,
      retryMode: 'adaptive',
      requestHandler: this.#requestHandler(),
    });
    capAnswerSize(client);
    this.#clients.delete(key);
    pruneMap(this.#clients, () => false, maxClients);
    this.#clients.set(key, { fingerprint, client });
    return client;
  }

  /**
   * Makes one SDK call bounded by the store's timeout and, when every waiting Mount shares one
   * signal, by that signal. A call that ran out of its own time fails as a TimeoutError, which
   * may fail over; one the Mount gave up on stays an AbortError, which must not.
   */
  async send<T>(signals: readonly AbortSignal[], call: (abortSignal: AbortSignal) => Promise<T>): Promise<T> {
    const timeout = AbortSignal.timeout(this.opts.timeout);
    const first = signals[0];
    const shared = first !== undefined && signals.every((s) => s === first);
    try {
      return await call(shared ? AbortSignal.any([first, timeout]) : timeout);
    } catch (err) {
      if (isAbort(err) && !signals.some((s) => s.aborted)) {
        throw Object.assign(new Error(`no answer within ${this.opts.timeout}ms`), { name: 'TimeoutError', code: 'ETIMEDOUT' });
      }
      throw err;
    }
  }

  close(): void {
    this.#sts?.client.destroy();
    this.#httpAgent.destroy();
    this.#httpsAgent.destroy();
    this.#clients.clear();
    this.#credentials.clear();
  }

  #requestHandler(): Record<string, unknown> {
    // Clients share the store's agents: replacing a client on new credentials keeps the pooled sockets.
    return {
      requestTimeout: this.opts.timeout,
      connectionTimeout: Math.min(this.opts.timeout, 5_000),
      throwOnRequestTimeout: true,
      httpAgent: this.#httpAgent,
      httpsAgent: this.#httpsAgent,
      logger: sdkLogger(this.deps.logger),
    };
  }

  // --- callers -------------------------------------------------------------------------------

  #irsaCaller(auth: IrsaAuth, ctx: FetchContext): AwsCaller {
    const roleArn = resolveRoleArn(auth, ctx);
    // Asked even when credentials are cached: a Mount must carry the pod's own token to use them.
    const token = ctx.tokenFor(auth.audience);
    const { namespace, serviceAccount } = ctx.identity;
    const sessionName = sessionNameFor(namespace, serviceAccount);
    const key = `${namespace}\u0000${serviceAccount}\u0000irsa:${roleArn}`;
    const describe = `role ${roleArn} (session ${sessionName})`;
    return this.#cachedCaller(key, describe, [token], () => this.#assumeRole(roleArn, sessionName, token, describe));
  }

  #podIdentityCaller(auth: PodIdentityAuth, ctx: FetchContext): AwsCaller {
    const agentUrl = auth.agentUrl ?? (auth.ipv6 ? podIdentityAgentUrlIpv6 : podIdentityAgentUrl);
    const token = ctx.tokenFor(auth.audience);
    const { namespace, serviceAccount } = ctx.identity;
    const key = `${namespace}\u0000${serviceAccount}\u0000pod-identity:${agentUrl}`;
    const describe = `the EKS Pod Identity association of service account ${namespace}/${serviceAccount}`;
    return this.#cachedCaller(key, describe, [token], () => this.#fromPodIdentityAgent(agentUrl, token, describe));
  }

  #staticCaller(ctx: FetchContext): AwsCaller {
    if (this.opts.auth.method !== 'static' || !this.opts.auth.allowFromSecret) {
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
    const entry: CredentialEntry = { credentials: new Secret(credentials), obtainedAt: this.deps.now() };
    const { namespace, serviceAccount } = ctx.identity;
    const digest = createHash('sha256').update(`${accessKeyId}\u0000${secretAccessKey}\u0000${sessionToken ?? ''}`).digest('hex').slice(0, 32);
    return {
      key: `${namespace}\u0000${serviceAccount}\u0000static:${digest}`,
      describe: `access key ${accessKeyId} from nodePublishSecretRef`,
      scrub: [secretAccessKey, ...(sessionToken ? [sessionToken] : [])],
      obtain: async () => ({ entry, cached: false }),
      evict: () => {},
    };
  }

  #cachedCaller(key: string, describe: string, scrub: string[], fetchCredentials: () => Promise<CredentialEntry>): AwsCaller {
    return {
      key,
      describe,
      scrub,
      obtain: () => this.#obtain(key, fetchCredentials),
      evict: (entry) => {
        if (this.#credentials.get(key) === entry) this.#credentials.delete(key);
      },
    };
  }

  async #obtain(key: string, fetchCredentials: () => Promise<CredentialEntry>): Promise<HeldCredentials> {
    const cached = this.#credentials.get(key);
    if (cached && this.#isUsable(cached)) return { entry: cached, cached: true };
    this.#credentials.delete(key);
    const entry = await joinOrStart(this.#fetches, key, async () => {
      const fresh = await fetchCredentials();
      pruneMap(this.#credentials, (e) => !this.#isUsable(e));
      this.#credentials.set(key, fresh);
      return fresh;
    });
    return { entry, cached: false };
  }

  /** Usable until shortly before expiry, so a signed request never races it. */
  #isUsable(entry: CredentialEntry): boolean {
    if (entry.expiresAt === undefined) return true;
    const lifetime = entry.expiresAt - entry.obtainedAt;
    const margin = Math.min(lifetime / 4, 5 * 60_000);
    return this.deps.now() < entry.expiresAt - margin;
  }

  async #assumeRole(roleArn: string, sessionName: string, token: string, describe: string): Promise<CredentialEntry> {
    const sts = this.#sts;
    if (!sts) throw new ProviderError('Internal', 'the STS client is missing');
    const command = new sts.AssumeRoleWithWebIdentityCommand({ RoleArn: roleArn, RoleSessionName: sessionName, WebIdentityToken: token });
    let out: Sts.AssumeRoleWithWebIdentityCommandOutput;
    try {
      // Shared by every Mount of this identity, so only the store's timeout may end it.
      out = await sts.client.send(command, { abortSignal: AbortSignal.timeout(this.opts.timeout) });
    } catch (err) {
      throw describeAwsError(err, { service: 'AWS STS', doing: 'AssumeRoleWithWebIdentity', region: this.opts.region, caller: describe, scrub: [token] });
    }
    const c = out.Credentials;
    if (!c?.AccessKeyId || !c.SecretAccessKey || !c.SessionToken) {
      throw new ProviderError('Unavailable', `AWS STS answered AssumeRoleWithWebIdentity for ${describe} without credentials`);
    }
    this.deps.logger.debug({ roleArn, sessionName, expiration: c.Expiration?.toISOString() }, 'assumed an IAM role with the pod token');
    return this.#entryFor({ accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, sessionToken: c.SessionToken, ...(c.Expiration ? { expiration: c.Expiration } : {}) });
  }

  async #fromPodIdentityAgent(agentUrl: string, token: string, describe: string): Promise<CredentialEntry> {
    const res = await getJson(agentUrl, token, this.opts.timeout, this.#httpAgent);
    const where = `the EKS Pod Identity agent at ${agentUrl}`;
    if (res.status < 200 || res.status >= 300) {
      const code: ErrorCode = res.status === 429 || res.status >= 500 ? 'Unavailable' : 'PermissionDenied';
      const detail = redact(res.text.trim().slice(0, 200), [token]);
      throw new ProviderError(code, `${where} refused credentials for ${describe} (HTTP ${res.status})${detail ? `: ${detail}` : ''}`);
    }
    const body = res.json;
    const accessKeyId = body?.['AccessKeyId'];
    const secretAccessKey = body?.['SecretAccessKey'];
    const sessionToken = body?.['Token'];
    const expiration = typeof body?.['Expiration'] === 'string' ? new Date(body['Expiration']) : undefined;
    if (typeof accessKeyId !== 'string' || typeof secretAccessKey !== 'string' || typeof sessionToken !== 'string') {
      throw new ProviderError('Unavailable', `${where} answered without credentials for ${describe}`);
    }
    this.deps.logger.debug({ agentUrl, expiration: expiration?.toISOString() }, 'obtained credentials from the EKS Pod Identity agent');
    const valid = expiration && !Number.isNaN(expiration.getTime()) ? { expiration } : {};
    return this.#entryFor({ accessKeyId, secretAccessKey, sessionToken, ...valid });
  }

  #entryFor(credentials: AwsCredentials): CredentialEntry {
    return {
      credentials: new Secret(credentials),
      obtainedAt: this.deps.now(),
      ...(credentials.expiration ? { expiresAt: credentials.expiration.getTime() } : {}),
    };
  }
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
  if (auth.roleArnPattern !== undefined && !matchesRolePattern(auth.roleArnPattern, roleArn, ctx)) {
    throw new ProviderError(
      'PermissionDenied',
      `role ${roleArn} is not allowed for service account ${ctx.identity.namespace}/${ctx.identity.serviceAccount} by this store (allowed: ${auth.roleArnPattern})`,
    );
  }
  return roleArn;
}

/** `{namespace}` and `{serviceAccount}` are the pod's; `*` matches any run of characters. */
function matchesRolePattern(pattern: string, roleArn: string, ctx: FetchContext): boolean {
  const rendered = pattern.replace(/\{(namespace|serviceAccount)\}/g, (_m, name: string) =>
    name === 'namespace' ? ctx.identity.namespace : ctx.identity.serviceAccount,
  );
  const source = rendered
    .split('*')
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  return new RegExp(`^${source}$`).test(roleArn);
}

/** `namespace.serviceAccount` (namespaces have no dots), shortened with a hash past STS's 64 characters. */
export function sessionNameFor(namespace: string, serviceAccount: string): string {
  const name = `${namespace}.${serviceAccount}`.replace(/[^\w+=,.@-]/g, '-');
  if (name.length <= sessionNameLimit) return name;
  const digest = createHash('sha256').update(name).digest('hex').slice(0, 8);
  return `${name.slice(0, sessionNameLimit - 9)}-${digest}`;
}

function fingerprintOf(credentials: AwsCredentials): string {
  return createHash('sha256')
    .update(`${credentials.accessKeyId}\u0000${credentials.secretAccessKey}\u0000${credentials.sessionToken ?? ''}`)
    .digest('hex')
    .slice(0, 32);
}

// ---------------------------------------------------------------------------------------------
// Errors

const notFoundErrors = new Set(['ResourceNotFoundException', 'ParameterNotFound', 'ParameterVersionNotFound']);
const deniedErrors = new Set([
  'AccessDeniedException',
  'AccessDenied',
  'ExpiredTokenException',
  'ExpiredToken',
  // The SDK names STS's modelled errors by shape (InvalidIdentityTokenException), others by code.
  'InvalidIdentityToken',
  'InvalidIdentityTokenException',
  'IDPRejectedClaim',
  'IDPRejectedClaimException',
  'UnrecognizedClientException',
  'InvalidSignatureException',
  'InvalidClientTokenId',
  'SignatureDoesNotMatch',
  'MissingAuthenticationToken',
  'IncompleteSignature',
  'DecryptionFailure',
  'RegionDisabledException',
]);
const throttlingErrors = new Set([
  'ThrottlingException',
  'Throttling',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'ProvisionedThroughputExceededException',
  'IDPCommunicationError',
  'IDPCommunicationErrorException',
]);
const staleCredentialErrors = new Set(['ExpiredTokenException', 'ExpiredToken', 'UnrecognizedClientException', 'InvalidClientTokenId']);
const networkCodes = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE', 'ECONNABORTED']);

interface SdkErrorShape {
  name?: string;
  message?: string;
  code?: string;
  $fault?: string;
  $metadata?: { httpStatusCode?: number };
}

function asSdkError(err: unknown): SdkErrorShape {
  return err !== null && typeof err === 'object' ? (err as SdkErrorShape) : {};
}

export function errorName(err: unknown): string {
  const e = asSdkError(err);
  if (err instanceof ProviderError) return err.code;
  return e.code && networkCodes.has(e.code) ? e.code : (e.name ?? 'Error');
}

function statusOf(err: unknown): number | undefined {
  return asSdkError(err).$metadata?.httpStatusCode;
}

function isServerError(err: unknown): boolean {
  const status = statusOf(err);
  return (status !== undefined && status >= 500) || asSdkError(err).$fault === 'server';
}

/** Connection-level failures (no HTTP answer at all): Node's system error codes and the SDK's timeouts. */
function isNetworkError(err: unknown): boolean {
  const e = asSdkError(err);
  if (err instanceof ProviderError || statusOf(err) !== undefined) return false;
  return e.name === 'TimeoutError' || (typeof e.code === 'string' && (networkCodes.has(e.code) || /^E[A-Z_]+$/.test(e.code)));
}

function isAbort(err: unknown): boolean {
  return asSdkError(err).name === 'AbortError';
}

/**
 * Worth trying the failover region: the primary is down, overloaded, unreachable or answering
 * garbage (a 200 the SDK cannot parse, like a 200 of the wrong shape), not refusing.
 */
export function shouldFailOver(err: unknown): boolean {
  if (err instanceof ProviderError) return err.code === 'Unavailable';
  if (isAbort(err)) return false;
  return throttlingErrors.has(asSdkError(err).name ?? '') || isServerError(err) || isNetworkError(err) || isMalformedAnswer(err);
}

/** Transient failures fail a whole batch; anything else is retried object by object for precise causes. */
export function isTransient(err: unknown): boolean {
  return shouldFailOver(err) || isAbort(err) || (err instanceof ProviderError && err.code === 'DeadlineExceeded');
}

function isStaleCredentialError(err: unknown): boolean {
  return staleCredentialErrors.has(asSdkError(err).name ?? '');
}

function codeFor(err: unknown): ErrorCode {
  const name = asSdkError(err).name ?? '';
  if (notFoundErrors.has(name)) return 'NotFound';
  if (deniedErrors.has(name)) return 'PermissionDenied';
  if (throttlingErrors.has(name) || isServerError(err)) return 'Unavailable';
  const status = statusOf(err);
  if (status === 401 || status === 403) return 'PermissionDenied';
  if (status === 404) return 'NotFound';
  if (status !== undefined && status >= 400) return 'InvalidArgument';
  return 'Unavailable';
}

export interface ErrorContext {
  /** `AWS Secrets Manager` */
  readonly service: string;
  /** `reading secret "shop/db"` */
  readonly doing: string;
  readonly region: string;
  /** The identity, as AwsCaller.describe. */
  readonly caller: string;
  readonly scrub: readonly string[];
}

/**
 * One message shape for every AWS failure: service, action, object, region, identity and AWS's own
 * cause. The SDK has already retried (adaptive mode, with its client-side rate limiting) and the
 * failover region was tried, so the shared store guard must not multiply those calls.
 */
export function describeAwsError(err: unknown, where: ErrorContext): ProviderError {
  if (err instanceof ProviderError) return err;
  if (isAbort(err)) {
    return new ProviderError('DeadlineExceeded', `${where.service} did not answer ${where.doing} in ${where.region} before the deadline`);
  }
  const e = asSdkError(err);
  if (e.name === answerTooLarge) {
    return new ProviderError('Unavailable', `${where.service} answered ${where.doing} in ${where.region} with more than ${maxAnswerBytes} bytes`, {
      transient: false,
    });
  }
  // The SDK does not retry an answer it cannot parse, and its message quotes JSON.parse, which
  // quotes the body (a secret, in a real answer): name the failure only. Found by fault injection.
  if (isMalformedAnswer(err)) {
    return new ProviderError('Unavailable', `${where.service} sent a cut-off or malformed answer ${where.doing} in ${where.region} (${e.name ?? 'Error'})`);
  }
  if (e.name === 'TimeoutError' || e.code === 'ETIMEDOUT') {
    return new ProviderError('DeadlineExceeded', `${where.service} did not answer ${where.doing} in ${where.region} within the store's timeout`);
  }
  if (isNetworkError(err)) {
    return new ProviderError('Unavailable', `cannot reach ${where.service} in ${where.region} for ${where.doing} (${errorName(err)})`, {
      transient: false,
    });
  }
  const code = codeFor(err);
  const name = e.name ?? 'Error';
  const detail = typeof e.message === 'string' && e.message !== '' && e.message !== name ? `: ${redact(e.message.slice(0, 300), where.scrub)}` : '';
  const status = statusOf(err);
  const verb = code === 'PermissionDenied' ? 'denied' : 'failed';
  return new ProviderError(
    code,
    `${where.service} ${verb} ${where.doing} in ${where.region} as ${where.caller}: ${name}${status ? ` (HTTP ${status})` : ''}${detail}`,
    { transient: false },
  );
}

/** What the SDK's deserializer adds to every error it throws (its $response is hidden). */
function isMalformedAnswer(err: unknown): boolean {
  const e = asSdkError(err);
  return e.name === 'SyntaxError' || (typeof e.message === 'string' && e.message.includes('Deserialization error'));
}

/** Far above any AWS answer we ask for (20 secrets of 64 KiB in one batch). */
const maxAnswerBytes = 8 * 1024 * 1024;
const answerTooLarge = 'AnswerTooLarge';

/**
 * The SDK reads a whole answer into memory however large it is; this caps the body stream before
 * its deserializer reads it (a 64 MiB answer was buffered whole: found by fault injection).
 */
function capAnswerSize(client: unknown): void {
  type Next = (args: unknown) => Promise<{ response: unknown }>;
  const stack = (client as { middlewareStack?: { add(middleware: (next: Next) => Next, options: object): void } }).middlewareStack;
  stack?.add(
    (next) => async (args) => {
      const out = await next(args);
      const response = out.response as { body?: unknown } | undefined;
      if (response && response.body instanceof Readable) response.body = capStream(response.body);
      return out;
    },
    { step: 'deserialize', priority: 'low', name: 'uspAnswerSizeCap' },
  );
}

function capStream(source: Readable): Readable {
  let size = 0;
  const capped = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      size += chunk.length;
      if (size > maxAnswerBytes) done(Object.assign(new Error(`answer exceeded ${maxAnswerBytes} bytes`), { name: answerTooLarge }));
      else done(null, chunk);
    },
  });
  // pipeline destroys the source (and its socket) when the cap fails the transform.
  pipeline(source, capped, () => {});
  return capped;
}

/** An error AWS reported for one item of a batch, shaped like the SDK's own. */
export function itemError(name: string, message: string | undefined): SdkErrorShape {
  return { name, ...(message ? { message } : {}), $fault: 'client', $metadata: { httpStatusCode: 400 } };
}

function redact(text: string, scrub: readonly string[]): string {
  let out = text;
  for (const s of scrub) if (s.length >= 8) out = out.split(s).join('[REDACTED]');
  return out;
}

// ---------------------------------------------------------------------------------------------
// Answer shapes

/**
 * A 200 of the wrong shape (the SDKs check no types): Unavailable and transient, like the answers
 * the SDK cannot parse, so the store's retries apply. Thrown inside `AwsAccess.run`'s operation, it
 * makes the failover region be tried, as a 5xx would. Names the shape, never the body.
 */
export function malformedAnswer(service: string, doing: string, why: string): ProviderError {
  return new ProviderError('Unavailable', `${service} sent a malformed answer ${doing} (${why})`);
}

// ---------------------------------------------------------------------------------------------
// Batching

interface Pending<Item, Result> {
  readonly item: Item;
  resolve(result: Result): void;
  reject(err: unknown): void;
}

export type PendingRead<Item, Result> = Pending<Item, Result>;

/**
 * Collects the reads of one identity that arrive in the same turn of the event loop (one Mount's
 * objects are fetched in parallel) and hands them over together, so a backend can batch them.
 */

/**
 * The backend definition of an AWS store kind: the shared store options, and a `create` that
 * loads the service's SDK (and STS for IRSA) only when such a store exists.
 */
export function defineAwsBackend<Sdk, Spec>(
  kind: string,
  objectFields: z.ZodType<Spec>,
  docs: BackendDocs,
  loadSdk: () => Promise<Sdk>,
  makeStore: (name: string, sdk: Sdk, aws: AwsAccess, logger: Logger) => StoreBackend<Spec>,
): BackendDefinition<AwsStoreOptions, Spec> {
  return {
    kind,
    options: awsStoreOptions,
    objectFields,
    audiences: (opts) => (opts.auth.method === 'static' ? [] : [opts.auth.audience]),
    docs,
    checkStore: checkAwsStore,
    async create({ name, options: opts }, { logger, now }) {
      const [sdk, sts] = await Promise.all([
        loadSdk(),
        opts.auth.method === 'irsa' ? import('@aws-sdk/client-sts') : Promise.resolve(undefined),
      ]);
      const log = logger.child({ backend: kind });
      return makeStore(name, sdk, new AwsAccess(opts, sts, { logger: log, now }), log);
    },
  };
}

/**
 * What both AWS stores share: pod-identity access to AWS, a batcher that groups the reads of one
 * identity arriving in the same tick, and the store contract around them. A subclass reads.
 */
export abstract class BatchingAwsStore<Spec, Read> implements StoreBackend<Spec> {
  protected readonly batcher: MicroBatcher<Read, FetchResult>;

  constructor(
    readonly name: string,
    protected readonly aws: AwsAccess,
    protected readonly logger: Logger,
    /** The service's name in messages. */
    protected readonly service: string,
  ) {
    this.batcher = new MicroBatcher((caller, pending) => this.flush(caller, pending));
  }

  /** Where a call failed, for describeAwsError. */
  protected where(caller: AwsCaller, doing: string, region = this.aws.primary.region) {
    return { service: this.service, doing, region, caller: caller.describe, scrub: caller.scrub };
  }

  abstract fetch(request: FetchRequest<Spec>, ctx: FetchContext): Promise<FetchResult>;

  async close(): Promise<void> {
    this.aws.close();
  }

  /** Reads one identity's batch of the tick; settles every pending read. */
  protected abstract flush(caller: AwsCaller, pending: ReadonlyArray<PendingRead<Read, FetchResult>>): Promise<void>;
}

export class MicroBatcher<Item, Result> {
  readonly #groups = new Map<string, { caller: AwsCaller; pending: Array<Pending<Item, Result>> }>();

  constructor(private readonly flush: (caller: AwsCaller, pending: ReadonlyArray<Pending<Item, Result>>) => Promise<void>) {}

  add(caller: AwsCaller, item: Item): Promise<Result> {
    return new Promise<Result>((resolve, reject) => {
      let group = this.#groups.get(caller.key);
      if (!group) {
        group = { caller, pending: [] };
        this.#groups.set(caller.key, group);
        const flushing = group;
        setImmediate(() => {
          this.#groups.delete(caller.key);
          this.flush(flushing.caller, flushing.pending).catch((err: unknown) => {
            for (const p of flushing.pending) p.reject(err);
          });
        });
      }
      group.pending.push({ item, resolve, reject });
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers

/** Rewrites the region of an ARN (replicated secrets keep their ARN but for the region); names pass as they are. */
export function inRegion(ref: string, region: string): string {
  return ref.replace(/^(arn:aws[a-z-]*:[a-z]+:)[a-z0-9-]+(:)/, `$1${region}$2`);
}

/** Runs one operation per key at a time; later callers join the one in flight. */
function joinOrStart<T>(inflight: Map<string, Promise<T>>, key: string, start: () => Promise<T>): Promise<T> {
  const running = inflight.get(key);
  if (running) return running;
  const promise = start().finally(() => inflight.delete(key));
  inflight.set(key, promise);
  return promise;
}

function pruneMap<V>(map: Map<string, V>, expired: (v: V) => boolean, limit = maxCacheEntries): void {
  if (map.size < limit) return;
  for (const [k, v] of map) if (expired(v)) map.delete(k);
  for (const k of map.keys()) {
    if (map.size < limit) break;
    map.delete(k);
  }
}

/** Why a caller stopped waiting for AWS. */
export function awsCancelled(): ProviderError {
  return new ProviderError('DeadlineExceeded', 'the Mount was cancelled or its deadline passed before AWS answered');
}

/** The SDK's HTTP handler warns through this; its messages carry no request data. */
function sdkLogger(logger: Logger) {
  const warn = (...args: unknown[]) => logger.warn({ sdk: String(args[0]).slice(0, 300) }, 'AWS SDK warning');
  return { trace: () => {}, debug: () => {}, info: () => {}, warn, error: warn };
}

interface JsonAnswer {
  readonly status: number;
  readonly text: string;
  readonly json: Record<string, unknown> | undefined;
}

const maxAgentAnswerBytes = 64 * 1024;

/** The Pod Identity agent is plain HTTP on a link-local address; node:http is all it needs. */
function getJson(url: string, authorization: string, timeoutMs: number, agent: HttpAgent): Promise<JsonAnswer> {
  const where = `the EKS Pod Identity agent at ${url}`;
  return new Promise<JsonAnswer>((resolvePromise, reject) => {
    const signal = AbortSignal.timeout(timeoutMs);
    const req = httpRequest(url, { method: 'GET', agent, signal, headers: { authorization, accept: 'application/json' } }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > maxAgentAnswerBytes) {
          res.destroy();
          reject(new ProviderError('Unavailable', `${where} answered more than ${maxAgentAnswerBytes} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      res.on('error', (err) => reject(agentError(err, signal, where)));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolvePromise({ status: res.statusCode ?? 0, text, json: parseObject(text) });
      });
    });
    req.on('error', (err) => reject(agentError(err, signal, where)));
    req.end();
  });
}

function agentError(err: unknown, signal: AbortSignal, where: string): ProviderError {
  if (signal.aborted) return new ProviderError('DeadlineExceeded', `${where} did not answer in time`);
  const code = (err as NodeJS.ErrnoException).code ?? (err instanceof Error ? err.name : 'unknown error');
  return new ProviderError('Unavailable', `cannot reach ${where} (${code})`);
}

function parseObject(text: string): Record<string, unknown> | undefined {
  try {
    const parsed: unknown = JSON.parse(text);
    return parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
