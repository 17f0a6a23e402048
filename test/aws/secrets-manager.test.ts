import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCanaries } from '../helpers/canary.js';
import { startTestProvider, type TestProvider } from '../helpers/provider.js';
import { startAwsTestServer, type AwsTestServer } from '../servers/aws.js';
import { awsMounts, primary, providerConfig, secondary, singleAttemptStore } from './fixture.js';

const canaries = createCanaries();
const password = canaries.next('db-password');
const apiKey = canaries.next('api');
const liveKey = canaries.next('live');
const binary = Buffer.from(Array.from({ length: 256 }, (_, i) => 255 - i));
const oldValue = canaries.next('old');
const newValue = canaries.next('new');
const pendingValue = canaries.next('pending');
const otherValue = canaries.next('other');
/** Put in the wrong-shape answers: neither it nor a secret value may reach a message. */
const bodyMarker = canaries.next('answer-body');

let aws: AwsTestServer;
let p: TestProvider;
const helpers = awsMounts(canaries, () => ({ aws, p }));
const { mount, failMount, delta } = helpers;
let versions: { old: string; current: string; pending: string; api: string };
let apiArn: string;
let staticKeys: { accessKeyId: string; secretAccessKey: string };

beforeAll(async () => {
  aws = await startAwsTestServer({ regions: [primary, secondary] });
  aws.defineRole({ name: 'shop-app', trust: [{ namespace: 'shop', serviceAccount: 'app' }], allow: ['shop/*'] });
  aws.defineRole({ name: 'shop-worker', trust: [{ namespace: 'shop', serviceAccount: 'worker' }], allow: ['shop/api'], batch: false });
  for (const sa of ['burst', 'x', 'y']) aws.defineRole({ name: `shop-${sa}`, trust: [{ namespace: 'shop', serviceAccount: sa }], allow: ['shop/*'] });
  aws.defineRole({ name: 'other-app', trust: [{ namespace: 'other', serviceAccount: 'app' }], allow: ['other/*'] });
  aws.associatePodIdentity({ namespace: 'shop', serviceAccount: 'app', role: 'shop-app' });
  staticKeys = aws.createAccessKey({ user: 'ci', allow: ['shop/api'] });
  aws.putSecret('shop/db', JSON.stringify({ username: 'shop', password, keys: { live: liveKey, rotated: 3 } }));
  const api = aws.putSecret('shop/api', apiKey);
  apiArn = api.arn();
  aws.putSecret('shop/cert', binary);
  const old = aws.putSecret('shop/rotating', oldValue);
  const current = aws.putSecret('shop/rotating', newValue);
  const pending = aws.putSecret('shop/rotating', pendingValue, { stages: ['AWSPENDING'] });
  aws.putSecret('shop/kms', canaries.next('kms'), { kmsDenied: true });
  aws.putSecret('other/secret', otherValue);
  versions = { old: old.versionId, current: current.versionId, pending: pending.versionId, api: api.versionId };
  // sm-shape: one attempt per Mount (so each case is one call per region), failover on, and a
  // breaker that failing many calls in a row does not open.
  const shapeStore = singleAttemptStore(aws, 'sm-shape', 'aws-secrets-manager');
  p = await startTestProvider({ config: providerConfig(aws, shapeStore) });
});

afterAll(() => helpers.finish());

