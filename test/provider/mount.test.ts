import { symlink, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCanaries } from '../helpers/canary.js';
import { createDriverClient, driverRequest, fileMap } from '../helpers/driver-client.js';
import { startTestProvider, type TestProvider } from '../helpers/provider.js';
import { fileStore, providerConfigYaml } from '../helpers/yaml.js';

const canaries = createCanaries();
const db = canaries.next('db');
const apiKey = canaries.next('api');
const nested = canaries.next('nested');
const jsonSecret = JSON.stringify({ username: 'app', password: db, deep: { api: { key: apiKey } }, list: [1, 2] });
const binary = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
const outside = canaries.next('outside');
const malformed = `{"password": "${canaries.next('malformed')}"`;
const errors: string[] = [];

let p: TestProvider;

const config = providerConfigYaml({
  defaultStore: 'files',
  stores: [
    fileStore('files', '../secrets', { cache: { ttl: 0 } }),
    fileStore('other', '../secrets', {
      access: [{ allow: { namespaces: ['shop'], refs: ['{namespace}/**'] } }, { deny: { serviceAccounts: ['intruder'] } }],
    }),
    fileStore('big', '../big', { maxBytes: 4 * 1024 * 1024 }),
  ],
});

beforeAll(async () => {
  p = await startTestProvider({
    config,
    files: {
      'secrets/shop/db.json': jsonSecret,
      'secrets/shop/password': db,
      'secrets/shop/nested/value': nested,
      'secrets/shop/binary.bin': binary,
      'secrets/shop/b64': Buffer.from(db).toString('base64'),
      'secrets/shop/hex': Buffer.from(apiKey).toString('hex'),
      'secrets/shop/malformed.json': malformed,
      'secrets/shop/not-base64': `${canaries.next('notb64')}!!`,
      'outside/secret': outside,
      'big/a': Buffer.alloc(3 * 1024 * 1024, 'a'),
      'big/b': Buffer.alloc(2 * 1024 * 1024, 'b'),
    },
  });
  await symlink(join(p.dir, 'outside/secret'), join(p.dir, 'secrets/shop/escape'));
  await mkdir(join(p.dir, 'secrets/shop/dir'));
});

afterAll(async () => {
  const metrics = await p.metrics.registry.metrics();
  await p.stop();
  canaries.expectNoneIn(p.logs, 'provider logs');
  canaries.expectNoneIn(errors, 'gRPC error messages');
  canaries.expectNoneIn([metrics], 'metrics');
});

async function failMount(objects: string, pod = {}) {
  const err = await p.client.mountError(driverRequest(objects, pod));
  errors.push(err.details);
  return err;
}

describe('Version', () => {
  it('answers like the driver expects', async () => {
    const v = await p.client.version();
    expect(v.version).toBe('v1alpha1');
    expect(v.runtimeName).toBe('universal-secrets-provider');
    expect(v.runtimeVersion).toMatch(/^\d+\.\d+\.\d+/);
  });
});

