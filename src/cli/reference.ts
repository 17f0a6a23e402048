import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { parameterStoreObjectFields } from '../backends/aws-parameter-store.js';
import { secretsManagerObjectFields } from '../backends/aws-secrets-manager.js';
import { fileObjectFields } from '../backends/file.js';
import { kubernetesObjectFields } from '../backends/kubernetes.js';
import { backendDefinitions } from '../backends/registry.js';
import { vaultObjectFields } from '../backends/vault.js';
import { providerConfig, storeCommon } from '../config/schema.js';
import { commonFields } from '../mount/objects.js';
import { templateFields } from '../mount/templates.js';
import { duration } from '../schema.js';

/** Each backend's object fields, with the guide that explains the backend. */
const backendDocs: Readonly<Record<string, { objectFields: z.ZodType; guide: string }>> = {
  file: { objectFields: fileObjectFields, guide: '[README](../README.md#stores)' },
  kubernetes: { objectFields: kubernetesObjectFields, guide: '[docs/kubernetes.md](kubernetes.md)' },
  vault: { objectFields: vaultObjectFields, guide: '[docs/vault.md](vault.md)' },
  'aws-secrets-manager': { objectFields: secretsManagerObjectFields, guide: '[docs/aws.md](aws.md)' },
  'aws-parameter-store': { objectFields: parameterStoreObjectFields, guide: '[docs/aws.md](aws.md)' },
};

interface Row {
  readonly name: string;
  readonly type: string;
  readonly default: string;
  readonly description: string;
  /** Variants of a union the field belongs to (`method: irsa`). */
  readonly when: string[];
}

type JsonSchema = {
  type?: string | string[];
  const?: unknown;
  enum?: unknown[];
  format?: string;
  default?: unknown;
  description?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  additionalProperties?: unknown;
  'x-duration'?: boolean;
  'x-duration-default'?: number;
};

const durationInput = (duration._zod.def as { in: unknown }).in;

function isDuration(schema: z.core.$ZodType): boolean {
  const def = schema._zod.def as { type: string; in?: unknown };
  return def.type === 'pipe' && def.in === durationInput;
}

/** JSON Schema of the input a user writes, with durations marked (their defaults are milliseconds). */
function toJson(schema: z.ZodType): JsonSchema {
  return z.toJSONSchema(schema, {
    io: 'input',
    unrepresentable: 'any',
    override(ctx) {
      const def = ctx.zodSchema._zod.def as { type: string; innerType?: z.core.$ZodType; defaultValue?: unknown };
      if (isDuration(ctx.zodSchema)) ctx.jsonSchema['x-duration'] = true;
      if (def.type === 'default' && def.innerType && isDuration(def.innerType)) {
        ctx.jsonSchema['x-duration'] = true;
        ctx.jsonSchema['x-duration-default'] = def.defaultValue;
      }
    },
  }) as JsonSchema;
}

