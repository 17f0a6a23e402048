import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  awsParameterStoreBackend,
  awsSecretsManagerBackend,
  awsStoreOptions,
  checkAwsStore,
  parameterStoreObjectFields,
  secretsManagerObjectFields,
} from '../../src/backends/aws/index.js';
import { sessionNameFor } from '../../src/backends/aws/credentials.js';
import { parseOrThrow } from '../../src/schema.js';
import type { FetchContext, FetchResult, StoreBackend } from '../../src/backends/types.js';
import { ProviderError } from '../../src/errors.js';
import { createTokenSource, type PodToken } from '../../src/identity.js';
import { Secret } from '../../src/secret.js';
import { createCanaries } from '../helpers/canary.js';
import { createLogCapture } from '../helpers/provider.js';
import { startAwsTestServer, type AwsTestServer } from '../servers/aws.js';
import { primary, secondary } from './fixture.js';

const canaries = createCanaries();
const value = canaries.next('backend');
const messages: string[] = [];
const { lines, logger } = createLogCapture();
const stores: StoreBackend[] = [];

let aws: AwsTestServer;
let closedPort: number;

beforeAll(async () => {
  aws = await startAwsTestServer({ regions: [primary, secondary] });
  for (const sa of ['a', 'b', 'c']) aws.defineRole({ name: `shop-${sa}`, trust: [{ namespace: 'shop', serviceAccount: sa }], allow: ['shop/*'] });
  aws.putSecret('shop/one', value);
  aws.putSecret('shop/two', value);
  aws.putParameter('/shop/one', value);
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  closedPort = (probe.address() as { port: number }).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
});

afterAll(async () => {
  await Promise.all(stores.map((s) => s.close()));
  await aws.close();
  for (const c of aws.issuedCredentials) canaries.add(c.secretAccessKey, ...(c.sessionToken ? [c.sessionToken] : []));
  canaries.expectNoneIn(lines, 'backend logs');
  canaries.expectNoneIn(messages, 'error messages');
});

function options(raw: Record<string, unknown>) {
  return awsStoreOptions.parse({ region: primary, endpoint: aws.endpoint(primary), ...raw });
}

async function secretsManager(raw: Record<string, unknown>, now?: () => number) {
  const store = await awsSecretsManagerBackend.create({ name: 'sm', options: options(raw), restrictsNamespaces: false }, { logger, baseDir: '.', now: now ?? Date.now });
  stores.push(store);
  return store;
}

const irsa = () => ({ method: 'irsa', stsEndpoint: aws.stsUrl });

function context(serviceAccount: string, extra: { signal?: AbortSignal; audiences?: string[]; role?: string } = {}): FetchContext {
  const tokens = new Map<string, PodToken>();
  for (const audience of extra.audiences ?? ['sts.amazonaws.com', 'pods.eks.amazonaws.com']) {
    const issued = aws.issuePodToken({ namespace: 'shop', serviceAccount, audience });
    canaries.add(issued.token);
    tokens.set(audience, { token: new Secret(issued.token), expiresAt: issued.expiresAt });
  }
  return {
    ...createTokenSource(tokens, Date.now),
    identity: { namespace: 'shop', serviceAccount, podName: `${serviceAccount}-0`, podUid: 'uid' },
    parameters: { role: extra.role ?? aws.roleArn(`shop-${serviceAccount}`) },
    secrets: new Map(),
    signal: extra.signal ?? new AbortController().signal,
  };
}

async function failure(promise: Promise<unknown>): Promise<ProviderError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(ProviderError);
    messages.push((err as ProviderError).message);
    return err as ProviderError;
  }
  throw new Error('expected a failure');
}

function text(result: FetchResult): string {
  const content = result.content.reveal();
  return content.kind === 'bytes' ? content.data.toString() : JSON.stringify(content.fields);
}

function delta(filter: Parameters<AwsTestServer['count']>[0]) {
  const before = aws.count(filter);
  return () => aws.count(filter) - before;
}

