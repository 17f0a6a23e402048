import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCanaries } from '../helpers/canary.js';
import { startTestProvider, type TestProvider } from '../helpers/provider.js';
import { startAwsTestServer, type AwsTestServer } from '../servers/aws.js';
import { awsMounts, primary, providerConfig, secondary, singleAttemptStore } from './fixture.js';

const canaries = createCanaries();
const dbPassword = canaries.next('ssm-db');
const v1 = canaries.next('ssm-v1');
const v2 = canaries.next('ssm-v2');
const v3 = canaries.next('ssm-v3');
const many = Array.from({ length: 12 }, (_, i) => canaries.next(`many-${i}`));
const pathValues = { user: 'shop', password: canaries.next('path-pw'), nested: canaries.next('path-nested') };
const jsonParameter = JSON.stringify({ token: canaries.next('json-token'), port: 5432 });

let aws: AwsTestServer;
let p: TestProvider;
const helpers = awsMounts(canaries, () => ({ aws, p }));
const { mount, failMount, delta } = helpers;

beforeAll(async () => {
  aws = await startAwsTestServer({ regions: [primary, secondary] });
  aws.defineRole({ name: 'shop-app', trust: [{ namespace: 'shop', serviceAccount: 'app' }], allow: ['/shop/*', 'shop-plain'] });
  aws.defineRole({ name: 'shop-narrow', trust: [{ namespace: 'shop', serviceAccount: 'narrow' }], allow: ['/shop/config/*'] });
  aws.associatePodIdentity({ namespace: 'shop', serviceAccount: 'app', role: 'shop-app' });
  aws.putParameter('/shop/db/password', dbPassword, { type: 'SecureString' });
  aws.putParameter('/shop/config/json', jsonParameter);
  aws.putParameter('shop-plain', 'plain-value');
  aws.putParameter('/shop/rotating', v1, { labels: ['stable'] });
  aws.putParameter('/shop/rotating', v2, { labels: ['canary'] });
  aws.putParameter('/shop/rotating', v3);
  many.forEach((value, i) => aws.putParameter(`/shop/many/p${String(i).padStart(2, '0')}`, value));
  aws.putParameter('/shop/app/user', pathValues.user);
  aws.putParameter('/shop/app/password', pathValues.password, { type: 'SecureString' });
  aws.putParameter('/shop/app/deep/nested', pathValues.nested);
  aws.putParameter('/other/secret', canaries.next('other'));
  // ssm-shape: one call per object (a retry would read a batch's objects one by one), and failing
  // many calls in a row must not open the breaker the other tests rely on.
  const shapeStore =
    singleAttemptStore(aws, 'ssm-shape', 'aws-parameter-store', false) + singleAttemptStore(aws, 'ssm-failover', 'aws-parameter-store');
  p = await startTestProvider({ config: providerConfig(aws, shapeStore) });
});

afterAll(() => helpers.finish());