describe('aws-secrets-manager through the Mount socket', () => {
  it('mounts a string, a binary and fields of a JSON secret with one BatchGetSecretValue (IRSA)', async () => {
    const batch = delta({ operation: 'BatchGetSecretValue', region: primary, status: 200 });
    const single = delta({ operation: 'GetSecretValue' });
    const { files, versions: objectVersions } = await mount(`
- {name: api, ref: shop/api}
- {name: cert.der, ref: shop/cert}
- {name: db/password, ref: shop/db, key: password}
- {name: keys.json, ref: shop/db, select: keys}
- {name: live, ref: shop/db, select: keys.live}
`);
    expect(files.get('api')?.contents.toString()).toBe(apiKey);
    expect(files.get('cert.der')?.contents.equals(binary)).toBe(true);
    expect(files.get('db/password')?.contents.toString()).toBe(password);
    expect(JSON.parse(files.get('keys.json')!.contents.toString())).toEqual({ live: liveKey, rotated: 3 });
    expect(files.get('live')?.contents.toString()).toBe(liveKey);
    expect(objectVersions.get('api')).toBe(versions.api);
    expect(batch()).toBe(1);
    expect(single()).toBe(0);
  });

  it('reads pinned versions and stages with GetSecretValue', async () => {
    const single = delta({ operation: 'GetSecretValue', status: 200 });
    const { files, versions: objectVersions } = await mount(`
- {name: old, ref: shop/rotating, version: "${versions.old}"}
- {name: previous, ref: shop/rotating, versionStage: AWSPREVIOUS}
- {name: pending, ref: shop/rotating, versionStage: AWSPENDING}
- {name: current, ref: shop/rotating}
`);
    expect(files.get('old')?.contents.toString()).toBe(oldValue);
    expect(files.get('previous')?.contents.toString()).toBe(oldValue);
    expect(files.get('pending')?.contents.toString()).toBe(pendingValue);
    expect(files.get('current')?.contents.toString()).toBe(newValue);
    expect(objectVersions.get('old')).toBe(versions.old);
    expect(objectVersions.get('pending')).toBe(versions.pending);
    expect(objectVersions.get('current')).toBe(versions.current);
    expect(single()).toBe(4);
  });

  it('reads a secret by ARN', async () => {
    const { files } = await mount(`- {name: api, ref: "${apiArn}"}`);
    expect(files.get('api')?.contents.toString()).toBe(apiKey);
  });

  it('authenticates through the EKS Pod Identity agent', async () => {
    const agent = delta({ service: 'pod-identity', status: 200 });
    const sts = delta({ service: 'sts' });
    const { files } = await mount(`- {name: api, store: sm-pod, ref: shop/api}`);
    expect(files.get('api')?.contents.toString()).toBe(apiKey);
    await mount(`- {name: api, store: sm-pod, ref: shop/api}`);
    expect(agent()).toBe(1);
    expect(sts()).toBe(0);
    const last = aws.calls.filter((c) => c.service === 'secretsmanager').at(-1);
    expect(last?.principal).toMatch(/assumed-role\/shop-app\/eks-test-shop-app$/);
  });

  it('signs with static keys from nodePublishSecretRef where the store allows them', async () => {
    const secrets = { awsAccessKeyId: staticKeys.accessKeyId, awsSecretAccessKey: staticKeys.secretAccessKey };
    const { files } = await mount(`- {name: api, store: sm-static, ref: shop/api}`, { secrets });
    expect(files.get('api')?.contents.toString()).toBe(apiKey);
    expect(aws.calls.filter((c) => c.service === 'secretsmanager').at(-1)?.principal).toBe('arn:aws:iam::123456789012:user/ci');
    const missing = await failMount(`- {name: api, store: sm-static, ref: shop/api}`);
    expect(missing.code).toBe(status.INVALID_ARGUMENT);
    expect(missing.details).toContain('awsAccessKeyId');
  });

  it('maps AWS errors to precise causes naming secret, region and role', async () => {
    const notFound = await failMount(`- {name: x, ref: shop/missing}`);
    expect(notFound.code).toBe(status.NOT_FOUND);
    expect(notFound.details).toContain('"shop/missing"');
    expect(notFound.details).toContain('ResourceNotFoundException');
    expect(notFound.details).toContain(primary);

    const denied = await failMount(`- {name: x, ref: other/secret}`);
    expect(denied.code).toBe(status.PERMISSION_DENIED);
    expect(denied.details).toContain('AccessDeniedException');
    expect(denied.details).toContain('arn:aws:iam::123456789012:role/shop-app');
    expect(denied.details).toContain('"other/secret"');
    expect(denied.details).toContain(primary);

    const kms = await failMount(`- {name: x, ref: shop/kms}`);
    expect(kms.code).toBe(status.PERMISSION_DENIED);
    expect(kms.details).toContain('DecryptionFailure');

    const stage = await failMount(`- {name: x, ref: shop/api, versionStage: NOPE}`);
    expect(stage.code).toBe(status.NOT_FOUND);
  });

  it('reports each object of a batch with its own cause', async () => {
    const err = await failMount(`
- {name: api, ref: shop/api}
- {name: gone, ref: shop/gone}
`);
    expect(err.code).toBe(status.NOT_FOUND);
    expect(err.details).toContain('"shop/gone"');
    expect(err.details).not.toContain('more objects failed');
  });

  it('falls back to GetSecretValue when the role may not BatchGetSecretValue', async () => {
    const refused = delta({ operation: 'BatchGetSecretValue', error: 'AccessDeniedException' });
    const single = delta({ operation: 'GetSecretValue' });
    const err = await failMount(
      `
- {name: api, ref: shop/api}
- {name: db, ref: shop/db, key: password}
`,
      { serviceAccount: 'worker' },
    );
    // The role may read shop/api only: the object it may not read fails alone, with its own cause.
    expect(err.code).toBe(status.PERMISSION_DENIED);
    expect(err.details).toContain('"shop/db"');
    expect(refused()).toBe(1);
    expect(single()).toBe(2);
  });

  it('rejects schema problems in backend fields', async () => {
    const err = await failMount(`- {name: x, ref: shop/api, versionStag: AWSCURRENT}`);
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toContain('objects[0].versionStag: unknown field');
  });
});