describe('store options', () => {
  it('fills defaults and rejects unknown fields', () => {
    const parsed = awsStoreOptions.parse({ region: 'eu-west-1', auth: { method: 'irsa' } });
    expect(parsed.timeout).toBe(10_000);
    expect(parsed.auth).toEqual({ method: 'irsa', audience: 'sts.amazonaws.com' });
    expect(awsStoreOptions.parse({ region: 'eu-west-1', auth: { method: 'pod-identity' } }).auth).toEqual({
      method: 'pod-identity',
      audience: 'pods.eks.amazonaws.com',
      ipv6: false,
    });
    expect(awsStoreOptions.safeParse({ region: 'eu-west-1', auth: { method: 'irsa', role: 'x' } }).success).toBe(false);
    expect(awsStoreOptions.safeParse({ region: 'Europe', auth: { method: 'irsa' } }).success).toBe(false);
  });

  it('reports store-level problems', () => {
    const check = (raw: Record<string, unknown>) =>
      checkAwsStore({ name: 's', options: awsStoreOptions.parse({ region: 'eu-west-1', ...raw }), restrictsNamespaces: false });
    expect(check({ auth: { method: 'static' } })).toEqual([expect.stringContaining('auth.allowFromSecret')]);
    expect(check({ auth: { method: 'static', allowFromSecret: true } })).toEqual([]);
    expect(check({ auth: { method: 'pod-identity', ipv6: true, agentUrl: 'http://127.0.0.1/v1/credentials' } })).toEqual([expect.stringContaining('auth.ipv6')]);
    // The SDK's HTTP credential provider speaks plain http only to the agents' and loopback addresses.
    expect(check({ auth: { method: 'pod-identity', agentUrl: 'http://agent.example/v1/credentials' } })).toEqual([expect.stringContaining('auth.agentUrl')]);
    for (const agentUrl of ['https://agent.example/v1/credentials', 'http://169.254.170.23/v1/credentials', 'http://[fd00:ec2::23]/v1/credentials', 'http://127.0.0.1:8080/v1/credentials']) {
      expect(check({ auth: { method: 'pod-identity', agentUrl } })).toEqual([]);
    }
    expect(check({ auth: { method: 'irsa' }, failoverEndpoint: 'http://x' })).toEqual([expect.stringContaining('failoverEndpoint')]);
    expect(check({ auth: { method: 'irsa' }, failoverRegion: 'eu-west-1' })).toEqual([expect.stringContaining('failoverRegion')]);
  });

  it('validates object fields strictly, naming the field', async () => {
    const sm = await secretsManager({ auth: irsa() });
    expect(() => parseOrThrow(secretsManagerObjectFields, { stage: 'x' }, 'objects[3]')).toThrow('objects[3].stage: unknown field');
    const ssm = await awsParameterStoreBackend.create({ name: 'ssm', options: options({ auth: irsa() }), restrictsNamespaces: false }, { logger, baseDir: '.', now: Date.now });
    stores.push(ssm);
    expect(() => parseOrThrow(parameterStoreObjectFields, { recursive: 'yes' }, 'objects[0]')).toThrow('objects[0].recursive');
  });

  it('derives STS session names within 64 characters', () => {
    expect(sessionNameFor('shop', 'app')).toBe('shop.app');
    const long = sessionNameFor('n'.repeat(63), 's'.repeat(200));
    expect(long.length).toBeLessThanOrEqual(64);
    expect(long).toMatch(/^[\w+=,.@-]+$/);
    expect(long).not.toBe(sessionNameFor('n'.repeat(63), `${'s'.repeat(199)}t`));
  });
});