describe('Mount', () => {
  it('returns several objects with nested names, modes and one version per object', async () => {
    const reply = await p.client.mount(
      driverRequest(`
- name: db/password
  ref: shop/password
  mode: "0400"
- name: deep/er/value
  ref: shop/nested/value
  mode: 0440
- name: plain
  ref: shop/password
`),
    );
    const files = fileMap(reply);
    expect(files.get('db/password')?.contents.toString()).toBe(db);
    expect(files.get('db/password')?.mode).toBe(0o400);
    expect(files.get('deep/er/value')?.contents.toString()).toBe(nested);
    expect(files.get('deep/er/value')?.mode).toBe(0o440);
    expect(files.get('plain')?.mode).toBe(0o644);
    expect(reply.objectVersion.map((v) => v.id).sort()).toEqual(['db/password', 'deep/er/value', 'plain']);
    for (const v of reply.objectVersion) expect(v.version).toMatch(/^hmac-[\w-]{32}$/);
    expect(reply.error).toBeNull();
  });

  it('uses the driver permission as the default mode', async () => {
    const reply = await p.client.mount(driverRequest('- {name: a, ref: shop/password}', { permission: '288' }));
    expect(reply.files[0]!.mode).toBe(0o440);
  });

  it('picks a key, selects with JMESPath (non-strings as JSON) and decodes', async () => {
    const reply = await p.client.mount(
      driverRequest(`
- {name: user, ref: shop/db.json, key: username}
- {name: pw, ref: shop/db.json, key: password}
- {name: api, ref: shop/db.json, select: deep.api.key}
- {name: api.json, ref: shop/db.json, select: deep.api}
- {name: list, ref: shop/db.json, select: list}
- {name: from-b64, ref: shop/b64, decode: base64}
- {name: from-hex, ref: shop/hex, decode: hex}
`),
    );
    const files = fileMap(reply);
    expect(files.get('user')?.contents.toString()).toBe('app');
    expect(files.get('pw')?.contents.toString()).toBe(db);
    expect(files.get('api')?.contents.toString()).toBe(apiKey);
    expect(JSON.parse(files.get('api.json')!.contents.toString())).toEqual({ key: apiKey });
    expect(files.get('list')?.contents.toString()).toBe('[1,2]');
    expect(files.get('from-b64')?.contents.toString()).toBe(db);
    expect(files.get('from-hex')?.contents.toString()).toBe(apiKey);
  });

  it('expands a structured secret into one file per key', async () => {
    const reply = await p.client.mount(driverRequest('- {name: db, ref: shop/db.json, expand: keys, mode: "0440"}'));
    const files = fileMap(reply);
    expect([...files.keys()].sort()).toEqual(['db/deep', 'db/list', 'db/password', 'db/username']);
    expect(files.get('db/password')?.contents.toString()).toBe(db);
    expect(files.get('db/password')?.mode).toBe(0o440);
    expect(reply.objectVersion).toHaveLength(1);
  });

  it('keeps binary content byte-exact', async () => {
    const reply = await p.client.mount(driverRequest('- {name: bin, ref: shop/binary.bin}'));
    expect(Buffer.compare(reply.files[0]!.contents, binary)).toBe(0);
  });

  it('skips a missing optional object but fails on a missing required one', async () => {
    const reply = await p.client.mount(
      driverRequest('- {name: a, ref: shop/password}\n- {name: b, ref: shop/missing, optional: true}'),
    );
    expect(reply.files.map((f) => f.path)).toEqual(['a']);
    expect(p.logs.some((l) => l.includes('optional object not found'))).toBe(true);
    const err = await failMount('- {name: a, ref: shop/password}\n- {name: b, ref: shop/missing}');
    expect(err.code).toBe(status.NOT_FOUND);
    expect(err.details).toBe('objects[1] "b" (store files, ref shop/missing): no such file in the store');
  });

  it('answers at least one object version when every object was optional and missing', async () => {
    const reply = await p.client.mount(driverRequest('- {name: b, ref: shop/missing, optional: true}'));
    expect(reply.files).toEqual([]);
    expect(reply.objectVersion.length).toBeGreaterThan(0);
  });

  it('gives the same version for the same content and a new one when content changes', async () => {
    const req = driverRequest('- {name: v, ref: shop/version-me}');
    await p.write('secrets/shop/version-me', canaries.next('v1'));
    const first = await p.client.mount(req);
    const again = await p.client.mount(req);
    await p.write('secrets/shop/version-me', canaries.next('v2'));
    const changed = await p.client.mount(req);
    expect(again.objectVersion).toEqual(first.objectVersion);
    expect(changed.objectVersion[0]!.version).not.toBe(first.objectVersion[0]!.version);
  });

  it('accepts secrets as null, {} or an object, and tokens in secrets', async () => {
    for (const secrets of ['null', '{}', '', JSON.stringify({ username: 'u', password: canaries.next('nps') })]) {
      const reply = await p.client.mount(driverRequest('- {name: a, ref: shop/password}', { secrets }));
      expect(reply.files).toHaveLength(1);
    }
    const token = canaries.next('token');
    const reply = await p.client.mount(
      driverRequest('- {name: a, ref: shop/password}', { tokens: { vault: { token } }, tokensInSecrets: true }),
    );
    expect(reply.files).toHaveLength(1);
  });

  it('accepts the socket path as :authority, as drivers up to 1.5 send it', async () => {
    // grpc-go percent-encodes the dial target into the authority (RFC 3986 section 3.2).
    const authority = p.socketPath.replace(/[^A-Za-z0-9\-_.~!$&'()*+,;=:@[\]]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
    expect(authority).toContain('%2F');
    const old = createDriverClient(p.socketPath, { authority });
    try {
      const reply = await old.mount(driverRequest('- {name: a, ref: shop/password}'));
      expect(reply.files[0]!.contents.toString()).toBe(db);
    } finally {
      old.close();
    }
  });

  it('serves 200 concurrent Mounts, each with its own correct content', async () => {
    const writes = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const value = canaries.next(`c${i}`);
        await p.write(`secrets/shop/concurrent/${i}`, value);
        return value;
      }),
    );
    const replies = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        p.client
          .mount(driverRequest(`- {name: v, ref: shop/concurrent/${i % 20}}\n- {name: w, ref: shop/password}`, { podName: `pod-${i}` }))
          .then((reply) => ({ i, reply })),
      ),
    );
    for (const { i, reply } of replies) {
      const files = fileMap(reply);
      expect(files.get('v')?.contents.toString()).toBe(writes[i % 20]);
      expect(files.get('w')?.contents.toString()).toBe(db);
    }
  });
});

