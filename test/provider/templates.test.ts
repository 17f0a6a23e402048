import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createCanaries } from '../helpers/canary.js';
import { driverRequest, fileMap, type MountReply } from '../helpers/driver-client.js';
import { startTestProvider, type TestProvider } from '../helpers/provider.js';
import { fileStore, providerConfigYaml, templatesYaml } from '../helpers/yaml.js';

const canaries = createCanaries();
const user = canaries.next('user');
const password = canaries.next('password');
const flagB = canaries.next('flag');
const beside = canaries.next('beside-cwd');
const binary = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
const errors: string[] = [];
// A real file next to the working directory: include, render and layout must never read it.
const besideName = `usp-template-${randomBytes(6).toString('hex')}.liquid`;
const besidePath = join(process.cwd(), besideName);

let p: TestProvider;

beforeAll(async () => {
  await writeFile(besidePath, beside);
  p = await startTestProvider({
    config: providerConfigYaml({
      defaultStore: 'files',
      versionKey: 'templates-version-key-0123456789',
      stores: [fileStore('files', '../secrets', { cache: { ttl: 0 } })],
    }),
    files: {
      'secrets/shop/db.json': JSON.stringify({ user, password }),
      'secrets/shop/flags.json': JSON.stringify({ a: 'on', b: flagB }),
      'secrets/shop/binary.bin': binary,
      'secrets/shop/kilobyte': 'k'.repeat(1024),
    },
  });
});

afterAll(async () => {
  const metrics = await p.metrics.registry.metrics();
  await p.stop();
  await rm(besidePath, { force: true });
  canaries.expectNoneIn(p.logs, 'provider logs');
  canaries.expectNoneIn(errors, 'gRPC error messages');
  canaries.expectNoneIn([metrics], 'metrics');
});

const db = `
- {name: db/user, ref: shop/db.json, key: user}
- {name: db/password, ref: shop/db.json, key: password}
`;

/** `templates` as the class writes it: one entry per [name, text, mode?]. */
function templates(...entries: Array<[string, string, string?]>): string {
  return templatesYaml(entries.map(([name, template, mode]) => ({ name, template, ...(mode !== undefined && { mode }) })));
}

function mount(objects: string, templatesText: string, permission?: string): Promise<MountReply> {
  return p.client.mount(driverRequest(objects, { parameters: { templates: templatesText }, permission }));
}

async function failMount(objects: string, templatesText: string) {
  const err = await p.client.mountError(driverRequest(objects, { parameters: { templates: templatesText } }));
  errors.push(err.details);
  return err;
}

function text(reply: MountReply, path: string): string | undefined {
  return fileMap(reply).get(path)?.contents.toString('utf8');
}