describe('credentials', () => {
  it('reuses credentials until shortly before they expire', async () => {
    let clock = Date.now();
    const sm = await secretsManager({ auth: irsa() }, () => clock);
    const assume = delta({ service: 'sts', status: 200 });
    expect(text(await sm.fetch({ ref: 'shop/one', spec: {} }, context('a')))).toBe(value);
    clock += 50 * 60_000;
    await sm.fetch({ ref: 'shop/one', spec: {} }, context('a'));
    expect(assume()).toBe(1);
    clock += 6 * 60_000;
    await sm.fetch({ ref: 'shop/one', spec: {} }, context('a'));
    expect(assume()).toBe(2);
  });

  it('batches same-tick reads per identity, never across identities', async () => {
    const sm = await secretsManager({ auth: irsa() });
    const batch = delta({ operation: 'BatchGetSecretValue', status: 200 });
    const results = await Promise.all([
      sm.fetch({ ref: 'shop/one', spec: {} }, context('b')),
      sm.fetch({ ref: 'shop/two', spec: {} }, context('b')),
      sm.fetch({ ref: 'shop/one', spec: {} }, context('c')),
      sm.fetch({ ref: 'shop/two', spec: {} }, context('c')),
    ]);
    expect(results.map(text)).toEqual([value, value, value, value]);
    expect(batch()).toBe(2);
    const principals = aws.calls.filter((c) => c.operation === 'BatchGetSecretValue').slice(-2).map((c) => c.principal);
    expect(principals.sort()).toEqual([
      'arn:aws:sts::123456789012:assumed-role/shop-b/shop.b',
      'arn:aws:sts::123456789012:assumed-role/shop-c/shop.c',
    ]);
  });

  it('asks for the pod token of its audience and a role ARN', async () => {
    const sm = await secretsManager({ auth: irsa() });
    const noToken = await failure(sm.fetch({ ref: 'shop/one', spec: {} }, context('a', { audiences: ['vault'] })));
    expect(noToken.code).toBe('PermissionDenied');
    expect(noToken.message).toContain('sts.amazonaws.com');
    const badRole = await failure(sm.fetch({ ref: 'shop/one', spec: {} }, context('a', { role: 'shop-a' })));
    expect(badRole.code).toBe('InvalidArgument');
  });

  it('names the Pod Identity agent when it refuses or cannot be reached', async () => {
    const sm = await secretsManager({ auth: { method: 'pod-identity', agentUrl: aws.podIdentityUrl } });
    const refused = await failure(sm.fetch({ ref: 'shop/one', spec: {} }, context('a')));
    expect(refused.code).toBe('PermissionDenied');
    expect(refused.message).toContain(aws.podIdentityUrl);
    const ipv6 = await secretsManager({ auth: { method: 'pod-identity', ipv6: true }, timeout: '300ms' });
    const unreachable = await failure(ipv6.fetch({ ref: 'shop/one', spec: {} }, context('a')));
    expect(['Unavailable', 'DeadlineExceeded']).toContain(unreachable.code);
    expect(unreachable.message).toContain('http://[fd00:ec2::23]/v1/credentials');
  });
});

