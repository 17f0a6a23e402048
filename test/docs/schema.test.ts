import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { backendKinds } from '../../src/backends/registry.js';
import { UsageError } from '../../src/cli/class-file.js';
import type { Io } from '../../src/cli/flags.js';
import { configJsonSchema, configSchemaId, formatConfigSchema, runSchema } from '../../src/cli/schema.js';
import { parseProviderConfig } from '../../src/config/load.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

function captureIo(): Io & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, stdout: (t) => out.push(t), stderr: (t) => err.push(t), env: {} };
}

/** Ajv, strict, with the formats zod emits and our duration marker as a known annotation. */
function compileSchema() {
  const ajv = new Ajv2020({ strict: true, allErrors: true });
  addFormats.default(ajv);
  ajv.addKeyword({ keyword: 'x-duration', schemaType: 'boolean' });
  return ajv.compile(configJsonSchema());
}

/** Every provider config the repository ships: examples/, each deploy example and the base's ConfigMap. */
function shippedConfigs(): { where: string; text: string; baseDir: string }[] {
  const configs = [{ where: 'examples/config.yaml', text: readFileSync(join(root, 'examples/config.yaml'), 'utf8'), baseDir: join(root, 'examples') }];
  const examples = join(root, 'deploy/examples');
  for (const dir of readdirSync(examples)) {
    const path = join(examples, dir, 'provider-config.yaml');
    try {
      configs.push({ where: `deploy/examples/${dir}/provider-config.yaml`, text: readFileSync(path, 'utf8'), baseDir: dirname(path) });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  const base = parseYaml(readFileSync(join(root, 'deploy/base/configmap.yaml'), 'utf8')) as { data: Record<string, string> };
  configs.push({ where: 'deploy/base/configmap.yaml', text: base.data['config.yaml']!, baseDir: join(root, 'deploy/base') });
  return configs;
}

describe('docs/config.schema.json', () => {
  it('is what usp schema prints', () => {
    const committed = readFileSync(join(root, 'docs/config.schema.json'), 'utf8');
    expect(committed === formatConfigSchema(), 'docs/config.schema.json is stale: run npm run docs:reference').toBe(true);
    const io = captureIo();
    expect(runSchema([], io)).toBe(0);
    expect(io.out.join('')).toBe(committed);
    expect(io.err).toEqual([]);
  });

  it('takes no arguments', () => {
    expect(() => runSchema(['--out', 'x.json'], captureIo())).toThrow(UsageError);
  });

  it('names itself, offers every backend and marks durations with the defaults users write', () => {
    const schema = configJsonSchema() as Record<string, any>;
    expect(schema.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
    expect(schema.$id).toBe(configSchemaId);
    expect(schema.title).toBeTruthy();
    const entries = schema.properties.stores.items.oneOf as Record<string, any>[];
    expect(entries.map((e) => e.properties.backend.const)).toEqual(backendKinds());
    for (const entry of entries) expect(entry.additionalProperties).toBe(false);
    const ttl = entries[0]!.properties.cache.properties.ttl;
    expect(ttl).toMatchObject({ 'x-duration': true, default: '60s' });
    expect(schema.properties.limits.properties.mountTimeout.default).toBe('60s');
  });

  const validate = compileSchema();

  it.each(shippedConfigs())('accepts $where, as the provider does', async ({ where, text, baseDir }) => {
    const parsed = await parseProviderConfig(text, baseDir);
    expect(parsed.ok ? [] : parsed.problems, where).toEqual([]);
    const valid = validate(parseYaml(text));
    expect(valid ? [] : validate.errors, where).toEqual([]);
  });

  const store = { name: 'dev', backend: 'file', root: './secrets' };
  it.each([
    ['an unknown backend', { stores: [{ ...store, backend: 'gcp-secret-manager' }] }],
    ['no backend', { stores: [{ name: 'dev', root: './secrets' }] }],
    ['a field of another backend', { stores: [{ ...store, region: 'eu-west-1' }] }],
    ['an unknown top-level field', { stores: [store], store: 'dev' }],
    ['a duration the provider cannot read', { stores: [{ ...store, cache: { ttl: '5 minutes' } }] }],
    ['a negative duration', { limits: { mountTimeout: -1 }, stores: [store] }],
    ['no stores', { stores: [] }],
  ])('rejects %s, as the provider does', async (_, config) => {
    expect(validate(config)).toBe(false);
    expect((await parseProviderConfig(JSON.stringify(config), root)).ok).toBe(false);
  });

  it('accepts durations in every form the provider reads', async () => {
    const config = { limits: { mountTimeout: 90 }, stores: [{ ...store, cache: { ttl: '1.5m', staleIfError: '500ms' } }] };
    expect(validate(config), JSON.stringify(validate.errors)).toBe(true);
    expect((await parseProviderConfig(JSON.stringify(config), root)).ok).toBe(true);
  });
});
