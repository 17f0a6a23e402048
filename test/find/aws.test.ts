/** find over AWS Secrets Manager (BatchGetSecretValue with Filters) and Parameter Store (GetParametersByPath): values come with the listing. */
import { status } from '@grpc/grpc-js';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { primary, providerConfig, awsMounts } from '../aws/fixture.js';
import { createCanaries } from '../helpers/canary.js';
import { startTestProvider, type TestProvider } from '../helpers/provider.js';
import { startAwsTestServer, type AwsTestServer } from '../servers/aws.js';

const canaries = createCanaries();
const secrets = Array.from({ length: 25 }, (_, i) => canaries.next(`aws-find-${i}`));
const hidden = canaries.next('aws-find-hidden');
const param = canaries.next('aws-find-param');
const deepParam = canaries.next('aws-find-deep');
const deniedName = 'hidden-5e7a';

let aws: AwsTestServer;
let p: TestProvider;
const helpers = awsMounts(canaries, () => ({ aws, p }));
const objects = (...entries: object[]) => stringify(entries);

beforeAll(async () => {
  aws = await startAwsTestServer({ regions: [primary, 'us-west-2'] });
  aws.defineRole({ name: 'shop-app', trust: [{ namespace: 'shop', serviceAccount: 'app' }], allow: ['shop/*', '/shop', '/shop/*'] });
  aws.defineRole({ name: 'shop-nolist', trust: [{ namespace: 'shop', serviceAccount: 'nolist' }], allow: ['shop/*'], list: false });
  secrets.forEach((value, i) => aws.putSecret(`shop/app-${String(i).padStart(2, '0')}`, value, { tags: { team: i < 2 ? 'pay' : 'web' } }));
  aws.putSecret(`shop/${deniedName}`, hidden, { tags: { team: 'pay' } });
  aws.putSecret('other/x', 'x', { tags: { team: 'pay' } });
  aws.putParameter('/shop/db-password', param, { type: 'SecureString' });
  aws.putParameter('/shop/eu/cache', deepParam);
  p = await startTestProvider({
    config: providerConfig(aws, `
  - name: sm-find
    backend: aws-secrets-manager
    region: ${primary}
    endpoint: ${aws.endpoint(primary)}
    cache: {ttl: 0}
    retry: {attempts: 1}
    auth: {method: irsa, stsEndpoint: "${aws.stsUrl}"}
    access:
      - deny: {refs: ["shop/${deniedName}*"]}`),
  });
}, 60_000);

afterAll(async () => {
  const metrics = await p.metrics.registry.metrics();
  const logs = p.logs.join('\n');
  await helpers.finish();
  canaries.expectNoneIn([metrics], 'metrics');
  expect(logs).not.toContain(deniedName);
  expect(metrics).not.toContain(deniedName);
});

describe('find over aws-secrets-manager', () => {
  it('mounts the secrets under a prefix from BatchGetSecretValue pages, with values and version ids, without reads', async () => {
    const pages = helpers.delta({ operation: 'BatchGetSecretValue' });
    const reads = helpers.delta({ operation: 'GetSecretValue' });
    const { files, versions } = await helpers.mount(objects({ name: 'app', store: 'sm-find', find: { prefix: 'shop/app-', limit: 50 }, mode: '0400' }));
    expect(files.size).toBe(25);
    expect(files.get('app/24')!.contents.toString()).toBe(secrets[24]);
    expect(files.get('app/24')!.mode).toBe(0o400);
    expect(versions.get('app/24')).toMatch(/^[0-9a-f-]{36}$/);
    expect(pages()).toBe(2);
    expect(reads()).toBe(0);
  });

  it('filters by tags and leaves out what the access rules deny', async () => {
    const { files } = await helpers.mount(objects({ name: 'pay', store: 'sm-find', find: { prefix: 'shop/', labels: { team: 'pay' } } }));
    expect([...files.keys()].sort()).toEqual(['pay/app-00', 'pay/app-01']);
  });

  it('shows a secret added or removed on the next Mount', async () => {
    const yaml = objects({ name: 'pay', store: 'sm-find', find: { prefix: 'shop/', labels: { team: 'pay' } } });
    aws.putSecret('shop/app-new', 'fresh', { tags: { team: 'pay' } });
    expect((await helpers.mount(yaml)).files.get('pay/app-new')!.contents.toString()).toBe('fresh');
    aws.deleteSecret('shop/app-new');
    expect((await helpers.mount(yaml)).files.has('pay/app-new')).toBe(false);
  });

  it('needs secretsmanager:ListSecrets', async () => {
    const err = await helpers.failMount(objects({ name: 'x', store: 'sm-find', find: { prefix: 'shop/' } }), { serviceAccount: 'nolist' });
    expect(err.code).toBe(status.PERMISSION_DENIED);
    expect(err.details).toContain('ListSecrets');
  });

  it('fails the Mount when page two fails', async () => {
    let calls = 0;
    aws.answerWith((real) => (++calls === 2 ? { SecretValues: 'not a list' } : real), { match: /BatchGetSecretValue/, times: 2 });
    const err = await helpers.failMount(objects({ name: 'app', store: 'sm-find', find: { prefix: 'shop/app-', limit: 50 } }));
    aws.clearAnswers();
    expect(err.code).toBe(status.UNAVAILABLE);
    expect(err.details).toContain('listing the secrets under "shop/app-"');
  });
});

describe('find over aws-parameter-store', () => {
  it('mounts the parameters under a path, decrypted, recursive on request, with versions', async () => {
    const byPath = helpers.delta({ operation: 'GetParametersByPath' });
    const flat = await helpers.mount(objects({ name: 'p', store: 'ssm', find: { prefix: '/shop/' } }));
    expect([...flat.files.keys()]).toEqual(['p/db-password']);
    expect(flat.files.get('p/db-password')!.contents.toString()).toBe(param);
    expect(flat.versions.get('p/db-password')).toBe('1');
    const deep = await helpers.mount(objects({ name: 'p', store: 'ssm', find: { prefix: '/shop/', recursive: true } }));
    expect([...deep.files.keys()].sort()).toEqual(['p/db-password', 'p/eu/cache']);
    expect(byPath()).toBe(2);
  });

  it('shows a parameter added or removed on the next Mount', async () => {
    const yaml = objects({ name: 'p', store: 'ssm', find: { prefix: '/shop/db-' } });
    aws.putParameter('/shop/db-user', 'u');
    expect((await helpers.mount(yaml)).files.get('p/user')!.contents.toString()).toBe('u');
    aws.deleteParameter('/shop/db-user');
    expect((await helpers.mount(yaml)).files.has('p/user')).toBe(false);
  });

  it('refuses labels: GetParametersByPath cannot filter by tags', async () => {
    const err = await helpers.failMount(objects({ name: 'p', store: 'ssm', find: { prefix: '/shop/', labels: { team: 'pay' } } }));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toContain('cannot filter by tags');
  });
});
