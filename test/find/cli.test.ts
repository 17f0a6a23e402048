/** `usp render` and `usp validate` with find objects, run in process (the built CLI is the integrator's). */
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runRender } from '../../src/cli/render.js';
import { runValidate } from '../../src/cli/validate.js';
import { createLogger } from '../../src/observability/log.js';
import { createCanaries } from '../helpers/canary.js';
import { classYaml, fileStore, providerConfigYaml } from '../helpers/yaml.js';

const canaries = createCanaries();
const value = canaries.next('find-cli');
const outputs: string[] = [];
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'usp-find-cli-'));
  await mkdir(join(dir, 'secrets/shop'), { recursive: true });
  await writeFile(join(dir, 'secrets/shop/a'), value);
  await writeFile(join(dir, 'secrets/shop/b'), 'b');
  await writeFile(
    join(dir, 'config.yaml'),
    providerConfigYaml({ defaultStore: 'dev', limits: { maxObjects: 50 }, stores: [fileStore('dev', 'secrets', { access: [{ allow: { namespaces: ['shop'], refs: ['shop/**'] } }] })] }),
  );
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
  canaries.expectNoneIn(outputs, 'CLI output');
});

async function run(command: typeof runRender, args: string[]) {
  let stdout = '';
  let stderr = '';
  const io = { stdout: (t: string) => (stdout += t), stderr: (t: string) => (stderr += t), env: {} };
  const code = await command(args, io, createLogger({ level: 'silent' }));
  outputs.push(stdout, stderr);
  return { code, stdout, stderr };
}

async function writeClass(objects: object[]) {
  const path = join(dir, 'class.yaml');
  await writeFile(path, classYaml({ objects: stringify(objects) }));
  return path;
}

describe('usp render and validate with find', () => {
  it('render lists each found file with its store and ref, no values', async () => {
    const cls = await writeClass([{ name: 'app', find: { prefix: 'shop/' } }]);
    const result = await run(runRender, ['--class', cls, '--config', join(dir, 'config.yaml'), '--namespace', 'shop', '--service-account', 'app']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/app\/a\s+\d+\s+0644\s+\S+\s+dev\s+shop\/a/);
    expect(result.stdout).toMatch(/app\/b\s/);
  });

  it('validate checks find fields and the prefix against the access rules', async () => {
    const ok = await run((args, io) => runValidate(args, io), ['--config', join(dir, 'config.yaml'), '--class', await writeClass([{ name: 'app', find: { prefix: 'shop/', recursive: true } }]), '--namespace', 'shop', '--service-account', 'app']);
    expect(ok.stdout).toContain('ok: config and class');
    const bad = await run((args, io) => runValidate(args, io), [
      '--config', join(dir, 'config.yaml'),
      '--class', await writeClass([
        { name: 'x', ref: 'shop/a', find: { prefix: 'shop/' } },
        { name: 'y', find: { prefix: 'shop/', limit: 500, colour: 'red' } },
        { name: 'z', find: { prefix: 'shop/' }, version: '2', optional: true },
        { name: 'w' },
      ]),
    ]);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toContain('objects[0].find: use ref or find, not both');
    expect(bad.stdout).toContain('objects[1].find');
    expect(bad.stdout).toContain('colour');
    expect(bad.stdout).toContain('objects[2].version: does not apply to a find object');
    expect(bad.stdout).toContain('objects[2].optional: does not apply to a find object');
    expect(bad.stdout).toContain('objects[3].ref: required (or find');
    const limit = await run((args, io) => runValidate(args, io), ['--config', join(dir, 'config.yaml'), '--class', await writeClass([{ name: 'y', find: { prefix: 'shop/', limit: 500 } }])]);
    expect(limit.stdout).toContain("objects[0].find.limit: 500 is above the config's limits.maxObjects (50)");
    const denied = await run((args, io) => runValidate(args, io), ['--config', join(dir, 'config.yaml'), '--class', await writeClass([{ name: 'x', find: { prefix: 'other/' } }]), '--namespace', 'shop', '--service-account', 'app']);
    expect(denied.stdout).toContain('access: objects[0] "x" (store dev, ref other/)');
    expect(denied.stdout).toContain('no access rule allows any ref under this prefix');
  });
});