describe('templates', () => {
  it('renders a file from two objects, with its own version', async () => {
    const reply = await mount(db, templates(['app.env', 'DATABASE_URL=postgres://{{ objects["db/user"] }}:{{ objects["db/password"] }}@db:5432/shop\n']));
    expect(text(reply, 'app.env')).toBe(`DATABASE_URL=postgres://${user}:${password}@db:5432/shop\n`);
    expect(fileMap(reply).get('app.env')?.mode).toBe(0o644);
    expect([...fileMap(reply).keys()].sort()).toEqual(['app.env', 'db/password', 'db/user']);
    const version = reply.objectVersion.find((v) => v.id === 'app.env')?.version;
    expect(version).toMatch(/^hmac-[\w-]{32}$/);
    expect(reply.objectVersion.map((v) => v.id).sort()).toEqual(['app.env', 'db/password', 'db/user']);
  });

  it('feeds templates from mount: false objects without writing them', async () => {
    const reply = await mount(
      '- {name: db/password, ref: shop/db.json, key: password, mount: false}\n- {name: db/user, ref: shop/db.json, key: user}',
      templates(['pw.txt', '{{ objects["db/password"] }}']),
    );
    expect([...fileMap(reply).keys()].sort()).toEqual(['db/user', 'pw.txt']);
    expect(text(reply, 'pw.txt')).toBe(password);
    expect(reply.objectVersion.map((v) => v.id).sort()).toEqual(['db/user', 'pw.txt']);
  });

  it('reads the keys of an expanded object by file path, by field and in loops', async () => {
    const reply = await mount(
      '- {name: flags, ref: shop/flags.json, expand: keys, mount: false}',
      templates(['flags.env', '{{ objects["flags/a"] }} {{ objects.flags.b }}|{% for kv in objects["flags"] %}{{ kv[0] }};{% endfor %}|{{ objects.flags | json }}']),
    );
    expect(text(reply, 'flags.env')).toBe(`on ${flagB}|a;b;|${JSON.stringify({ a: 'on', b: flagB })}`);
    expect(reply.files.map((f) => f.path)).toEqual(['flags.env']);
  });

  it('writes the mode given, or the driver permission', async () => {
    let reply = await mount(db, templates(['app.env', 'x', '0400']));
    expect(fileMap(reply).get('app.env')?.mode).toBe(0o400);
    reply = await mount(db, templates(['app.env', 'x']), '288');
    expect(fileMap(reply).get('app.env')?.mode).toBe(0o440);
    const err = await failMount(db, templates(['app.env', 'x', '0999']));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toContain('templates[0] "app.env": mode: "0999" is not an octal file mode');
  });

  it('refuses bad entries, naming the template and the field', async () => {
    const err = await failMount(db, '- {name: a, template: x, colour: blue}\n- {template: x}\n- {name: ../b, template: x}\n- {name: c, template: ""}\n- nope');
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toContain('templates[0] "a": colour: unknown field');
    expect(err.details).toContain('templates[1]: name:');
    expect(err.details).toContain('templates[2] "../b": name: must not have ".." elements');
    expect(err.details).toContain('templates[3] "c": template:');
    expect(err.details).toContain('templates[4]: must be a mapping with name and template');
    const notList = await failMount(db, 'name: a');
    expect(notList.details).toBe('parameters.templates: must be a YAML list of templates');
  });

  it('InvalidArgument at parse time for a reference to an object not in the class, or another variable', async () => {
    const err = await failMount(db, templates(['app.env', '{{ objects["db/pasword"] }} {{ objects.db.user }} {{ secrets }}']));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toContain('templates[0] "app.env": template: objects["db/pasword"] is not an object of this class (objects: "db/user", "db/password")');
    expect(err.details).toContain('templates[0] "app.env": template: objects["db"] is not an object of this class');
    expect(err.details).toContain('templates[0] "app.env": template: secrets is not defined; the only variable is objects');
  });

  it('InvalidArgument for a Liquid syntax error, before any store is read', async () => {
    // The object does not exist: a NotFound would mean the template was checked after fetching.
    const missing = '- {name: a, ref: shop/missing}';
    for (const bad of ['{{ objects["a"] ', '{% for x in objects %}', '{% if %}', '{{ objects["a"] | nofilter }}', '{% bogus %}']) {
      const err = await failMount(missing, templates(['t', bad]));
      expect(err.code, bad).toBe(status.INVALID_ARGUMENT);
      expect(err.details, bad).toMatch(/^templates\[0\] "t": template: .+/);
    }
  });

  it('refuses include, render and layout at parse time and never reads the file', async () => {
    // Liquid's own file system is synchronous in sync rendering: any look-up would go through these.
    const spies = (['readFileSync', 'statSync', 'existsSync', 'realpathSync'] as const).map((name) => vi.spyOn(fs, name));
    const touched = () => spies.flatMap((spy) => spy.mock.calls.map((call) => String(call[0]))).filter((path) => path.includes(besideName));
    for (const tag of [
      `{% include "${besideName}" %}`,
      `{%- render '${besideName}' -%}`,
      `{% layout "${besideName}" %}`,
      `{% liquid\n  include "${besideName}" %}`,
      '{% include objects["a"] %}',
    ]) {
      const err = await failMount('- {name: a, ref: shop/kilobyte}', templates(['t', tag]));
      expect(err.code, tag).toBe(status.INVALID_ARGUMENT);
      expect(err.details, tag).toMatch(/templates\[0\] "t": template: \{% (include|render|layout) %\} is not available: templates cannot read files/);
      expect(err.details).not.toContain(beside);
    }
    expect(touched()).toEqual([]);
    spies.forEach((spy) => spy.mockRestore());
  });

  it('cuts pathological templates by time and memory limits, and keeps serving', async () => {
    const started = performance.now();
    const slow = await failMount(db, templates(['t', '{% for a in (1..2000) %}{% for b in (1..2000) %}{% assign x = b %}{% endfor %}{% endfor %}']));
    expect(slow.code).toBe(status.INVALID_ARGUMENT);
    expect(slow.details).toMatch(/^templates\[0\] "t": template \(line 1, column 25\): rendering took longer than 250 ms/);
    const huge = await failMount(db, templates(['t', '{% for a in (1..100000000) %}x{% endfor %}']));
    expect(huge.details).toMatch(/^templates\[0\] "t": template \(line 1, column 1\): rendering built more than 8388608 characters or list items/);
    const capture = await failMount(
      '- {name: k, ref: shop/kilobyte}',
      templates(['t', '{% capture c %}{% for a in (1..3000000) %}{{ objects.k }}{% endfor %}{% endcapture %}{{ c | size }}']),
    );
    expect(capture.code).toBe(status.INVALID_ARGUMENT);
    // The limits cut each render while it runs, not after it: the three took 514-535 ms here (2
    // busy cores). liquidjs alone runs the 4-million-step nested loop to its end in about 5 s, so
    // the 100-million-step one would take minutes. 10 s is 19 times the measured figure.
    expect(performance.now() - started).toBeLessThan(10_000);
    const reply = await mount(db, templates(['ok', '{{ objects["db/user"] }}']));
    expect(text(reply, 'ok')).toBe(user);
  });

  it('refuses output above the template limit and a volume above the driver limit', async () => {
    const err = await failMount('- {name: k, ref: shop/kilobyte}', templates(['t', '{% for a in (1..2000) %}{{ objects.k }}{% endfor %}']));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toContain('templates[0] "t": template (line 1, column 25): the output is larger than 1048576 bytes');
    // Each just under 1 MiB; together above the driver's 4 MiB.
    const loop = '{% for a in (1..1020) %}{{ objects.k }}{% endfor %}';
    const volume = await failMount('- {name: k, ref: shop/kilobyte}', templates(['t1', loop], ['t2', loop], ['t3', loop], ['t4', loop]));
    expect(volume.details).toContain("above the driver's limit");
  });

  it('refuses a template name that is an object name, another template, or a directory of one', async () => {
    let err = await failMount(db, templates(['db/password', 'x']));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toBe('templates[0] "db/password": name: is also the name of objects[1] "db/password"');
    err = await failMount(db, templates(['a', 'x'], ['a', 'y']));
    expect(err.details).toBe('templates[1] "a": name: is also the name of templates[0] "a"');
    err = await failMount(db, templates(['db', 'x']));
    expect(err.details).toContain('templates[0] "db": name: is also a directory of objects[0] "db/user"');
    err = await failMount(db, templates(['db/user/x', 'x']));
    expect(err.details).toContain('templates[0] "db/user/x": name: is inside objects[0] "db/user", which is a file');
    err = await failMount('- {name: flags, ref: shop/flags.json, expand: keys}', templates(['flags/a', 'x']));
    expect(err.details).toContain('file "flags/a": written twice');
  });

  it('changes the version when an object it reads changes, and only then', async () => {
    const objects = '- {name: r, ref: shop/rotate}\n- {name: u, ref: shop/unread}';
    const request = templates(['r.txt', 'r={{ objects.r | size }}']);
    const versionOf = (reply: MountReply, id: string) => reply.objectVersion.find((v) => v.id === id)?.version;
    await p.write('secrets/shop/rotate', canaries.next('r1'));
    await p.write('secrets/shop/unread', canaries.next('u1'));
    const first = await mount(objects, request);
    const again = await mount(objects, request);
    expect(versionOf(again, 'r.txt')).toBe(versionOf(first, 'r.txt'));
    await p.write('secrets/shop/unread', canaries.next('u2'));
    const unread = await mount(objects, request);
    expect(versionOf(unread, 'u')).not.toBe(versionOf(first, 'u'));
    expect(versionOf(unread, 'r.txt')).toBe(versionOf(first, 'r.txt'));
    // Same length, so the same output: the version still follows the object it read.
    await p.write('secrets/shop/rotate', canaries.next('r2'));
    const changed = await mount(objects, request);
    expect(text(changed, 'r.txt')).toBe(text(first, 'r.txt'));
    expect(versionOf(changed, 'r.txt')).not.toBe(versionOf(first, 'r.txt'));
  });

  it('renders a skipped optional object only through default or if, else NotFound naming it', async () => {
    const objects = '- {name: ca, ref: shop/no-such-ca, optional: true}\n- {name: k, ref: shop/kilobyte}';
    const reply = await mount(objects, templates(['t', '[{{ objects.ca | default: "none" }}]{% if objects["ca"] %}has{% else %}no{% endif %} ca']));
    expect(text(reply, 't')).toBe('[none]no ca');
    const err = await failMount(objects, templates(['t', 'ca={{ objects["ca"] }}']));
    expect(err.code).toBe(status.NOT_FOUND);
    expect(err.details).toBe(
      'templates[0] "t": template (line 1, column 7): objects["ca"]: the optional object "ca" was not found; write objects["ca"] | default: "" or test it with {% if %}',
    );
  });

  it('NotFound for a key an expanded object does not have', async () => {
    const err = await failMount('- {name: flags, ref: shop/flags.json, expand: keys}', templates(['t', '{{ objects["flags/c"] }}']));
    expect(err.code).toBe(status.NOT_FOUND);
    expect(err.details).toContain('objects["flags/c"]: key "c" is not in the secret of objects[0] "flags"');
  });

  it('refuses binary content as text, and embeds it with base64', async () => {
    const objects = `- {name: bin, ref: shop/binary.bin}\n${db}`;
    const err = await failMount(objects, templates(['t', 'x={{ objects.bin }}']));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toBe('templates[0] "t": template (line 1, column 3): objects["bin"] is not UTF-8 text; embed it with | base64');
    const upcased = await failMount(objects, templates(['t', '{{ objects.bin | upcase }}']));
    expect(upcased.details).toContain('objects["bin"] is not UTF-8 text');
    const reply = await mount(objects, templates(['t', '{{ objects.bin | base64 }} {{ objects["db/user"] | base64 }} {{ objects.bin | base64_encode }}']));
    const b64 = binary.toString('base64');
    expect(text(reply, 't')).toBe(`${b64} ${Buffer.from(user).toString('base64')} ${b64}`);
    const decoded = await mount(objects, templates(['t', '{{ objects["db/user"] | base64 | base64_decode }}']));
    expect(text(decoded, 't')).toBe(user);
    const notText = await failMount(objects, templates(['t', '{{ objects.bin | base64 | base64_decode }}']));
    expect(notText.details).toContain('base64_decode: the decoded bytes are not UTF-8 text');
  });

  it('never quotes values: computed references and prototype names', async () => {
    let err = await failMount(db, templates(['t', '{{ objects[objects["db/password"]] }}']));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toBe('templates[0] "t": template (line 1, column 4): a computed reference is not defined (not quoted: it may hold secret values)');
    err = await failMount(db, templates(['t', '{% assign o = objects %}{{ o.constructor }}{{ o["db/user"].constructor }}']));
    expect(err.details).toBe('templates[0] "t": template (line 1, column 28): o["constructor"] is not defined');
    err = await failMount(db, templates(['t', '{{ objects["db/user"] | plus: objects["db/password"] | date: "%Y" }}{{ objects.constructor }}']));
    expect(err.details).toContain('objects["constructor"] is not an object of this class');
    expect(Object.keys(Object.prototype)).toEqual([]);
  });
});
