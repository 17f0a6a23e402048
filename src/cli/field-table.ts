import type { z } from 'zod';
import { inputJsonSchema, type JsonSchema } from './input-schema.js';

/** One documented field of a schema. */
interface Row {
  readonly name: string;
  readonly type: string;
  readonly default: string;
  readonly description: string;
  /** Variants of a union the field belongs to (`method: irsa`). */
  readonly when: string[];
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
  if (schema.default === undefined) return required ? 'required' : 'optional';
  // Duration defaults are already written as users write them (`60s`).
  if (schema['x-duration']) return String(schema.default);
  if (isObject(schema) && schema.properties) return 'see its fields';
  return JSON.stringify(schema.default);
}

/** The discriminator of a union variant (`method: irsa`), when it has one. */
function variantLabel(variant: JsonSchema): string | undefined {
  const entry = Object.entries(variant.properties ?? {}).find(([, p]) => p.const !== undefined);
  return entry ? `${entry[0]}: ${String(entry[1].const)}` : undefined;
}

/**
 * One row per field, nested objects as `a.b`, lists of objects as `a[].b`, union variants merged.
 * Fields named in `collapse` get a row of their own but none for what they hold.
 */
function flatten(schema: JsonSchema, prefix: string, when: string[], collapse: ReadonlySet<string>, rows: Row[]): void {
  const alternatives = variants(schema);
  if (alternatives && isObject(schema)) {
    for (const variant of alternatives) {
      const label = variantLabel(variant);
      flatten(variant, prefix, label ? [...when, label] : when, collapse, rows);
    }
    return;
  }
  for (const [key, property] of Object.entries(schema.properties ?? {})) {
    const name = prefix ? `${prefix}.${key}` : key;
    const required = schema.required?.includes(key) ?? false;
    rows.push({ name, type: typeOf(property), default: defaultOf(property, required), description: property.description ?? '', when });
    if (collapse.has(name)) continue;
    if (isObject(property)) flatten(property, name, when, collapse, rows);
    if (property.type === 'array' && property.items && isObject(property.items)) flatten(property.items, `${name}[]`, when, collapse, rows);
  }
}

function fieldRows(schema: z.ZodType, collapse: readonly string[]): Row[] {
  const rows: Row[] = [];
  flatten(inputJsonSchema(schema), '', [], new Set(collapse), rows);
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

/** A Markdown table of every field of `schema`: name, type, default, description. */
export function fieldTable(schema: z.ZodType, options: { collapse?: readonly string[]; none?: string } = {}): string {
  const rows = fieldRows(schema, options.collapse ?? []);
  if (rows.length === 0) return `${options.none ?? 'None.'}\n`;
  const lines = ['| field | type | default | description |', '|---|---|---|---|'];
  for (const row of rows) {
    const when = row.when.length > 0 ? `*(${describeWhen(row.when)})* ` : '';
    lines.push(`| \`${row.name}\` | ${cell(row.type)} | ${cell(row.default)} | ${cell(when + row.description)} |`);
  }
  return `${lines.join('\n')}\n`;
}
