import type { Logger } from 'pino';
import { ProviderError } from '../../errors.js';
import { quoteStoreText } from '../kit/redact.js';
import { isTransientStatus } from '../kit/transient.js';
import type { AwsCredentials, CredentialSources } from './credentials.js';
import { describeAwsError } from './errors.js';
import type { AwsStoreOptions } from './options.js';
import { answerCapPlugin, type AwsClientConfig, type SdkLogger } from './client.js';

type WebIdentity = typeof import('@aws-sdk/credential-provider-web-identity');
type Http = typeof import('@aws-sdk/credential-provider-http');

export interface SourceDeps {
  readonly logger: Logger;
  /** The store's shared client settings (maxAttempts 1, its HTTP pool) and the SDK's warning logger. */
  readonly client: Omit<AwsClientConfig, 'region' | 'credentials' | 'endpoint'>;
  readonly sdkLogger: SdkLogger;
}

/** Loads only the provider the store's auth method uses. */
export async function loadCredentialSources(opts: AwsStoreOptions, deps: SourceDeps): Promise<CredentialSources> {
  const [webIdentity, http] = await Promise.all([
    opts.auth.method === 'irsa' ? import('@aws-sdk/credential-provider-web-identity') : undefined,
    opts.auth.method === 'pod-identity' ? import('@aws-sdk/credential-provider-http') : undefined,
  ]);
  return createCredentialSources(opts, deps, webIdentity, http);
}

/**
 * The SDK's own credential providers, called once per identity and fetch with that pod's current
 * token (the providers cache nothing across calls; credentials.ts caches per identity). They make
 * one attempt: the store guard owns retries.
 */
function createCredentialSources(opts: AwsStoreOptions, deps: SourceDeps, webIdentity?: WebIdentity, http?: Http): CredentialSources {
  const unavailable = (what: string) => () => Promise.reject(new ProviderError('Internal', `this store does not use ${what}`));
  return {
    assumeRole: webIdentity ? (...args) => assumeRole(webIdentity, opts, deps, ...args) : unavailable('IRSA'),
    fromAgent: http ? (...args) => fromAgent(http, opts, deps, ...args) : unavailable('EKS Pod Identity'),
  };
}

async function assumeRole(sdk: WebIdentity, opts: AwsStoreOptions, deps: SourceDeps, roleArn: string, sessionName: string, token: string, describe: string): Promise<AwsCredentials> {
  const stsEndpoint = opts.auth.method === 'irsa' ? opts.auth.stsEndpoint : undefined;
  // fromWebToken builds its STS client per call: once per identity and credential lifetime (an
  // hour by default). The client shares the store's sockets and makes one attempt.
  const provider = sdk.fromWebToken({
    roleArn,
    roleSessionName: sessionName,
    webIdentityToken: token,
    clientConfig: { ...deps.client, region: opts.region, ...(stsEndpoint ? { endpoint: stsEndpoint } : {}) },
    clientPlugins: [answerCapPlugin as unknown as NonNullable<Parameters<WebIdentity['fromWebToken']>[0]['clientPlugins']>[number]],
  });
  try {
    const c = await provider();
    if (!c.sessionToken) throw new Error('Invalid response from STS: no session token');
    deps.logger.debug({ roleArn, sessionName, expiration: c.expiration?.toISOString() }, 'assumed an IAM role with the pod token');
    return { accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey, sessionToken: c.sessionToken, ...(c.expiration ? { expiration: c.expiration } : {}) };
  } catch (err) {
    // The role assumer's own check of the answer: a plain Error that names the role only.
    if (err instanceof Error && err.name === 'Error' && err.message.startsWith('Invalid response from STS')) {
      throw new ProviderError('Unavailable', `AWS STS answered AssumeRoleWithWebIdentity for ${describe} without credentials`, { transient: true });
    }
    throw describeAwsError(err, { service: 'AWS STS', doing: 'AssumeRoleWithWebIdentity', region: opts.region, caller: describe, scrub: [token] });
  }
}

/**
 * EKS Pod Identity through the SDK's HTTP credential provider, with this pod's token. fromHttp
 * reads the agent's answer whole: unlike the AWS services (capped in client.ts), the agent is a
 * node-local daemon on a link-local address, answering a few hundred bytes.
 */
async function fromAgent(sdk: Http, opts: AwsStoreOptions, deps: SourceDeps, agentUrl: string, token: string, describe: string): Promise<AwsCredentials> {
  const provider = sdk.fromHttp({
    awsContainerCredentialsFullUri: agentUrl,
    awsContainerAuthorizationToken: token,
    // Empty, not absent: fromHttp would otherwise take these from the provider's own environment
    // (its own Pod Identity token file) and present the provider's identity instead of the pod's.
    awsContainerCredentialsRelativeUri: '',
    awsContainerAuthorizationTokenFile: '',
    maxRetries: 0,
    timeout: opts.timeout,
    logger: deps.sdkLogger,
  });
  try {
    const c = await provider();
    deps.logger.debug({ agentUrl, expiration: c.expiration?.toISOString() }, 'obtained credentials from the EKS Pod Identity agent');
    const valid = c.expiration && !Number.isNaN(c.expiration.getTime()) ? { expiration: c.expiration } : {};
    return { accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey, ...(c.sessionToken ? { sessionToken: c.sessionToken } : {}), ...valid };
  } catch (err) {
    throw describeAgentError(err, `the EKS Pod Identity agent at ${agentUrl}`, describe, token);
  }
}

/**
 * fromHttp reports the agent's status only in its message, and wraps transport failures as text;
 * a 200 it cannot parse escapes as the parser's error, whose message quotes the body (credentials),
 * so nothing but the status and the agent's own Message is ever quoted.
 */
function describeAgentError(err: unknown, where: string, describe: string, token: string): ProviderError {
  const e = (err ?? {}) as { name?: string; message?: string; Message?: unknown; Code?: unknown };
  const message = typeof e.message === 'string' ? e.message : '';
  const status = /responded with status: (\d{3})/.exec(message)?.[1];
  if (status !== undefined) {
    const transient = isTransientStatus(Number(status));
    const said = typeof e.Message === 'string' ? e.Message : typeof e.Code === 'string' ? e.Code : '';
    const detail = said ? `: ${quoteStoreText(said, [token], 200)}` : '';
    return new ProviderError(transient ? 'Unavailable' : 'PermissionDenied', `${where} refused credentials for ${describe} (HTTP ${status})${detail}`, { transient });
  }
  if (e.name === 'SyntaxError' || message.includes('not of the required format')) {
    return new ProviderError('Unavailable', `${where} answered without credentials for ${describe}`, { transient: true });
  }
  if (/TimeoutError|timed out|ETIMEDOUT/.test(message) || e.name === 'TimeoutError') {
    return new ProviderError('DeadlineExceeded', `${where} did not answer in time`, { transient: true });
  }
  const code = /\b(E[A-Z_]{3,})\b/.exec(message)?.[1] ?? 'unknown error';
  return new ProviderError('Unavailable', `cannot reach ${where} (${code})`, { transient: true });
}
