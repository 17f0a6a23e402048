import type { Canaries } from '../helpers/canary.js';
import { driverRequest, fileMap, type MountRequest } from '../helpers/driver-client.js';
import type { TestProvider } from '../helpers/provider.js';
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

/**
 * A store for malformed-answer tests: one attempt per Mount (one call per region), failover on
 * unless `failover` is false, and a breaker that many failures in a row do not open.
 */
export function singleAttemptStore(aws: AwsTestServer, name: string, backend: string, failover = true): string {
  const failoverLines = failover ? `
    failoverRegion: ${secondary}
    failoverEndpoint: ${aws.endpoint(secondary)}` : '';
  return `
  - name: ${name}
    backend: ${backend}
    region: ${primary}
    endpoint: ${aws.endpoint(primary)}${failoverLines}
    timeout: 8s
    cache: {ttl: 0}
    retry: {attempts: 1}
    breaker: {failures: 100000}
    auth: {method: irsa, stsEndpoint: "${aws.stsUrl}"}`;
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

/**
 * Mount helpers for one AWS test server and provider. `finish` stops both and checks that no
 * secret, pod token or issued AWS credential reached the logs or an error message.
 */
export function awsMounts(canaries: Canaries, env: () => { aws: AwsTestServer; p: TestProvider }) {
  const errors: string[] = [];
  const requests: MountRequest[] = [];
  const request = (objects: string, pod: Pod = {}): MountRequest => {
    const req = awsRequest(env().aws, objects, pod);
    requests.push(req);
    return req;
  };
  return {
    request,
    async mount(objects: string, pod: Pod = {}) {
      const reply = await env().p.client.mount(request(objects, pod));
      return { files: fileMap(reply), versions: new Map(reply.objectVersion.map((v) => [v.id, v.version])) };
    },
    async failMount(objects: string, pod: Pod = {}) {
      const err = await env().p.client.mountError(request(objects, pod));
      errors.push(err.details);
      return err;
    },
    /** Counts calls matching `filter` from now on. */
    delta(filter: Parameters<AwsTestServer['count']>[0]) {
      const before = env().aws.count(filter);
      return () => env().aws.count(filter) - before;
    },
    async finish() {
      const { aws, p } = env();
      await p?.stop();
      await aws?.close();
      for (const c of aws.issuedCredentials) canaries.add(c.secretAccessKey, ...(c.sessionToken ? [c.sessionToken] : []));
      for (const r of requests) canaries.add(...tokensOf(r));
      canaries.expectNoneIn(p.logs, 'provider logs');
      canaries.expectNoneIn(errors, 'gRPC error messages');
    },
  };
}
