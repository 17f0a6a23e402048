import { rm, symlink, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCanaries } from '../helpers/canary.js';
import { driverRequest, fileMap } from '../helpers/driver-client.js';
import { startTestProvider, type TestProvider } from '../helpers/provider.js';
import { fileStore, providerConfigYaml, templatesYaml } from '../helpers/yaml.js';

const canaries = createCanaries();
const dbPassword = canaries.next('find-db');
const apiKey = canaries.next('find-api');
const nested = canaries.next('find-nested');
const denied = canaries.next('find-denied');
const outside = canaries.next('find-outside');
const deniedName = 'forbidden-name-7f3a';
const errors: string[] = [];

let p: TestProvider;

/** A class's objects as YAML; find objects have no ref, so the shared ObjectYaml type does not fit. */
const objects = (...entries: object[]) => stringify(entries);

beforeAll(async () => {
  p = await startTestProvider({
    config: providerConfigYaml({
      defaultStore: 'files',
      stores: [
        fileStore('files', '../secrets', {
          cache: { ttl: 0 },
          access: [{ allow: { refs: ['shop/**', 'rules/**'] } }, { deny: { refs: [`rules/${deniedName}*`] } }],
        }),
        fileStore('cached', '../secrets', { cache: { ttl: '1h' } }),
      ],
    }),
    files: {
      'secrets/shop/db.json': JSON.stringify({ password: dbPassword, user: 'shop' }),
      'secrets/shop/api-key': apiKey,
      'secrets/shop/deep/nested.txt': nested,
      'secrets/rules/ok': 'fine',
      [`secrets/rules/${deniedName}`]: denied,
      'outside/secret': outside,
    },
  });
  await symlink(join(p.dir, 'outside/secret'), join(p.dir, 'secrets/shop/escape'));
  await symlink(join(p.dir, 'secrets/shop/api-key'), join(p.dir, 'secrets/shop/inside-link'));
  await mkdir(join(p.dir, 'secrets/shop/..2026_01_01'));
});

afterAll(async () => {
  const metrics = await p.metrics.registry.metrics();
  await p.stop();
  canaries.expectNoneIn(p.logs, 'provider logs');
  canaries.expectNoneIn(errors, 'gRPC error messages');
  canaries.expectNoneIn([metrics], 'metrics');
  expect(p.logs.join('\n')).not.toContain(deniedName);
  expect(errors.join('\n')).not.toContain(deniedName);
  expect(metrics).not.toContain(deniedName);
});

async function failMount(yaml: string, extra: Parameters<typeof driverRequest>[1] = {}) {
  const err = await p.client.mountError(driverRequest(yaml, extra));
  errors.push(err.details);
  return err;
}

describe('find over a file store', () => {
  it('mounts one file per file under the prefix, with its mode and its own version, and no link out of the root', async () => {
    const reply = await p.client.mount(driverRequest(objects({ name: 'app', find: { prefix: 'shop/' }, mode: '0400' })));
    const files = fileMap(reply);
    expect([...files.keys()].sort()).toEqual(['app/api-key', 'app/db.json', 'app/inside-link']);
    expect(files.get('app/api-key')!.contents.toString()).toBe(apiKey);
    expect(files.get('app/api-key')!.mode).toBe(0o400);
    const ids = reply.objectVersion.map((v) => v.id).sort();
    expect(ids).toEqual(['app/api-key', 'app/db.json', 'app/inside-link']);
    const versions = new Map(reply.objectVersion.map((v) => [v.id, v.version]));
    expect(versions.get('app/api-key')).not.toBe(versions.get('app/db.json'));
  });

  it('recurses on request and applies key to each secret found', async () => {
    const reply = await p.client.mount(driverRequest(objects({ name: 'all', find: { prefix: 'shop/', recursive: true } })));
    expect([...fileMap(reply).keys()].sort()).toEqual(['all/api-key', 'all/db.json', 'all/deep/nested.txt', 'all/inside-link']);
    const keyed = await p.client.mount(driverRequest(objects({ name: 'db', find: { prefix: 'shop/db' }, key: 'password' })));
    expect(fileMap(keyed).get('db/.json')!.contents.toString()).toBe(dbPassword);
  });

  it('shows a secret added or removed on the next Mount', async () => {
    const request = driverRequest(objects({ name: 'app', find: { prefix: 'shop/' } }));
    await p.write('secrets/shop/added', 'new');
    expect(fileMap(await p.client.mount(request)).get('app/added')!.contents.toString()).toBe('new');
    await rm(join(p.dir, 'secrets/shop/added'));
    expect(fileMap(await p.client.mount(request)).has('app/added')).toBe(false);
  });

  it('caches the listing per identity with the store TTL', async () => {
    const request = driverRequest(objects({ name: 'app', store: 'cached', find: { prefix: 'rules/' } }));
    const first = [...fileMap(await p.client.mount(request)).keys()].sort();
    await p.write('secrets/rules/later', 'later');
    expect([...fileMap(await p.client.mount(request)).keys()].sort()).toEqual(first);
    await rm(join(p.dir, 'secrets/rules/later'));
  });

  it('leaves out found refs the access rules deny, counting them without naming them', async () => {
    const reply = await p.client.mount(driverRequest(objects({ name: 'r', find: { prefix: 'rules/' } })));
    expect([...fileMap(reply).keys()]).toEqual(['r/ok']);
    expect(p.logs.some((l) => l.includes('"findExcluded":1'))).toBe(true);
    expect(await p.metrics.registry.metrics()).toMatch(/usp_find_refs_excluded_total\{store="files"\} [1-9]/);
  });

  it('refuses a prefix no allow rule could match before listing', async () => {
    const err = await failMount(objects({ name: 'x', find: { prefix: 'other/' } }));
    expect(err.details).toContain('no access rule allows any ref under this prefix');
  });

  it('fails with the count when more secrets match than the limit', async () => {
    const err = await failMount(objects({ name: 'x', find: { prefix: 'shop/', recursive: true, limit: 2 } }));
    expect(err.details).toContain('found 4 secrets, more than the limit of 2');
  });

  it('lets templates iterate over a found set', async () => {
    const reply = await p.client.mount(
      driverRequest(objects({ name: 'set', find: { prefix: 'rules/' }, mount: false }), {
        parameters: { templates: templatesYaml([{ name: 'index.txt', template: '{% for f in objects["set"] %}{{ f[0] }}={{ f[1] }};{% endfor %}' }]) },
      }),
    );
    expect(fileMap(reply).get('index.txt')!.contents.toString()).toBe('ok=fine;');
  });

  it('refuses found names that differ only in case, and names that are not volume paths', async () => {
    await p.write('secrets/shop/case/Token', 'a');
    await p.write('secrets/shop/case/token', 'b');
    const err = await failMount(objects({ name: 'c', find: { prefix: 'shop/case/' } }));
    expect(err.details).toContain('differ only in case');
    await rm(join(p.dir, 'secrets/shop/case'), { recursive: true });
  });
});
