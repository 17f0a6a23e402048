import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDriverRequest } from '../../src/cli/driver-request.js';
import { loadProviderConfig } from '../../src/config/load.js';
import { createStores } from '../../src/stores/stores.js';
import { holdStates, type StateHolder } from '../../src/stores/holder.js';
import { isProviderError, type ErrorCode } from '../../src/errors.js';
import { createMountHandler, type MountHandler } from '../../src/mount/handler.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { createDriverMount, type DriverMount } from '../../src/server/driver-mount.js';
import { runUsp } from '../helpers/bin.js';

/**
 * The guide quotes the stable beginning (or end) of each message family. These cases produce the
 * real messages through the real Mount pipeline and check both that the code still says it and that
 * the guide still quotes it.
 */
const guidePath = new URL('../../docs/troubleshooting.md', import.meta.url);
let guide: string;
let dir: string;
let states: StateHolder;
let handler: MountHandler;
/** The same pipeline behind the driver's request parsing, as the gRPC server runs it. */
let driverMount: DriverMount;
const metrics = createMetrics({ defaultMetrics: false });

beforeAll(async () => {
  guide = await readFile(guidePath, 'utf8');
  dir = await mkdtemp(join(tmpdir(), 'usp-troubleshooting-'));
  await mkdir(join(dir, 'secrets/shop'), { recursive: true });
  await writeFile(join(dir, 'secrets/shop/plain'), 'not json');
  await writeFile(join(dir, 'secrets/shop/db.json'), JSON.stringify({ password: 'x', nested: { a: 1 } }));
  await writeFile(
    join(dir, 'config.yaml'),
    `defaultStore: dev
versionKey: troubleshooting-key-0123456789
stores:
  - name: dev
    backend: file
    root: ./secrets
    access:
      - allow: {namespaces: [shop], refs: ["{namespace}/**"]}
  - name: vault
    backend: vault
    address: http://127.0.0.1:9
    auth: {method: kubernetes}
`,
  );
  const loaded = await loadProviderConfig(join(dir, 'config.yaml'));
  if (!loaded.ok) throw new Error(loaded.problems.join('\n'));
  const logger = pino({ level: 'silent' });
  states = holdStates(await createStores(loaded.config, { logger, metrics, now: Date.now }));
  handler = createMountHandler({ states, logger, metrics, now: Date.now, fallbackVersionKey: Buffer.alloc(32) });
  driverMount = createDriverMount(handler);
});

afterAll(async () => {
  await states.close();
  await rm(dir, { recursive: true, force: true });
});

async function failure(objects: string, parameters: Record<string, string> = {}, namespace = 'shop'): Promise<{ code: ErrorCode; message: string }> {
  const input = {
    identity: { namespace, serviceAccount: 'web', podName: 'p', podUid: 'u' },
    className: 't',
    parameters: new Map(Object.entries({ objects, ...parameters })),
    tokens: new Map(),
    secrets: new Map(),
    defaultMode: 0o644,
  };
  try {
    await handler.mount(input, AbortSignal.timeout(10_000));
  } catch (err) {
    if (isProviderError(err)) return { code: err.code, message: err.message };
    throw err;
  }
  throw new Error('the Mount succeeded');
}