describe('failover and throttling', () => {
  it('reads from the failover region when the primary answers 5xx', async () => {
    const east = delta({ region: primary, error: 'InternalServiceError' });
    const west = delta({ region: secondary, status: 200 });
    aws.inject({ kind: 'status', status: 500 }, { times: Infinity, match: `${primary}/` });
    try {
      const { files } = await mount(`
- {name: api, ref: shop/api}
- {name: db, ref: shop/db, key: password}
- {name: arn, ref: "${apiArn}", version: "${versions.api}"}
`);
      expect(files.get('api')?.contents.toString()).toBe(apiKey);
      expect(files.get('db')?.contents.toString()).toBe(password);
      expect(files.get('arn')?.contents.toString()).toBe(apiKey);
    } finally {
      aws.faults.clear();
    }
    expect(east()).toBeGreaterThan(0);
    expect(west()).toBe(2);
    expect(p.logs.some((l) => l.includes('reading from the failover region'))).toBe(true);
  });

  it('does not fail over on 404 or 403', async () => {
    const west = delta({ region: secondary });
    expect((await failMount(`- {name: x, ref: shop/missing}`)).code).toBe(status.NOT_FOUND);
    expect((await failMount(`- {name: x, ref: other/secret}`)).code).toBe(status.PERMISSION_DENIED);
    expect(west()).toBe(0);
  });

  it("reports the primary's cause when both regions fail", async () => {
    aws.inject({ kind: 'status', status: 500 }, { times: Infinity, match: `${primary}/` });
    aws.inject({ kind: 'status', status: 429 }, { times: Infinity, match: `${secondary}/` });
    try {
      const err = await failMount(`- {name: api, ref: shop/api}`);
      expect(err.code).toBe(status.UNAVAILABLE);
      expect(err.details).toContain('InternalServiceError');
      expect(err.details).toContain(primary);
      expect(err.details).not.toMatch(/all regions/i);
    } finally {
      aws.faults.clear();
    }
  });

  it('retries throttling within the deadline: the store guard tries again, the SDK does not', async () => {
    const throttled = { east: delta({ region: primary, error: 'ThrottlingException' }), west: delta({ region: secondary, error: 'ThrottlingException' }) };
    const read = delta({ region: primary, operation: 'GetSecretValue', status: 200 });
    // The first attempt finds both regions throttled; the guard's second attempt reads the primary.
    aws.inject({ kind: 'status', status: 400 }, { times: 2, match: /secretsmanager\.GetSecretValue$/ });
    const { files } = await mount(`- {name: api, ref: shop/api}`);
    expect(files.get('api')?.contents.toString()).toBe(apiKey);
    expect({ east: throttled.east(), west: throttled.west(), read: read() }).toEqual({ east: 1, west: 1, read: 1 });
  });
});