function formatDuration(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

function variants(schema: JsonSchema): JsonSchema[] | undefined {
  return schema.oneOf ?? schema.anyOf;
}

function isObject(schema: JsonSchema): boolean {
  return schema.type === 'object' || (variants(schema)?.every(isObject) ?? false);
}

function typeOf(schema: JsonSchema): string {
  if (schema['x-duration']) return 'duration';
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(' | ');
  const alternatives = variants(schema);
  if (alternatives) return isObject(schema) ? 'object' : [...new Set(alternatives.map(typeOf))].join(' | ');
  if (Array.isArray(schema.type)) return schema.type.join(' | ');
  switch (schema.type) {
    case 'array':
      return schema.items ? `list of ${typeOf(schema.items)}` : 'list';
    case 'object':
      return 'object';
    case 'string':
      return schema.format === 'uri' ? 'URL' : 'string';
    default:
      return schema.type ?? 'any';
  }
}

function defaultOf(schema: JsonSchema, required: boolean): string {
  if (schema['x-duration-default'] !== undefined) return formatDuration(schema['x-duration-default']);
  if (schema.default !== undefined) {
    if (isObject(schema) && schema.properties) return 'see its fields';
    return JSON.stringify(schema.default);
  }
  return required ? 'required' : 'optional';
}

/** The discriminator of a union variant (`method: irsa`), when it has one. */
function variantLabel(variant: JsonSchema): string | undefined {
  const entry = Object.entries(variant.properties ?? {}).find(([, p]) => p.const !== undefined);
  return entry ? `${entry[0]}: ${String(entry[1].const)}` : undefined;
}

/** One row per field, nested objects as `a.b`, lists of objects as `a[].b`, union variants merged. */
function flatten(schema: JsonSchema, prefix: string, when: string[], rows: Row[]): void {
  const alternatives = variants(schema);
  if (alternatives && isObject(schema)) {
    for (const variant of alternatives) {
      const label = variantLabel(variant);
      flatten(variant, prefix, label ? [...when, label] : when, rows);
    }
    return;
  }
  for (const [key, property] of Object.entries(schema.properties ?? {})) {
    const name = prefix ? `${prefix}.${key}` : key;
    const required = schema.required?.includes(key) ?? false;
    rows.push({ name, type: typeOf(property), default: defaultOf(property, required), description: property.description ?? '', when });
    if (isObject(property)) flatten(property, name, when, rows);
    if (property.type === 'array' && property.items && isObject(property.items)) flatten(property.items, `${name}[]`, when, rows);
  }
}

function fieldRows(schema: z.ZodType): Row[] {
  const rows: Row[] = [];
  flatten(toJson(schema), '', [], rows);
  const merged: Row[] = [];
  for (const row of rows) {
    const same = merged.find(
      (m) => m.name === row.name && m.type === row.type && m.default === row.default && m.description === row.description,
    );
    if (same) same.when.push(...row.when.filter((w) => !same.when.includes(w)));
    else merged.push({ ...row, when: [...row.when] });
  }
  return merged;
}

function cell(text: string): string {
  return text.replaceAll('|', '\\|').replaceAll('\n', ' ');
}

/** `method: kubernetes` and `method: jwt` read as `method: kubernetes, jwt`. */
function describeWhen(labels: readonly string[]): string {
  const byKey = new Map<string, string[]>();
  for (const label of labels) {
    const [key, value] = label.split(': ') as [string, string];
    byKey.set(key, [...(byKey.get(key) ?? []), value]);
  }
  return [...byKey].map(([key, values]) => `${key}: ${values.join(', ')}`).join('; ');
}

function table(rows: readonly Row[]): string {
  if (rows.length === 0) return 'None: every field of an object for this backend is a common field; others are errors.\n';
  const lines = ['| field | type | default | description |', '|---|---|---|---|'];
  for (const row of rows) {
    const when = row.when.length > 0 ? `*(${describeWhen(row.when)})* ` : '';
    lines.push(`| \`${row.name}\` | ${cell(row.type)} | ${cell(row.default)} | ${cell(when + row.description)} |`);
  }
  return `${lines.join('\n')}\n`;
}

/** The whole configuration reference, as Markdown. Deterministic: the test compares it byte for byte. */
export function generateReference(): string {
  const out: string[] = [];
  out.push(`# Configuration reference

<!-- Generated from the schemas in src/ by \`npm run docs:reference\`; do not edit by hand. -->

Generated from the schemas the provider validates with, so it matches the code: a test fails when
this file is stale. Conventions:

- **duration**: \`500ms\`, \`30s\`, \`5m\`, \`1h\`, or a number of seconds.
- **default**: \`required\` fields must be set; \`optional\` fields have no default and are off when absent.
- Unknown fields are errors everywhere (in the provider config, in a store entry and in an object),
  so a typo is reported rather than ignored. Relative file paths in the provider config resolve
  against the config file's directory.
- *(method: x)* marks a field that exists only for that variant of a union.

Contents: [provider config](#provider-config) · [common store fields](#common-store-fields) ·
[common object fields](#common-object-fields) · [template fields](#template-fields) · backends: ${backendDefinitions.map((b) => `[\`${b.kind}\`](#backend-${b.kind})`).join(' · ')}
`);
  const topLevel = fieldRows(providerConfig);
  out.push(`## Provider config

The file given to \`usp serve --config\` (a ConfigMap in a cluster). Check it offline with
\`usp validate --config FILE\`.

${table(topLevel)}`);
  out.push(`## Common store fields

Every entry of \`stores\` has these fields; the rest of the entry is the options of its backend.

${table(fieldRows(storeCommon))}`);
  out.push(`## Common object fields

Each entry of a SecretProviderClass's \`objects\` parameter has these fields; the rest of the entry
belongs to the store's backend. The class parameters are \`objects\` (required), \`role\` (the
default login role for stores that take one) and \`templates\` (files rendered from the objects);
any other parameter is an error.

${table(fieldRows(commonFields))}`);
  out.push(`## Template fields

Each entry of a SecretProviderClass's \`templates\` parameter has these fields, and no others. The
template language is Liquid, sandboxed: see [Templates in the README](../README.md#templates).

${table(fieldRows(templateFields))}`);
  for (const definition of backendDefinitions) {
    const docs = backendDocs[definition.kind];
    if (!docs) throw new Error(`backend ${definition.kind} has no entry in backendDocs of src/cli/reference.ts`);
    out.push(`## Backend \`${definition.kind}\`

Guide: ${docs.guide}.

### Store options (\`backend: ${definition.kind}\`)

${table(fieldRows(definition.options))}
### Object fields of \`${definition.kind}\` stores

${table(fieldRows(docs.objectFields))}`);
  }
  return out.join('\n');
}

/** `node dist/src/cli/reference.js FILE` (npm run docs:reference) writes the reference to FILE. */
async function writeReference(target: string): Promise<void> {
  await writeFile(target, generateReference());
}

const invokedAs = process.argv[1];
if (invokedAs !== undefined && import.meta.url === pathToFileURL(resolve(invokedAs)).href) {
  const target = process.argv[2] ?? 'docs/reference.md';
  writeReference(target).then(
    () => process.stdout.write(`wrote ${target}\n`),
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
