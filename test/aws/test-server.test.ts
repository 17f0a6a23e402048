import { BatchGetSecretValueCommand, DescribeSecretCommand, GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { AssumeRoleWithWebIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAwsTestServer, type AwsTestServer } from '../servers/aws.js';
import { primary, secondary } from './fixture.js';

/** The test server must reject what AWS rejects, or the backend tests would prove nothing. */
let aws: AwsTestServer;
let keys: { accessKeyId: string; secretAccessKey: string };

beforeAll(async () => {
  aws = await startAwsTestServer({ regions: [primary, secondary] });
  aws.defineRole({ name: 'shop-app', trust: [{ namespace: 'shop', serviceAccount: 'app' }], allow: ['shop/*'] });
  keys = aws.createAccessKey({ user: 'ci', allow: ['shop/*', '/shop/*'] });
  aws.putSecret('shop/api', 'value');
  aws.putParameter('/shop/p', 'parameter');
});

afterAll(async () => {
  await aws.close();
});

type Credentials = { accessKeyId: string; secretAccessKey: string; sessionToken?: string };

function secretsManager(credentials: Credentials = keys, region = primary) {
  return new SecretsManagerClient({ region, endpoint: aws.endpoint(region), credentials, maxAttempts: 1 });
}

/** Changes the request after the SDK signed it, as a forger (or a broken proxy) would. */
function tamperAfterSigning(client: SecretsManagerClient, tamper: (request: { headers: Record<string, string>; body?: unknown }) => void) {
  type Middleware = Parameters<typeof client.middlewareStack.addRelativeTo>[0];
  const middleware = ((next: (args: { request: unknown }) => Promise<unknown>) => async (args: { request: unknown }) => {
    tamper(args.request as { headers: Record<string, string>; body?: unknown });
    return next(args);
  }) as unknown as Middleware;
  client.middlewareStack.addRelativeTo(
    middleware,
    { relation: 'after', toMiddleware: 'httpSigningMiddleware', name: 'tamper' },
  );
  return client;
}

async function errorOf(promise: Promise<unknown>): Promise<{ name: string; status?: number }> {
  try {
    await promise;
  } catch (err) {
    const e = err as { name: string; $metadata?: { httpStatusCode?: number } };
    return { name: e.name, ...(e.$metadata?.httpStatusCode !== undefined ? { status: e.$metadata.httpStatusCode } : {}) };
  }
  throw new Error('expected the call to fail');
}

describe('the AWS test server', () => {
  it('answers correctly signed JSON 1.1 requests', async () => {
    const out = await secretsManager().send(new GetSecretValueCommand({ SecretId: 'shop/api' }));
    expect(out.SecretString).toBe('value');
    expect(out.VersionStages).toEqual(['AWSCURRENT']);
    const described = await secretsManager().send(new DescribeSecretCommand({ SecretId: 'shop/api' }));
    expect(Object.values(described.VersionIdsToStages ?? {})).toEqual([['AWSCURRENT']]);
    const batch = await secretsManager().send(new BatchGetSecretValueCommand({ SecretIdList: ['shop/api', 'shop/none'] }));
    expect(batch.SecretValues?.map((v) => v.Name)).toEqual(['shop/api']);
    expect(batch.Errors?.[0]).toMatchObject({ SecretId: 'shop/none', ErrorCode: 'ResourceNotFoundException' });
    const ssm = new SSMClient({ region: primary, endpoint: aws.endpoint(primary), credentials: keys, maxAttempts: 1 });
    expect((await ssm.send(new GetParameterCommand({ Name: '/shop/p' }))).Parameter?.Value).toBe('parameter');
  });

  it('rejects a forged signature with InvalidSignatureException', async () => {
    const client = tamperAfterSigning(secretsManager(), (request) => {
      const auth = request.headers['authorization']!;
      const last = auth.at(-1) === '0' ? '1' : '0';
      request.headers['authorization'] = `${auth.slice(0, -1)}${last}`;
    });
    expect(await errorOf(client.send(new GetSecretValueCommand({ SecretId: 'shop/api' })))).toEqual({ name: 'InvalidSignatureException', status: 400 });
  });

  it('rejects a body changed after signing', async () => {
    const client = tamperAfterSigning(secretsManager(), (request) => {
      request.body = JSON.stringify({ SecretId: 'shop/other' });
      request.headers['content-length'] = String(Buffer.byteLength(request.body as string));
    });
    expect((await errorOf(client.send(new GetSecretValueCommand({ SecretId: 'shop/api' })))).name).toBe('InvalidSignatureException');
  });

  it('rejects a signature scoped to another region', async () => {
    const client = new SecretsManagerClient({ region: secondary, endpoint: aws.endpoint(primary), credentials: keys, maxAttempts: 1 });
    expect((await errorOf(client.send(new GetSecretValueCommand({ SecretId: 'shop/api' })))).name).toBe('InvalidSignatureException');
  });

  it('rejects the wrong secret key, an unknown key and a missing signature', async () => {
    const wrongSecret = secretsManager({ accessKeyId: keys.accessKeyId, secretAccessKey: `${keys.secretAccessKey}x` });
    expect((await errorOf(wrongSecret.send(new GetSecretValueCommand({ SecretId: 'shop/api' })))).name).toBe('InvalidSignatureException');
    const unknown = secretsManager({ accessKeyId: 'AKIAUNKNOWN000000000', secretAccessKey: 'x'.repeat(40) });
    expect((await errorOf(unknown.send(new GetSecretValueCommand({ SecretId: 'shop/api' })))).name).toBe('UnrecognizedClientException');
    const unsigned = tamperAfterSigning(secretsManager(), (request) => {
      delete request.headers['authorization'];
    });
    expect((await errorOf(unsigned.send(new GetSecretValueCommand({ SecretId: 'shop/api' })))).name).toBe('MissingAuthenticationTokenException');
  });

  it('issues temporary credentials to trusted pod tokens only, and expires them', async () => {
    const sts = new STSClient({ region: primary, endpoint: aws.stsUrl, maxAttempts: 1 });
    const assume = (token: string, role = 'shop-app') =>
      sts.send(new AssumeRoleWithWebIdentityCommand({ RoleArn: aws.roleArn(role), RoleSessionName: 'shop.app', WebIdentityToken: token }));
    const good = aws.issuePodToken({ namespace: 'shop', serviceAccount: 'app', audience: 'sts.amazonaws.com' }).token;
    const out = await assume(good);
    expect(out.Credentials?.AccessKeyId).toMatch(/^ASIA/);
    expect(out.AssumedRoleUser?.Arn).toBe('arn:aws:sts::123456789012:assumed-role/shop-app/shop.app');
    expect(out.Credentials?.Expiration?.getTime()).toBeGreaterThan(Date.now());

    const wrongAudience = aws.issuePodToken({ namespace: 'shop', serviceAccount: 'app', audience: 'vault' }).token;
    expect(await errorOf(assume(wrongAudience))).toEqual({ name: 'InvalidIdentityTokenException', status: 400 });
    const untrusted = aws.issuePodToken({ namespace: 'shop', serviceAccount: 'intruder', audience: 'sts.amazonaws.com' }).token;
    expect(await errorOf(assume(untrusted))).toEqual({ name: 'AccessDenied', status: 403 });
    const forged = `${good.slice(0, -2)}xx`;
    expect((await errorOf(assume(forged))).name).toBe('InvalidIdentityTokenException');
    const expired = aws.issuePodToken({ namespace: 'shop', serviceAccount: 'app', audience: 'sts.amazonaws.com', ttlSeconds: -10 }).token;
    expect((await errorOf(assume(expired))).name).toBe('ExpiredTokenException');

    const session = { accessKeyId: out.Credentials!.AccessKeyId!, secretAccessKey: out.Credentials!.SecretAccessKey!, sessionToken: out.Credentials!.SessionToken! };
    expect((await secretsManager(session).send(new GetSecretValueCommand({ SecretId: 'shop/api' }))).SecretString).toBe('value');
    const wrongSession = secretsManager({ ...session, sessionToken: `${session.sessionToken}x` });
    expect((await errorOf(wrongSession.send(new GetSecretValueCommand({ SecretId: 'shop/api' })))).name).toBe('UnrecognizedClientException');
    aws.advance(2 * 3600_000);
    expect((await errorOf(secretsManager(session).send(new GetSecretValueCommand({ SecretId: 'shop/api' })))).name).toBe('ExpiredTokenException');
  });

  it('answers a chosen JSON 1.1 body in place of the real answer, for matching requests only', async () => {
    aws.answerWith((real) => ({ ...real, SecretString: 7 }), { times: 2, match: `${secondary}/secretsmanager.GetSecretValue` });
    expect((await secretsManager().send(new GetSecretValueCommand({ SecretId: 'shop/api' }))).SecretString).toBe('value');
    for (let i = 0; i < 2; i += 1) {
      const out = await secretsManager(keys, secondary).send(new GetSecretValueCommand({ SecretId: 'shop/api' }));
      expect({ string: out.SecretString as unknown, name: out.Name }).toEqual({ string: 7, name: 'shop/api' });
    }
    expect((await secretsManager(keys, secondary).send(new GetSecretValueCommand({ SecretId: 'shop/api' }))).SecretString).toBe('value');
    // Only answers the server would have given: a refused request keeps its error.
    aws.answerWith(() => ({}), { match: 'secretsmanager.GetSecretValue' });
    expect((await errorOf(secretsManager().send(new GetSecretValueCommand({ SecretId: 'other/x' })))).name).toBe('AccessDeniedException');
    aws.clearAnswers();
    expect((await secretsManager().send(new GetSecretValueCommand({ SecretId: 'shop/api' }))).SecretString).toBe('value');
  });

  it('counts calls per operation and region, and injects faults per region', async () => {
    const before = aws.count({ operation: 'GetSecretValue', region: secondary });
    aws.inject({ kind: 'status', status: 400 }, { match: `${secondary}/` });
    expect((await errorOf(secretsManager(keys, secondary).send(new GetSecretValueCommand({ SecretId: 'shop/api' })))).name).toBe('ThrottlingException');
    aws.inject({ kind: 'status', status: 500 }, { match: `${secondary}/` });
    expect(await errorOf(secretsManager(keys, secondary).send(new GetSecretValueCommand({ SecretId: 'shop/api' })))).toEqual({ name: 'InternalServiceError', status: 500 });
    expect((await secretsManager(keys, secondary).send(new GetSecretValueCommand({ SecretId: 'shop/api' }))).SecretString).toBe('value');
    expect(aws.count({ operation: 'GetSecretValue', region: secondary }) - before).toBe(3);
    // Injected statuses are recorded as the AWS error they stand for.
    expect(aws.calls.filter((c) => c.region === secondary && c.operation === 'GetSecretValue').slice(-3).map((c) => c.error)).toEqual([
      'ThrottlingException',
      'InternalServiceError',
      undefined,
    ]);
  });
});