describe('identities', () => {
  it('caches credentials per identity and never shares them between service accounts', async () => {
    const assume = delta({ service: 'sts', status: 200 });
    for (const serviceAccount of ['x', 'x', 'y', 'y', 'x']) await mount(`- {name: api, ref: shop/api}`, { serviceAccount });
    expect(assume()).toBe(2);
    const signed = aws.calls.filter((c) => c.service === 'secretsmanager' && c.status === 200).slice(-5);
    const x = 'arn:aws:sts::123456789012:assumed-role/shop-x/shop.x';
    const y = 'arn:aws:sts::123456789012:assumed-role/shop-y/shop.y';
    expect(signed.map((c) => c.principal)).toEqual([x, x, y, y, x]);
    const keyOf = (principal: string) => new Set(signed.filter((c) => c.principal === principal).map((c) => c.accessKeyId));
    expect(keyOf(x).size).toBe(1);
    expect(keyOf(y).size).toBe(1);
    expect([...keyOf(x)][0]).not.toBe([...keyOf(y)][0]);
  });

  it('lets concurrent Mounts of a new identity share one AssumeRoleWithWebIdentity', async () => {
    const assume = delta({ service: 'sts', status: 200 });
    const replies = await Promise.all(Array.from({ length: 4 }, () => mount(`- {name: api, ref: shop/api}`, { serviceAccount: 'burst' })));
    expect(replies.every((r) => r.files.get('api')?.contents.toString() === apiKey)).toBe(true);
    expect(assume()).toBe(1);
  });

  it('refuses a role outside the store pattern before calling STS', async () => {
    const sts = delta({ service: 'sts' });
    const err = await failMount(`- {name: api, ref: shop/api}`, { role: aws.roleArn('other-app') });
    expect(err.code).toBe(status.PERMISSION_DENIED);
    expect(err.details).toContain('not allowed');
    expect(sts()).toBe(0);
  });

  it('names the role when STS refuses a service account its trust policy does not list', async () => {
    const err = await failMount(`- {name: api, ref: shop/api}`, { serviceAccount: 'intruder', role: aws.roleArn('shop-app') });
    expect(err.code).toBe(status.PERMISSION_DENIED);
    expect(err.details).toContain('AssumeRoleWithWebIdentity');
    expect(err.details).toContain('arn:aws:iam::123456789012:role/shop-app');
  });

  it('drops credentials AWS says expired and assumes the role again', async () => {
    const assume = delta({ service: 'sts', status: 200 });
    aws.advance(2 * 3600_000);
    const { files } = await mount(`- {name: api, ref: shop/api}`);
    expect(files.get('api')?.contents.toString()).toBe(apiKey);
    expect(assume()).toBe(1);
    expect(aws.count({ error: 'ExpiredTokenException' })).toBeGreaterThan(0);
  });
});

type Answer = Record<string, unknown>;
const bothRegions = (operation: string) => new RegExp(`/secretsmanager\\.${operation}$`);
const primaryOnly = (operation: string) => new RegExp(`^${primary}/secretsmanager\\.${operation}$`);
/** The real answer without its secret value. */
const withoutValue = ({ SecretString: _s, SecretBinary: _b, ...rest }: Answer): Answer => rest;
/** Each entry of SecretValues changed by `change`. */
const eachValue = (change: (entry: Answer) => Answer) => (real: Answer) => ({ ...real, SecretValues: (real['SecretValues'] as Answer[]).map(change) });

