import { mkdtemp, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runUsp, spawnUsp } from '../helpers/bin.js';
import { createCanaries } from '../helpers/canary.js';
import { classYaml, fileStore, providerConfigYaml, type TemplateYaml } from '../helpers/yaml.js';

const canaries = createCanaries();
const password = canaries.next('pw');
const live = canaries.next('live');
let dir: string;
const outputs: string[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'usp-cli-'));
  await mkdir(join(dir, 'secrets/shop'), { recursive: true });
  await writeFile(join(dir, 'secrets/shop/password'), password);
  await writeFile(join(dir, 'secrets/shop/stripe.json'), JSON.stringify({ keys: { live } }));
  await writeFile(
    join(dir, 'config.yaml'),
    providerConfigYaml({
      defaultStore: 'dev',
      versionKey: 'cli-version-key-0123456789',
      stores: [fileStore('dev', './secrets', { access: [{ allow: { refs: ['{namespace}/**'] } }] })],
    }),
  );
  await writeFile(
    join(dir, 'class.yaml'),
    classYaml({
      objects: [
        { name: 'db/password', ref: 'shop/password', mode: '0400' },
        { name: 'stripe-live', ref: 'shop/stripe.json', select: 'keys.live' },
      ],
    }),
  );
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
  canaries.expectNoneIn(outputs, 'CLI output without --show-values');
});

const render = async (...extra: string[]) => {
  const result = await runUsp(['render', '--class', join(dir, 'class.yaml'), '--config', join(dir, 'config.yaml'), '--namespace', 'shop', '--service-account', 'app', ...extra]);
  return result;
};

describe('usp render', () => {
  it('prints names, sizes, modes, versions and sources, but no values', async () => {
    const result = await render();
    outputs.push(result.stdout, result.stderr);
    expect(result.code).toBe(0);
    const lines = result.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^FILE\s+BYTES\s+MODE\s+VERSION\s+STORE\s+REF$/);
    expect(lines[1]).toMatch(new RegExp(`^db/password\\s+${password.length}\\s+0400\\s+hmac-[\\w-]{32}\\s+dev\\s+shop/password$`));
    expect(lines[2]).toMatch(new RegExp(`^stripe-live\\s+${live.length}\\s+0644\\s+hmac-`));
  });

  it('shows values only with --show-values, and writes files with modes to --out', async () => {
    const out = join(dir, 'out');
    const result = await render('--show-values', '--out', out);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(password);
    expect(await readFile(join(out, 'db/password'), 'utf8')).toBe(password);
    expect((await stat(join(out, 'db/password'))).mode & 0o777).toBe(0o400);
    expect(await readFile(join(out, 'stripe-live'), 'utf8')).toBe(live);
  });

  it('exits 1 with the Mount error for a denied namespace, and 2 for bad usage', async () => {
    const denied = await runUsp(['render', '--class', join(dir, 'class.yaml'), '--config', join(dir, 'config.yaml'), '--namespace', 'web', '--service-account', 'app']);
    outputs.push(denied.stdout, denied.stderr);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toContain('PermissionDenied: objects[0] "db/password" (store dev, ref shop/password)');
    const usage = await runUsp(['render', '--class', join(dir, 'class.yaml')]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('--config is required');
    const unknownFlag = await runUsp(['render', '--colour']);
    expect(unknownFlag.code).toBe(2);
    expect((await runUsp(['frobnicate'])).code).toBe(2);
  });
});

describe('usp validate', () => {
  it('passes a good config and class', async () => {
    const result = await runUsp(['validate', '--config', join(dir, 'config.yaml'), '--class', join(dir, 'class.yaml'), '--namespace', 'shop', '--service-account', 'app']);
    expect(result.stdout).toContain('ok: config and class shop are valid');
    expect(result.code).toBe(0);
  });

  it('lists every problem of a class, not just the first', async () => {
    await writeFile(
      join(dir, 'bad-class.yaml'),
      classYaml({
        objects: [
          { name: '../x', ref: 'shop/password' },
          { name: 'b', ref: 'shop/password', mode: '999' },
          { name: 'c', ref: 'shop/password', store: 'nope' },
          { name: 'd', ref: 'web/password' },
        ],
        parameters: { rolle: 'typo' },
      }),
    );
    const result = await runUsp(['validate', '--config', join(dir, 'config.yaml'), '--class', join(dir, 'bad-class.yaml')]);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('class: parameters.rolle: unknown parameter');
    expect(result.stdout).toContain('class: objects[0].name: must not have ".." elements');
    expect(result.stdout).toContain('class: objects[1].mode:');
    expect(result.stdout).toContain('class: objects[2].store: no store named "nope"');
    expect(result.stdout).toContain('4 problems found');
  });

  it('lists every problem of a config and access denials for an identity', async () => {
    await writeFile(join(dir, 'bad-config.yaml'), 'defaultStore: x\nstores:\n  - {name: a, backend: file}\n  - {name: a, backend: file, root: r, extra: 1}\n');
    let result = await runUsp(['validate', '--config', join(dir, 'bad-config.yaml')]);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('config: stores[0].root');
    expect(result.stdout).toContain('config: stores[1].extra: unknown field');
    await writeFile(join(dir, 'other-ns.yaml'), classYaml({ objects: [{ name: 'd', ref: 'web/password' }] }));
    result = await runUsp(['validate', '--config', join(dir, 'config.yaml'), '--class', join(dir, 'other-ns.yaml'), '--namespace', 'shop', '--service-account', 'app']);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('access: objects[0] "d" (store dev, ref web/password): service account shop/app may not read');
  });
});