describe('Mount errors', () => {
  it('InvalidArgument for bad objects, naming every bad field', async () => {
    const err = await failMount(`
- {name: a, ref: shop/password, mode: "0999"}
- {ref: shop/password}
- {name: c, ref: shop/password, decode: rot13}
- {name: d, ref: shop/password, select: "a["}
- {name: e, ref: shop/password, colour: blue}
- {name: f, ref: shop/password, store: nowhere}
`);
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toContain('objects[0].mode: "0999" is not an octal file mode');
    expect(err.details).toContain('objects[1].name:');
    expect(err.details).toContain('objects[2].decode:');
    expect(err.details).toContain('objects[3].select: not a valid JMESPath expression');
    expect(err.details).toContain('objects[4].colour: unknown field');
    expect(err.details).toContain('objects[5].store: no store named "nowhere"');
  });

  it('InvalidArgument for unknown parameters, missing objects and bad request fields', async () => {
    let err = await failMount('- {name: a, ref: shop/password}', { parameters: { objcts: 'x' } });
    expect(err.details).toContain('parameters.objcts: unknown parameter');
    err = await p.client.mountError({ ...driverRequest('- {name: a, ref: x}'), attributes: '{"broken' });
    errors.push(err.details);
    expect(err).toEqual({ code: status.INVALID_ARGUMENT, details: 'attributes: not valid JSON' });
    err = await p.client.mountError({ ...driverRequest('- {name: a, ref: x}'), permission: '0x1ff' });
    expect(err.details).toBe('permission: must be a decimal file mode between 0 and 511');
    const noNamespace = JSON.parse(driverRequest('- {name: a, ref: x}').attributes);
    delete noNamespace['csi.storage.k8s.io/pod.namespace'];
    err = await p.client.mountError({ ...driverRequest(''), attributes: JSON.stringify(noNamespace) });
    expect(err.details).toContain('"csi.storage.k8s.io/pod.namespace" is missing');
    err = await failMount('');
    expect(err.details).toBe('parameters.objects: required');
  });

  it('never quotes a malformed JSON secret read with key (JSON.parse quotes its input)', async () => {
    const err = await failMount('- {name: a, ref: shop/malformed.json, key: password}');
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toBe('objects[0] "a" (store files, ref shop/malformed.json): key: the secret is not JSON');
    const bad64 = await failMount('- {name: a, ref: shop/not-base64, decode: base64}');
    expect(bad64.details).toContain('decode: the value is not valid base64');
  });

  it('NotFound for a missing key or an empty select', async () => {
    let err = await failMount('- {name: a, ref: shop/db.json, key: nope}');
    expect(err.code).toBe(status.NOT_FOUND);
    expect(err.details).toContain('key "nope" is not in the secret');
    err = await failMount('- {name: a, ref: shop/db.json, select: deep.none}');
    expect(err.code).toBe(status.NOT_FOUND);
  });

  it('PermissionDenied by access rules: other namespaces, denied service accounts', async () => {
    expect((await p.client.mount(driverRequest('- {name: a, store: other, ref: shop/password}'))).files).toHaveLength(1);
    let err = await failMount('- {name: a, store: other, ref: shop/password}', { namespace: 'web' });
    expect(err.code).toBe(status.PERMISSION_DENIED);
    expect(err.details).toContain('service account web/default may not read this ref from store other');
    err = await failMount('- {name: a, store: other, ref: shop/password}', { serviceAccount: 'intruder' });
    expect(err.details).toContain('denied by access[1]');
  });

  it('refuses path traversal in names before reading anything', async () => {
    for (const name of ['../x', 'a/../../x', '/etc/passwd', './a', 'a//b', 'a/', '..data', '..x/y', 'a/./b', 'a\\..\\b']) {
      const err = await failMount(`- {name: ${JSON.stringify(name)}, ref: shop/password}`);
      expect(err.code, name).toBe(status.INVALID_ARGUMENT);
      expect(err.details, name).toContain('objects[0].name:');
    }
  });

  it('refuses refs that leave the file root, including through symlinks', async () => {
    for (const ref of ['../outside/secret', 'shop/../../outside/secret', '/etc/passwd']) {
      const err = await failMount(`- {name: a, ref: ${JSON.stringify(ref)}}`);
      expect(err.code, ref).toBe(status.INVALID_ARGUMENT);
    }
    const err = await failMount('- {name: a, ref: shop/escape}');
    expect(err.code).toBe(status.PERMISSION_DENIED);
    expect(err.details).toContain('ref resolves outside the store root');
    const dir = await failMount('- {name: a, ref: shop/dir}');
    expect(dir.details).toContain('ref is not a regular file');
  });

  it('refuses duplicate names and a file that is also a directory', async () => {
    let err = await failMount('- {name: a, ref: shop/password}\n- {name: a, ref: shop/password}');
    expect(err.details).toContain('objects[1].name: "a" is also the name of objects[0]');
    err = await failMount('- {name: db, ref: shop/password}\n- {name: db/x, ref: shop/password}');
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toContain('file "db": is also a directory of "db/x"');
    err = await failMount('- {name: db, ref: shop/db.json, expand: keys}\n- {name: db/password, ref: shop/password}');
    expect(err.details).toContain('written twice');
  });

  it('refuses responses above the driver limit', async () => {
    const err = await failMount('- {name: a, store: big, ref: a}\n- {name: b, store: big, ref: b}');
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toContain("above the driver's limit");
  });

  it('refuses YAML alias bombs, oversized and deeply odd objects', async () => {
    const bomb = 'a: &a ["x","x"]\nb: &b [*a,*a]\nc: &c [*b,*b]\n';
    let err = await failMount(bomb);
    expect(err.details).toContain('parameters.objects: not valid YAML');
    err = await failMount(`- &o {name: a, ref: shop/password}\n- *o`);
    expect(err.details).toContain('not valid YAML');
    err = await failMount(`- {name: a, ref: ${'x'.repeat(300 * 1024)}}`);
    expect(err.details).toContain('larger than');
    err = await failMount('- {name: a, ref: shop/password, name: b}');
    expect(err.details).toContain('not valid YAML');
    err = await failMount('{name: a}');
    expect(err.details).toBe('parameters.objects: must be a YAML list of objects');
  });

  it('DeadlineExceeded when the call deadline passes before the store answers', async () => {
    // A FIFO with no writer blocks the open: a store that never answers.
    const { execFileSync } = await import('node:child_process');
    execFileSync('mkfifo', [join(p.dir, 'secrets/shop/fifo')]);
    const err = await p.client.mountError(driverRequest('- {name: a, ref: shop/fifo}'), 300);
    expect(err.code).toBe(status.DEADLINE_EXCEEDED);
  });
});

describe('HTTP endpoints', () => {
  it('serves healthz through the socket, readyz and metrics', async () => {
    const base = `http://${p.httpAddress}`;
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/usp_mount_requests_total\{outcome="ok",code="OK"\} \d+/);
    expect(metrics).toMatch(/usp_mount_requests_total\{outcome="error",code="InvalidArgument"\} \d+/);
    expect(metrics).toMatch(/usp_backend_requests_total\{store="files",backend="file",outcome="ok"\} \d+/);
    expect(metrics).toContain('usp_mount_duration_seconds_bucket');
    expect((await fetch(`${base}/nope`)).status).toBe(404);
  });
});
