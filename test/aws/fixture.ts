import { driverRequest, type MountRequest } from '../helpers/driver-client.js';
import type { AwsTestServer } from '../servers/aws.js';

export const primary = 'us-east-1';
export const secondary = 'us-west-2';

/** One store of each auth mode per backend, all pointed at the test server; caching off so every Mount reaches AWS. */
export function providerConfig(aws: AwsTestServer, extra = ''): string {
  const endpoints = `
    region: ${primary}
    endpoint: ${aws.endpoint(primary)}
    failoverRegion: ${secondary}
    failoverEndpoint: ${aws.endpoint(secondary)}
    timeout: 8s
    cache: {ttl: 0}`;
  const irsa = `{method: irsa, stsEndpoint: "${aws.stsUrl}", roleArnPattern: "arn:aws:iam::123456789012:role/{namespace}-*"}`;
  return `
defaultStore: sm
versionKey: test-version-key-0123456789
stores:
  - name: sm
    backend: aws-secrets-manager${endpoints}
    auth: ${irsa}
  - name: sm-pod
    backend: aws-secrets-manager${endpoints}
    auth: {method: pod-identity, agentUrl: "${aws.podIdentityUrl}"}
  - name: sm-static
    backend: aws-secrets-manager${endpoints}
    auth: {method: static, allowFromSecret: true}
  - name: ssm
    backend: aws-parameter-store${endpoints}
    auth: ${irsa}
  - name: ssm-pod
    backend: aws-parameter-store${endpoints}
    auth: {method: pod-identity, agentUrl: "${aws.podIdentityUrl}"}
${extra}`;
}

export interface Pod {
  namespace?: string;
  serviceAccount?: string;
  role?: string;
  secrets?: Record<string, string>;
}

/** A Mount as the driver sends it for `pod`, with its tokens for both AWS audiences. */
export function awsRequest(aws: AwsTestServer, objects: string, pod: Pod = {}): MountRequest {
  const namespace = pod.namespace ?? 'shop';
  const serviceAccount = pod.serviceAccount ?? 'app';
  const tokens: Record<string, { token: string; expirationTimestamp: string }> = {};
  for (const audience of ['sts.amazonaws.com', 'pods.eks.amazonaws.com']) {
    const { token, expiresAt } = aws.issuePodToken({ namespace, serviceAccount, audience });
    tokens[audience] = { token, expirationTimestamp: new Date(expiresAt).toISOString() };
  }
  return driverRequest(objects, {
    namespace,
    serviceAccount,
    tokens,
    parameters: { role: pod.role ?? aws.roleArn(`${namespace}-${serviceAccount}`) },
    ...(pod.secrets ? { secrets: JSON.stringify(pod.secrets) } : {}),
  });
}

/** Every pod token a request carries, for the leak check. */
export function tokensOf(req: MountRequest): string[] {
  const attributes = JSON.parse(req.attributes) as Record<string, string>;
  const tokens = JSON.parse(attributes['csi.storage.k8s.io/serviceAccount.tokens'] ?? '{}') as Record<string, { token: string }>;
  return Object.values(tokens).map((t) => t.token);
}