describe('templates in usp render and usp validate', () => {
  const templated = (templates: TemplateYaml[]) =>
    classYaml({
      objects: [
        { name: 'db/password', ref: 'shop/password', mount: false },
        { name: 'stripe-live', ref: 'shop/stripe.json', select: 'keys.live' },
      ],
      templates,
    });

  it('renders template files in the table without values, and with --show-values', async () => {
    await writeFile(join(dir, 'templated.yaml'), templated([{ name: 'app.env', mode: '0400', template: "PW={{ objects['db/password'] }}" }]));
    const args = ['render', '--class', join(dir, 'templated.yaml'), '--config', join(dir, 'config.yaml'), '--namespace', 'shop', '--service-account', 'app'];
    const result = await runUsp(args);
    outputs.push(result.stdout, result.stderr);
    expect(result.code).toBe(0);
    const lines = result.stdout.trim().split('\n');
    expect(lines.map((l) => l.split(/\s+/)[0])).toEqual(['FILE', 'stripe-live', 'app.env']);
    expect(lines[2]).toMatch(new RegExp(`^app\\.env\\s+${password.length + 3}\\s+0400\\s+hmac-[\\w-]{32}\\s+-\\s+templates\\[0\\]$`));
    const shown = await runUsp([...args, '--show-values']);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain(`--- app.env\nPW=${password}\n`);
  });

  it('validate parses and compiles templates, listing every problem', async () => {
    await writeFile(
      join(dir, 'bad-templates.yaml'),
      templated([
        { name: 'a', template: '{{ objects.nope }}' },
        { name: 'b', template: '{% if %}' },
        { name: 'stripe-live', template: 'x', mode: '0999' },
      ]),
    );
    const result = await runUsp(['validate', '--config', join(dir, 'config.yaml'), '--class', join(dir, 'bad-templates.yaml')]);
    outputs.push(result.stdout, result.stderr);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('class: templates[0] "a": template: objects["nope"] is not an object of this class');
    expect(result.stdout).toContain('class: templates[1] "b": template: ');
    expect(result.stdout).toContain('class: templates[2] "stripe-live": mode: "0999" is not an octal file mode');
    expect(result.stdout).toContain('class: templates[2] "stripe-live": name: is also the name of objects[1] "stripe-live"');
    expect(result.stdout).toContain('4 problems found');
    await writeFile(join(dir, 'good-templates.yaml'), templated([{ name: 'app.env', template: '{{ objects.stripe-live }}' }]));
    const good = await runUsp(['validate', '--config', join(dir, 'config.yaml'), '--class', join(dir, 'good-templates.yaml')]);
    expect(good.stdout).toContain('ok: config and class shop are valid');
  });
});

describe('usp mount', () => {
  it('sends a driver Mount to a running provider and shows the same table', async () => {
    await mkdir(join(dir, 'sockets'), { mode: 0o700 });
    const server = spawnUsp(['serve', '--config', join(dir, 'config.yaml'), '--socket-dir', join(dir, 'sockets'), '--http-addr', '127.0.0.1:0']);
    try {
      await server.waitForLine(/"msg":"ready"/);
      const result = await runUsp(['mount', '--socket', join(dir, 'sockets/universal.sock'), '--class', join(dir, 'class.yaml'), '--namespace', 'shop', '--service-account', 'app']);
      outputs.push(result.stdout, result.stderr);
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(/^db\/password\s+\d+\s+0400\s+hmac-/m);
      const denied = await runUsp(['mount', '--socket', join(dir, 'sockets/universal.sock'), '--class', join(dir, 'class.yaml'), '--namespace', 'web', '--service-account', 'app']);
      outputs.push(denied.stdout, denied.stderr);
      expect(denied.code).toBe(1);
      expect(denied.stderr).toContain('mount failed: PermissionDenied:');
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
      outputs.push(...server.lines);
    }
  });
});