const cases: Array<{ family: string; objects: string; parameters?: Record<string, string>; namespace?: string; code: ErrorCode; quoted: string | string[] }> = [
  { family: 'unknown parameter', objects: '- {name: a, ref: shop/plain}', parameters: { roleName: 'x' }, code: 'InvalidArgument', quoted: 'unknown parameter (known: objects, role, templates)' },
  { family: 'unknown object field', objects: '- {name: a, ref: shop/plain, secretPath: x}', code: 'InvalidArgument', quoted: ': unknown field' },
  { family: 'bad file path', objects: '- {name: ../a, ref: shop/plain}', code: 'InvalidArgument', quoted: 'must not have ".." elements' },
  { family: 'duplicate names', objects: '- {name: a, ref: shop/plain}\n- {name: a, ref: shop/db.json}', code: 'InvalidArgument', quoted: 'is also the name of objects[' },
  { family: 'unknown store', objects: '- {name: a, ref: shop/plain, store: nope}', code: 'InvalidArgument', quoted: ['.store: no store named "', '" (stores: '] },
  { family: 'bad mode', objects: '- {name: a, ref: shop/plain, mode: "0999"}', code: 'InvalidArgument', quoted: 'is not an octal file mode between 0000 and 0777' },
  { family: 'access rules', objects: '- {name: a, ref: shop/plain}', namespace: 'web', code: 'PermissionDenied', quoted: ['may not read this ref from store ', ' (no access rule allows it)'] },
  { family: 'missing token', objects: '- {name: a, ref: secret/data/shop/db, store: vault}', code: 'PermissionDenied', quoted: 'no service-account token for audience "vault": add {audience: "vault"} to tokenRequests of the CSIDriver secrets-store.csi.k8s.io' },
  { family: 'file not found', objects: '- {name: a, ref: shop/missing}', code: 'NotFound', quoted: 'no such file in the store' },
  { family: 'key missing', objects: '- {name: a, ref: shop/db.json, key: user}', code: 'NotFound', quoted: 'is not in the secret' },
  { family: 'select matched nothing', objects: '- {name: a, ref: shop/db.json, select: nested.b}', code: 'NotFound', quoted: 'select matched nothing in the secret' },
  { family: 'content not JSON', objects: '- {name: a, ref: shop/plain, key: password}', code: 'InvalidArgument', quoted: 'key: the secret is not JSON' },
  { family: 'bad base64', objects: '- {name: a, ref: shop/db.json, decode: base64}', code: 'InvalidArgument', quoted: 'decode: the value is not valid base64' },
  { family: 'template reference', objects: '- {name: a, ref: shop/plain}', parameters: { templates: '- {name: t, template: "{{ objects.b }}"}' }, code: 'InvalidArgument', quoted: ['": template: objects["', '"] is not an object of this class (objects: '] },
  { family: 'template file access', objects: '- {name: a, ref: shop/plain}', parameters: { templates: '- {name: t, template: "{% include \'a\' %}"}' }, code: 'InvalidArgument', quoted: '{% include %} is not available: templates cannot read files' },
  { family: 'template optional object', objects: '- {name: a, ref: shop/missing, optional: true}', parameters: { templates: '- {name: t, template: "{{ objects.a }}"}' }, code: 'NotFound', quoted: ['": template (line ', '" was not found; write objects["', '" or test it with {% if %}'] },
  { family: 'file and directory', objects: '- {name: db, ref: shop/db.json, expand: keys}\n- {name: db/password, ref: shop/plain}', code: 'InvalidArgument', quoted: 'written twice' },
];

describe('docs/troubleshooting.md', () => {
  it.each(cases)('quotes the $family message the Mount returns', async ({ objects, parameters, namespace, code, quoted }) => {
    const error = await failure(objects, parameters, namespace);
    expect(error.code).toBe(code);
    for (const fragment of [quoted].flat()) {
      expect(error.message).toContain(fragment);
      expect(guide, `the guide quotes "${fragment}"`).toContain(fragment);
    }
  });

  it('quotes what a request without pod info gets', async () => {
    const request = buildDriverRequest(
      { name: 't', provider: 'universal', parameters: { objects: '- {name: a, ref: shop/plain}' } },
      { namespace: 'shop', serviceAccount: 'web', tokens: new Map() },
    );
    const attributes = JSON.parse(request.attributes) as Record<string, string>;
    delete attributes['csi.storage.k8s.io/pod.namespace'];
    const quoted = 'attributes: "csi.storage.k8s.io/pod.namespace" is missing; is podInfoOnMount enabled on the CSIDriver?';
    const failed = async () => Number(/usp_mount_requests_total\{outcome="error",code="InvalidArgument"\} (\d+)/.exec(await metrics.registry.metrics())?.[1] ?? 0);
    const before = await failed();
    await expect(driverMount({ ...request, attributes: JSON.stringify(attributes) }, AbortSignal.timeout(10_000))).rejects.toThrow(quoted);
    // A request that cannot be read still counts as a failed Mount.
    expect(await failed()).toBe(before + 1);
    expect(guide).toContain(quoted);
  });

  it('reproduces a failure with usp render as the guide says', async () => {
    const spc = join(dir, 'spc.yaml');
    await writeFile(
      spc,
      `apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: t, namespace: shop}
spec:
  provider: universal
  parameters:
    objects: |
      - {name: a, ref: shop/db.json, key: user}
`,
    );
    const result = await runUsp(['render', '--class', spc, '--config', join(dir, 'config.yaml'), '--namespace', 'shop', '--service-account', 'web']);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe('mount failed: NotFound: objects[0] "a" (store dev, ref shop/db.json): key "user" is not in the secret\n');
    expect(guide).toContain('`usp render` prints `mount failed: CODE: MESSAGE`');
    expect(guide).toContain('objects[INDEX] "NAME" (store STORE, ref REF): CAUSE');
  });
});