describe('aws-parameter-store through the Mount socket', () => {
  it('decrypts a SecureString and reports the parameter version', async () => {
    const single = delta({ operation: 'GetParameter', status: 200 });
    const { files, versions } = await mount(`- {name: db, store: ssm, ref: /shop/db/password}`);
    expect(files.get('db')?.contents.toString()).toBe(dbPassword);
    expect(versions.get('db')).toBe('1');
    expect(single()).toBe(1);
  });

  it('reads versions and labels, in the version field or as a ref selector', async () => {
    const { files, versions } = await mount(`
- {name: latest, store: ssm, ref: /shop/rotating}
- {name: first, store: ssm, ref: /shop/rotating, version: 1}
- {name: stable, store: ssm, ref: /shop/rotating, version: stable}
- {name: canary, store: ssm, ref: "/shop/rotating:canary"}
- {name: second, store: ssm, ref: "/shop/rotating:2"}
`);
    expect(files.get('latest')?.contents.toString()).toBe(v3);
    expect(files.get('first')?.contents.toString()).toBe(v1);
    expect(files.get('stable')?.contents.toString()).toBe(v1);
    expect(files.get('canary')?.contents.toString()).toBe(v2);
    expect(files.get('second')?.contents.toString()).toBe(v2);
    expect(versions.get('latest')).toBe('3');
    expect(versions.get('stable')).toBe('1');
    expect(versions.get('canary')).toBe('2');
  });

  it('batches 12 parameters into 2 GetParameters calls', async () => {
    const batch = delta({ operation: 'GetParameters', status: 200 });
    const single = delta({ operation: 'GetParameter' });
    const objects = many.map((_, i) => `- {name: "many/p${i}", store: ssm, ref: /shop/many/p${String(i).padStart(2, '0')}}`).join('\n');
    const { files } = await mount(objects);
    many.forEach((value, i) => expect(files.get(`many/p${i}`)?.contents.toString()).toBe(value));
    expect(batch()).toBe(2);
    expect(single()).toBe(0);
  });

  it('applies key and select to a JSON parameter, and reads names without a leading slash and ARNs', async () => {
    const arn = `arn:aws:ssm:${primary}:123456789012:parameter/shop/config/json`;
    const { files } = await mount(`
- {name: token, store: ssm, ref: /shop/config/json, key: token}
- {name: port, store: ssm, ref: /shop/config/json, select: port}
- {name: plain, store: ssm, ref: shop-plain}
- {name: by-arn, store: ssm-pod, ref: "${arn}"}
`);
    const parsed = JSON.parse(jsonParameter) as { token: string };
    expect(files.get('token')?.contents.toString()).toBe(parsed.token);
    expect(files.get('port')?.contents.toString()).toBe('5432');
    expect(files.get('plain')?.contents.toString()).toBe('plain-value');
    expect(files.get('by-arn')?.contents.toString()).toBe(jsonParameter);
  });

  it('mounts every parameter under a path with expand: keys, recursively when asked', async () => {
    const flat = await mount(`- {name: app, store: ssm, ref: /shop/app/, expand: keys}`);
    expect([...flat.files.keys()].sort()).toEqual(['app/password', 'app/user']);
    expect(flat.files.get('app/password')?.contents.toString()).toBe(pathValues.password);
    const deep = await mount(`- {name: app, store: ssm, ref: /shop/app/, expand: keys, recursive: true}`);
    expect([...deep.files.keys()].sort()).toEqual(['app/deep/nested', 'app/password', 'app/user']);
    expect(deep.files.get('app/deep/nested')?.contents.toString()).toBe(pathValues.nested);
  });

  it('follows NextToken and bounds the number of parameters under a path', async () => {
    const pages = delta({ operation: 'GetParametersByPath', status: 200 });
    const { files } = await mount(`- {name: many, store: ssm, ref: /shop/many/, expand: keys}`);
    expect(files.size).toBe(12);
    expect(pages()).toBe(2);
    for (let i = 0; i < 101; i += 1) aws.putParameter(`/shop/huge/p${i}`, 'x');
    const err = await failMount(`- {name: huge, store: ssm, ref: /shop/huge/, expand: keys}`);
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toContain('more than 100 parameters');
  });

  it('maps missing parameters, versions and denials to precise causes', async () => {
    const missing = await failMount(`- {name: x, store: ssm, ref: /shop/missing}`);
    expect(missing.code).toBe(status.NOT_FOUND);
    expect(missing.details).toContain('ParameterNotFound');
    const version = await failMount(`- {name: x, store: ssm, ref: /shop/rotating, version: 9}`);
    expect(version.code).toBe(status.NOT_FOUND);
    expect(version.details).toContain('ParameterVersionNotFound');
    const denied = await failMount(`- {name: x, store: ssm, ref: /other/secret}`);
    expect(denied.code).toBe(status.PERMISSION_DENIED);
    expect(denied.details).toContain('role/shop-app');
    expect(denied.details).toContain(primary);
    const badRef = await failMount(`- {name: x, store: ssm, ref: "/shop/rotating:1", version: 2}`);
    expect(badRef.code).toBe(status.INVALID_ARGUMENT);
  });

  it('gives each object its own cause when GetParameters is denied as a whole', async () => {
    const refused = delta({ operation: 'GetParameters', error: 'AccessDeniedException' });
    const err = await failMount(
      `
- {name: json, store: ssm, ref: /shop/config/json}
- {name: db, store: ssm, ref: /shop/db/password}
- {name: gone, store: ssm, ref: /shop/config/gone}
`,
      { serviceAccount: 'narrow' },
    );
    expect(refused()).toBe(1);
    expect(err.code).toBe(status.PERMISSION_DENIED);
    expect(err.details).toContain('"/shop/db/password"');
    expect(err.details).toContain('role/shop-narrow');
    expect(err.details).toContain('(and 1 more objects failed)');
  });

  it('reports missing names of a batch as NotFound without failing the others', async () => {
    const err = await failMount(`
- {name: ok, store: ssm, ref: /shop/config/json}
- {name: gone, store: ssm, ref: /shop/gone}
`);
    expect(err.code).toBe(status.NOT_FOUND);
    expect(err.details).toContain('"/shop/gone"');
    expect(err.details).not.toContain('more objects failed');
  });

  it('refuses 200 answers of the wrong shape from each SSM read as Unavailable, never mounting them', async () => {
    // The fault answers the real answer with its values as numbers, or a Parameters that is not a list.
    const cases: Array<[operation: string, objects: string, cause: string]> = [
      ['GetParameter', `- {name: db, store: ssm-shape, ref: /shop/db/password}`, 'malformed answer reading parameter "/shop/db/password" (its Value is a number, not a string)'],
      [
        'GetParameters',
        `- {name: db, store: ssm-shape, ref: /shop/db/password}\n- {name: plain, store: ssm-shape, ref: shop-plain}`,
        'malformed answer reading parameter "/shop/db/password" (its Value is a number, not a string)',
      ],
      [
        'GetParameters',
        `- {name: x, store: ssm-shape, ref: /shop/absent-1}\n- {name: y, store: ssm-shape, ref: /shop/absent-2}`,
        `malformed answer reading 2 parameters in ${primary} (Parameters is an object, not a list)`,
      ],
      [
        'GetParametersByPath',
        `- {name: app, store: ssm-shape, ref: /shop/app/, expand: keys}`,
        'malformed answer reading the parameters under "/shop/app/" (the Value of a parameter is a number, not a string)',
      ],
    ];
    for (const [operation, objects, cause] of cases) {
      aws.inject({ kind: 'malformed', shape: 'shape' }, { times: 1000, match: new RegExp(`AmazonSSM\\.${operation}$`) });
      try {
        const err = await failMount(objects);
        expect({ operation, code: err.code }).toEqual({ operation, code: status.UNAVAILABLE });
        expect(err.details).toContain(`AWS Systems Manager Parameter Store sent a ${cause}`);
      } finally {
        aws.faults.clear();
      }
    }
    const { files } = await mount(`- {name: db, store: ssm-shape, ref: /shop/db/password}`);
    expect(files.get('db')?.contents.toString()).toBe(dbPassword);
  });

  describe('a malformed answer is treated like a 5xx of its region', () => {
    type Answer = Record<string, unknown>;
    const marker = canaries.next('ssm-answer-body');
    const spoilParameter = (real: Answer) => ({ ...real, Parameter: { ...(real['Parameter'] as Answer), Value: 12345 } });
    const spoilEach = (real: Answer) => ({ ...real, Parameters: (real['Parameters'] as Answer[]).map((p) => ({ ...p, Value: 12345 })) });
    const cases: Array<[operation: string, answer: (real: Answer) => unknown, objects: string, cause: string]> = [
      ['GetParameter', spoilParameter, `- {name: db, store: ssm-failover, ref: /shop/db/password}`, 'reading parameter "/shop/db/password" (its Value is a number, not a string)'],
      ['GetParameter', () => ({}), `- {name: db, store: ssm-failover, ref: /shop/db/password}`, 'reading parameter "/shop/db/password" (the Parameter is missing, not an object)'],
      [
        'GetParameters',
        (real) => ({ ...real, Parameters: { Name: '/shop/db/password', Value: marker } }),
        `- {name: db, store: ssm-failover, ref: /shop/db/password}\n- {name: plain, store: ssm-failover, ref: shop-plain}`,
        `reading 2 parameters in ${primary} (Parameters is an object, not a list)`,
      ],
      [
        'GetParameters',
        (real) => ({ ...real, Parameters: (real['Parameters'] as Answer[]).map(({ Name: _n, ...p }) => p) }),
        `- {name: db, store: ssm-failover, ref: /shop/db/password}\n- {name: plain, store: ssm-failover, ref: shop-plain}`,
        `reading 2 parameters in ${primary} (Parameters holds an entry whose Name is missing, not a string)`,
      ],
      [
        'GetParametersByPath',
        spoilEach,
        `- {name: app, store: ssm-failover, ref: /shop/app/, expand: keys}`,
        'reading the parameters under "/shop/app/" (the Value of a parameter is a number, not a string)',
      ],
      [
        'GetParametersByPath',
        (real) => ({ ...real, NextToken: 12345 }),
        `- {name: app, store: ssm-failover, ref: /shop/app/, expand: keys}`,
        'reading the parameters under "/shop/app/" (NextToken is a number, not a string)',
      ],
    ];

    it.each(cases)('%s: reads from the failover region when the primary answers malformed (%#)', async (operation, answer, objects) => {
      const west = delta({ region: secondary, operation, status: 200 });
      aws.answerWith(answer, { times: Infinity, match: new RegExp(`^${primary}/AmazonSSM\\.${operation}$`) });
      try {
        const { files } = await mount(objects);
        if (operation === 'GetParametersByPath') expect(files.get('app/password')?.contents.toString()).toBe(pathValues.password);
        else expect(files.get('db')?.contents.toString()).toBe(dbPassword);
      } finally {
        aws.clearAnswers();
      }
      expect(west()).toBe(1);
      expect(p.logs.some((l) => l.includes('reading from the failover region'))).toBe(true);
    });

    it.each(cases)("%s: reports the primary's malformed answer when both regions send one (%#)", async (operation, answer, objects, cause) => {
      const east = delta({ region: primary, operation, status: 200 });
      const west = delta({ region: secondary, operation, status: 200 });
      const single = delta({ operation: 'GetParameter' });
      aws.answerWith(answer, { times: Infinity, match: new RegExp(`/AmazonSSM\\.${operation}$`) });
      let err: { code: number; details: string };
      try {
        err = await failMount(objects);
      } finally {
        aws.clearAnswers();
      }
      expect(err.code).toBe(status.UNAVAILABLE);
      expect(err.details).toContain(`AWS Systems Manager Parameter Store sent a malformed answer ${cause}`);
      for (const leak of [marker, dbPassword, pathValues.password, '12345', '{']) expect(err.details).not.toContain(leak);
      expect({ east: east(), west: west() }).toEqual({ east: 1, west: 1 });
      // A malformed batch fails its reads; it is not read again name by name.
      if (operation === 'GetParameters') expect(single()).toBe(0);
    });
  });

  it('fails over to the secondary region on 5xx', async () => {
    const west = delta({ region: secondary, operation: 'GetParameters', status: 200 });
    aws.inject({ kind: 'status', status: 500 }, { times: Infinity, match: `${primary}/` });
    try {
      const { files } = await mount(`
- {name: json, store: ssm, ref: /shop/config/json}
- {name: plain, store: ssm, ref: shop-plain}
`);
      expect(files.get('plain')?.contents.toString()).toBe('plain-value');
    } finally {
      aws.faults.clear();
    }
    expect(west()).toBe(1);
  });

  it('reads with EKS Pod Identity credentials', async () => {
    const { files } = await mount(`- {name: db, store: ssm-pod, ref: /shop/db/password}`);
    expect(files.get('db')?.contents.toString()).toBe(dbPassword);
    expect(aws.calls.filter((c) => c.service === 'ssm').at(-1)?.principal).toContain('assumed-role/shop-app/');
  });
});