describe('answers of the wrong shape', () => {
  async function withAnswer<T>(answer: (real: Answer) => unknown, match: RegExp, run: () => Promise<T>): Promise<T> {
    aws.answerWith(answer, { times: Infinity, match });
    try {
      return await run();
    } finally {
      aws.clearAnswers();
    }
  }

  function expectClean(details: string): void {
    for (const leak of [bodyMarker, apiKey, password, '"SecretString":', '{']) expect(details).not.toContain(leak);
  }

  it('refuses a GetSecretValue 200 of the wrong shape as Unavailable, after trying the failover region', async () => {
    const cases: Array<[answer: (real: Answer) => unknown, cause: string]> = [
      // A missing secret is a 400 ResourceNotFoundException: a 200 without a value is malformed, not NotFound.
      [withoutValue, 'it has neither a SecretString nor a SecretBinary'],
      [() => ({}), 'it has neither a SecretString nor a SecretBinary'],
      [(real) => ({ ...withoutValue(real), SecretBinary: 12345 }), 'its SecretBinary is a number, not a base64 string'],
      [(real) => ({ ...withoutValue(real), SecretBinary: { data: bodyMarker } }), 'its SecretBinary is an object, not a base64 string'],
      // The SDK would hand a list of numbers on as it is, and Buffer.from would mount it as bytes.
      [(real) => ({ ...withoutValue(real), SecretBinary: [1, 2, 3] }), 'its SecretBinary is a list, not a base64 string'],
      [(real) => ({ ...real, SecretString: 12345 }), 'its SecretString is a number, not a string'],
      [(real) => ({ ...real, SecretString: { value: bodyMarker } }), 'its SecretString is an object, not a string'],
      [(real) => ({ ...real, VersionId: 7 }), 'its VersionId is a number, not a string'],
      [(real) => ({ ...real, VersionStages: 'AWSCURRENT' }), 'its VersionStages is a string, not a list'],
      [(real) => ({ ...real, VersionStages: [bodyMarker, 1] }), 'its VersionStages holds a number, not a string'],
    ];
    for (const [answer, cause] of cases) {
      const calls = { east: delta({ region: primary, operation: 'GetSecretValue', status: 200 }), west: delta({ region: secondary, operation: 'GetSecretValue', status: 200 }) };
      const err = await withAnswer(answer, bothRegions('GetSecretValue'), () => failMount(`- {name: api, store: sm-shape, ref: shop/api}`));
      expect({ cause, code: err.code }).toEqual({ cause, code: status.UNAVAILABLE });
      expect(err.details).toContain(`AWS Secrets Manager sent a malformed answer reading secret "shop/api" (${cause})`);
      expectClean(err.details);
      expect({ cause, east: calls.east(), west: calls.west() }).toEqual({ cause, east: 1, west: 1 });
    }
    const { files } = await mount(`- {name: api, store: sm-shape, ref: shop/api}`);
    expect(files.get('api')?.contents.toString()).toBe(apiKey);
  });

  it('names the pinned version or stage of a malformed answer', async () => {
    const err = await withAnswer(withoutValue, bothRegions('GetSecretValue'), () =>
      failMount(`- {name: pending, store: sm-shape, ref: shop/rotating, versionStage: AWSPENDING}`),
    );
    expect(err.code).toBe(status.UNAVAILABLE);
    expect(err.details).toContain('malformed answer reading secret "shop/rotating" (stage AWSPENDING) (it has neither a SecretString nor a SecretBinary)');
  });

  it('reads from the failover region when the primary sends a malformed answer', async () => {
    const cases: Array<[operation: string, answer: (real: Answer) => unknown, objects: string]> = [
      ['GetSecretValue', withoutValue, `- {name: api, store: sm-shape, ref: shop/api}`],
      ['GetSecretValue', (real) => ({ ...real, SecretString: 12345 }), `- {name: api, store: sm-shape, ref: shop/api}`],
      ['BatchGetSecretValue', (real) => ({ ...real, SecretValues: { Name: 'shop/api' } }), `- {name: api, store: sm-shape, ref: shop/api}\n- {name: db, store: sm-shape, ref: shop/db, key: password}`],
    ];
    for (const [operation, answer, objects] of cases) {
      const west = delta({ region: secondary, operation, status: 200 });
      const single = delta({ operation: 'GetSecretValue' });
      const { files } = await withAnswer(answer, primaryOnly(operation), () => mount(objects));
      expect(files.get('api')?.contents.toString()).toBe(apiKey);
      expect({ operation, west: west() }).toEqual({ operation, west: 1 });
      if (operation === 'BatchGetSecretValue') {
        expect(files.get('db')?.contents.toString()).toBe(password);
        expect(single()).toBe(0);
      }
    }
  });

  it('reads from the failover region when the primary sends a 200 the SDK cannot parse', async () => {
    for (const [operation, objects] of [
      ['GetSecretValue', `- {name: api, store: sm-shape, ref: shop/api}`],
      ['BatchGetSecretValue', `- {name: api, store: sm-shape, ref: shop/api}\n- {name: db, store: sm-shape, ref: shop/db, key: password}`],
    ] as const) {
      const west = delta({ region: secondary, operation, status: 200 });
      aws.inject({ kind: 'truncated' }, { times: Infinity, match: primaryOnly(operation) });
      try {
        const { files } = await mount(objects);
        expect(files.get('api')?.contents.toString()).toBe(apiKey);
      } finally {
        aws.faults.clear();
      }
      expect({ operation, west: west() }).toEqual({ operation, west: 1 });
    }
  });

  it('retries a malformed answer as a transient failure', async () => {
    // Both regions once: the first attempt fails, the store's retry (store sm: 3 attempts) succeeds.
    aws.answerWith(withoutValue, { times: 2, match: bothRegions('GetSecretValue') });
    const calls = delta({ operation: 'GetSecretValue', status: 200 });
    try {
      const { files } = await mount(`- {name: api, ref: shop/api}`);
      expect(files.get('api')?.contents.toString()).toBe(apiKey);
    } finally {
      aws.clearAnswers();
    }
    expect(calls()).toBe(3);
  });

  it('fails every object of a BatchGetSecretValue answer that cannot be matched to the secrets', async () => {
    const cases: Array<[answer: (real: Answer) => unknown, cause: string]> = [
      [(real) => ({ ...real, SecretValues: { Name: 'shop/api', SecretString: bodyMarker } }), 'SecretValues is an object, not a list'],
      [(real) => ({ ...real, SecretValues: [bodyMarker] }), 'SecretValues holds a string, not an object'],
      [eachValue(({ Name: _n, ARN: _a, ...rest }) => rest), 'SecretValues holds an entry with neither a Name nor an ARN'],
      [eachValue((entry) => ({ ...entry, Name: 12345 })), 'the Name of an entry of SecretValues is a number, not a string'],
      [eachValue((entry) => ({ ...entry, ARN: [bodyMarker] })), 'the ARN of an entry of SecretValues is a list, not a string'],
      [(real) => ({ ...real, Errors: bodyMarker }), 'Errors is a string, not a list'],
      [(real) => ({ ...real, Errors: [{ ErrorCode: 'ResourceNotFoundException', Message: bodyMarker }] }), 'the SecretId of an entry of Errors is missing, not a string'],
      [(real) => ({ ...real, NextToken: 12345 }), 'NextToken is a number, not a string'],
    ];
    for (const [answer, cause] of cases) {
      const west = delta({ region: secondary, operation: 'BatchGetSecretValue', status: 200 });
      const single = delta({ operation: 'GetSecretValue' });
      const err = await withAnswer(answer, bothRegions('BatchGetSecretValue'), () =>
        failMount(`- {name: api, store: sm-shape, ref: shop/api}\n- {name: db, store: sm-shape, ref: shop/db, key: password}`),
      );
      expect({ cause, code: err.code }).toEqual({ cause, code: status.UNAVAILABLE });
      expect(err.details).toContain(`AWS Secrets Manager sent a malformed answer reading 2 secrets in ${primary} (${cause})`);
      expect(err.details).toContain('(and 1 more objects failed)');
      expectClean(err.details);
      expect({ cause, west: west(), single: single() }).toEqual({ cause, west: 1, single: 0 });
    }
  });

  it('fails only the object of a malformed BatchGetSecretValue entry', async () => {
    const objects = `
- {name: db, store: sm-shape, ref: shop/db, key: password}
- {name: api, store: sm-shape, ref: shop/api}
- {name: cert, store: sm-shape, ref: shop/cert}`;
    const cases: Array<[answer: (real: Answer) => unknown, secret: string, cause: string]> = [
      [eachValue((e) => (e['Name'] === 'shop/db' ? { ...e, SecretString: 12345 } : e)), 'shop/db', 'its SecretString is a number, not a string'],
      [eachValue((e) => (e['Name'] === 'shop/cert' ? { ...e, SecretBinary: [1, 2, 3] } : e)), 'shop/cert', 'its SecretBinary is a list, not a base64 string'],
      [eachValue((e) => (e['Name'] === 'shop/api' ? withoutValue(e) : e)), 'shop/api', 'it has neither a SecretString nor a SecretBinary'],
      [eachValue((e) => (e['Name'] === 'shop/db' ? { ...e, VersionStages: bodyMarker } : e)), 'shop/db', 'its VersionStages is a string, not a list'],
    ];
    for (const [answer, secret, cause] of cases) {
      const err = await withAnswer(answer, bothRegions('BatchGetSecretValue'), () => failMount(objects));
      expect({ cause, code: err.code }).toEqual({ cause, code: status.UNAVAILABLE });
      expect(err.details).toContain(`AWS Secrets Manager sent a malformed answer reading secret "${secret}" (${cause})`);
      expect(err.details).not.toContain('more objects failed');
      expectClean(err.details);
    }
    // An Errors entry naming its secret but of the wrong shape fails that secret alone.
    const err = await withAnswer(
      (real) => ({ ...real, Errors: (real['Errors'] as Answer[]).map((e) => ({ ...e, ErrorCode: 404, Message: bodyMarker })) }),
      bothRegions('BatchGetSecretValue'),
      () => failMount(`- {name: api, store: sm-shape, ref: shop/api}\n- {name: gone, store: sm-shape, ref: shop/gone}`),
    );
    expect(err.code).toBe(status.UNAVAILABLE);
    expect(err.details).toContain('AWS Secrets Manager sent a malformed answer reading secret "shop/gone" (its ErrorCode is a number, not a string)');
    expect(err.details).not.toContain('more objects failed');
    expectClean(err.details);
  });
});
