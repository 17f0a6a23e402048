import { z } from 'zod';
import { duration } from '../../schema.js';
import type { StoreSettings } from '../types.js';

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
    agentUrl: httpUrl
      .optional()
      .describe('The Pod Identity agent\'s credentials URL (default `http://169.254.170.23/v1/credentials`); plain http only on the agent\'s or a loopback address.'),
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
    .describe('Budget of one call to AWS; the store\'s retry settings decide whether a failed call is tried again.'),
});

export type AwsStoreOptions = z.infer<typeof awsStoreOptions>;
export type AuthOptions = AwsStoreOptions['auth'];
export type IrsaAuth = Extract<AuthOptions, { method: 'irsa' }>;
export type PodIdentityAuth = Extract<AuthOptions, { method: 'pod-identity' }>;

const podIdentityAgentUrl = 'http://169.254.170.23/v1/credentials';
const podIdentityAgentUrlIpv6 = 'http://[fd00:ec2::23]/v1/credentials';

/** Where a Pod Identity store asks for credentials. */
export function agentUrlOf(auth: PodIdentityAuth): string {
  return auth.agentUrl ?? (auth.ipv6 ? podIdentityAgentUrlIpv6 : podIdentityAgentUrl);
}

/** The pod-token audience a store presents; static keys need none. */
export function awsAudiences(opts: AwsStoreOptions): string[] {
  return opts.auth.method === 'static' ? [] : [opts.auth.audience];
}

/**
 * Hosts the SDK's HTTP credential provider (fromHttp) talks plain http to: the EKS and ECS agents'
 * link-local addresses and loopback. Anything else must be https, or every Mount would fail.
 */
function isPlainHttpAllowed(url: URL): boolean {
  const host = url.hostname;
  return ['169.254.170.2', '169.254.170.23', '[fd00:ec2::23]', '[::1]', 'localhost'].includes(host) || /^127(\.\d{1,3}){3}$/.test(host);
}

export function checkAwsStore({ options: opts }: StoreSettings<AwsStoreOptions>): string[] {
  const problems: string[] = [];
  if (opts.auth.method === 'static' && !opts.auth.allowFromSecret) {
    problems.push('auth.allowFromSecret: static auth reads access keys from nodePublishSecretRef; set it to true to allow that');
  }
  if (opts.auth.method === 'pod-identity' && opts.auth.ipv6 && opts.auth.agentUrl !== undefined) {
    problems.push('auth.ipv6: set either agentUrl or ipv6, not both');
  }
  if (opts.auth.method === 'pod-identity' && opts.auth.agentUrl !== undefined) {
    const url = new URL(opts.auth.agentUrl);
    if (url.protocol === 'http:' && !isPlainHttpAllowed(url)) {
      problems.push('auth.agentUrl: plain http only to the agent\'s link-local address (169.254.170.23, [fd00:ec2::23]) or loopback; use https');
    }
  }
  if (opts.failoverEndpoint !== undefined && opts.failoverRegion === undefined) {
    problems.push('failoverEndpoint: needs failoverRegion');
  }
  if (opts.failoverRegion !== undefined && opts.failoverRegion === opts.region && opts.failoverEndpoint === undefined) {
    problems.push('failoverRegion: must differ from region');
  }
  return problems;
}