describe('one attempt per fetch: the store guard owns retries', () => {
  it('marks throttling, 5xx and unreachable stores transient, after one call each', async () => {
    const sm = await secretsManager({ auth: irsa() });
    await sm.fetch({ ref: 'shop/one', spec: {} }, context('a'));
    for (const [status, error] of [[500, 'InternalServiceError'], [429, 'ThrottlingException'], [400, 'ThrottlingException']] as const) {
      const calls = delta({ region: primary, operation: 'GetSecretValue' });
      aws.inject({ kind: 'status', status }, { match: `${primary}/` });
      const err = await failure(sm.fetch({ ref: 'shop/one', spec: {} }, context('a')));
      expect({ status, code: err.code, transient: err.transient, calls: calls() }).toEqual({ status, code: 'Unavailable', transient: true, calls: 1 });
      expect(err.message).toContain(error);
    }
    const unreachable = await secretsManager({ auth: irsa(), endpoint: `http://127.0.0.1:${closedPort}` });
    const network = await failure(unreachable.fetch({ ref: 'shop/one', spec: {} }, context('a')));
    expect({ code: network.code, transient: network.transient }).toEqual({ code: 'Unavailable', transient: true });
    expect(network.message).toContain('ECONNREFUSED');
  });

  it('marks refusals permanent', async () => {
    const sm = await secretsManager({ auth: irsa() });
    const missing = await failure(sm.fetch({ ref: 'shop/none', spec: {} }, context('a')));
    expect({ code: missing.code, transient: missing.transient }).toEqual({ code: 'NotFound', transient: false });
    const denied = await failure(sm.fetch({ ref: 'other/x', spec: {} }, context('a')));
    expect({ code: denied.code, transient: denied.transient }).toEqual({ code: 'PermissionDenied', transient: false });
    const sts = await failure(sm.fetch({ ref: 'shop/one', spec: {} }, context('a', { role: aws.roleArn('shop-b') })));
    expect({ code: sts.code, transient: sts.transient }).toEqual({ code: 'PermissionDenied', transient: false });
    expect(sts.message).toContain('AssumeRoleWithWebIdentity');
  });

  it('asks STS and the Pod Identity agent once per attempt, and marks their outages transient', async () => {
    let requests = 0;
    const failing = createHttpServer((req, res) => {
      requests += 1;
      req.resume();
      const body = '<ErrorResponse><Error><Type>Receiver</Type><Code>ServiceUnavailable</Code><Message>down</Message></Error></ErrorResponse>';
      res.writeHead(503, { 'content-type': 'text/xml', 'content-length': String(Buffer.byteLength(body)) });
      res.end(body);
    });
    await new Promise<void>((resolve) => failing.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(failing.address() as { port: number }).port}`;
    try {
      const viaSts = await secretsManager({ auth: { method: 'irsa', stsEndpoint: url } });
      const sts = await failure(viaSts.fetch({ ref: 'shop/one', spec: {} }, context('a')));
      expect({ code: sts.code, transient: sts.transient, requests }).toEqual({ code: 'Unavailable', transient: true, requests: 1 });
      const viaAgent = await secretsManager({ auth: { method: 'pod-identity', agentUrl: `${url}/v1/credentials` } });
      const agent = await failure(viaAgent.fetch({ ref: 'shop/one', spec: {} }, context('a')));
      expect({ code: agent.code, transient: agent.transient, requests }).toEqual({ code: 'Unavailable', transient: true, requests: 2 });
      expect(agent.message).toContain('HTTP 503');
    } finally {
      failing.closeAllConnections();
      await new Promise((resolve) => failing.close(resolve));
    }
  });

  it('tries the failover region within the attempt, and reports the primary', async () => {
    const sm = await secretsManager({ auth: irsa(), failoverRegion: secondary, failoverEndpoint: aws.endpoint(secondary) });
    await sm.fetch({ ref: 'shop/one', spec: {} }, context('a'));
    const calls = delta({ operation: 'GetSecretValue' });
    aws.inject({ kind: 'status', status: 503 }, { times: 2, match: 'secretsmanager.GetSecretValue' });
    const err = await failure(sm.fetch({ ref: 'shop/one', spec: {} }, context('a')));
    expect({ code: err.code, transient: err.transient, calls: calls() }).toEqual({ code: 'Unavailable', transient: true, calls: 2 });
    expect(err.message).toContain(primary);
  });
});

describe('EKS Pod Identity through the SDK provider', () => {
  it("presents the pod's token, never the provider's own from its environment", async () => {
    aws.associatePodIdentity({ namespace: 'shop', serviceAccount: 'a', role: 'shop-a' });
    aws.associatePodIdentity({ namespace: 'shop', serviceAccount: 'b', role: 'shop-b' });
    const dir = await mkdtemp(join(tmpdir(), 'usp-aws-'));
    const own = aws.issuePodToken({ namespace: 'shop', serviceAccount: 'b', audience: 'pods.eks.amazonaws.com' });
    canaries.add(own.token);
    await writeFile(join(dir, 'token'), own.token);
    const saved = { file: process.env['AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE'], relative: process.env['AWS_CONTAINER_CREDENTIALS_RELATIVE_URI'] };
    process.env['AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE'] = join(dir, 'token');
    process.env['AWS_CONTAINER_CREDENTIALS_RELATIVE_URI'] = '/v2/credentials/provider-own';
    try {
      const sm = await secretsManager({ auth: { method: 'pod-identity', agentUrl: aws.podIdentityUrl } });
      const agent = delta({ service: 'pod-identity', status: 200 });
      expect(text(await sm.fetch({ ref: 'shop/one', spec: {} }, context('a')))).toBe(value);
      expect(agent()).toBe(1);
      expect(aws.calls.filter((c) => c.service === 'secretsmanager').at(-1)?.principal).toMatch(/assumed-role\/shop-a\//);
    } finally {
      for (const [name, was] of [['AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE', saved.file], ['AWS_CONTAINER_CREDENTIALS_RELATIVE_URI', saved.relative]] as const) {
        if (was === undefined) delete process.env[name];
        else process.env[name] = was;
      }
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('failover and deadlines', () => {
  it('fails over when the primary cannot be reached', async () => {
    const sm = await secretsManager({ auth: irsa(), endpoint: `http://127.0.0.1:${closedPort}`, failoverRegion: secondary, failoverEndpoint: aws.endpoint(secondary) });
    expect(text(await sm.fetch({ ref: 'shop/one', spec: {} }, context('a')))).toBe(value);
  });

  it('fails over when the primary does not answer within the timeout', async () => {
    const sm = await secretsManager({ auth: irsa(), timeout: '700ms', failoverRegion: secondary, failoverEndpoint: aws.endpoint(secondary) });
    await sm.fetch({ ref: 'shop/one', spec: {} }, context('a'));
    const west = delta({ region: secondary, status: 200 });
    aws.inject({ kind: 'latency', ms: 1_500 }, { times: Infinity, match: `${primary}/` });
    try {
      expect(text(await sm.fetch({ ref: 'shop/one', spec: {} }, context('a')))).toBe(value);
    } finally {
      aws.faults.clear();
    }
    expect(west()).toBe(1);
  });

  it('stops at the Mount deadline without failing over', async () => {
    const sm = await secretsManager({ auth: irsa(), failoverRegion: secondary, failoverEndpoint: aws.endpoint(secondary) });
    await sm.fetch({ ref: 'shop/one', spec: {} }, context('a'));
    const west = delta({ region: secondary });
    aws.inject({ kind: 'latency', ms: 1_000 }, { times: Infinity, match: `${primary}/` });
    try {
      const err = await failure(sm.fetch({ ref: 'shop/one', spec: {} }, context('a', { signal: AbortSignal.timeout(200) })));
      expect(err.code).toBe('DeadlineExceeded');
      expect(err.transient).toBe(false);
    } finally {
      aws.faults.clear();
    }
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    expect(west()).toBe(0);
  });
});

describe('answers of the wrong shape', () => {
  it('are Unavailable and transient, naming the object and the shape only', async () => {
    const sm = await secretsManager({ auth: irsa() });
    aws.answerWith(() => ({}), { match: /secretsmanager\.GetSecretValue$/ });
    const empty = await failure(sm.fetch({ ref: 'shop/one', spec: {} }, context('a')));
    expect({ code: empty.code, transient: empty.transient, message: empty.message }).toEqual({
      code: 'Unavailable',
      transient: true,
      message: 'AWS Secrets Manager sent a malformed answer reading secret "shop/one" (it has neither a SecretString nor a SecretBinary)',
    });
    aws.answerWith((real) => ({ ...real, SecretString: undefined, SecretBinary: 12345 }), { match: /secretsmanager\.GetSecretValue$/ });
    const binary = await failure(sm.fetch({ ref: 'shop/one', spec: {} }, context('a')));
    expect({ code: binary.code, transient: binary.transient, message: binary.message }).toEqual({
      code: 'Unavailable',
      transient: true,
      message: 'AWS Secrets Manager sent a malformed answer reading secret "shop/one" (its SecretBinary is a number, not a base64 string)',
    });

    aws.defineRole({ name: 'shop-ssm', trust: [{ namespace: 'shop', serviceAccount: 'ssm' }], allow: ['/shop/*'] });
    const ssm = await awsParameterStoreBackend.create({ name: 'ssm', options: options({ auth: irsa() }), restrictsNamespaces: false }, { logger, baseDir: '.', now: Date.now });
    stores.push(ssm);
    aws.answerWith((real) => ({ Parameter: { ...(real['Parameter'] as object), Value: 12345 } }), { match: /AmazonSSM\.GetParameter$/ });
    const parameter = await failure(ssm.fetch({ ref: '/shop/one', spec: { recursive: false } }, context('ssm')));
    expect({ code: parameter.code, transient: parameter.transient, message: parameter.message }).toEqual({
      code: 'Unavailable',
      transient: true,
      message: 'AWS Systems Manager Parameter Store sent a malformed answer reading parameter "/shop/one" (its Value is a number, not a string)',
    });
    expect(text(await sm.fetch({ ref: 'shop/one', spec: {} }, context('a')))).toBe(value);
  });
});
