/**
 * Validates Kubernetes objects offline, twice for built-in kinds:
 * - against the strict JSON Schemas vendored in test/fixtures/schemas/ (see its README.md),
 *   converted to zod with z.fromJSONSchema: unknown fields are errors, so typos are caught;
 * - against Kubernetes' own OpenAPI schema, as compiled by the kubernetes-models package: the
 *   official types, formats and required fields (it allows unknown fields, as the API server's
 *   schema does, hence the first check).
 * CRDs (SecretProviderClass, SecretSync, ServiceMonitor) have only the first.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { z } from 'zod';
import { root, type Doc } from './render.js';

const schemaDir = join(root, 'test/fixtures/schemas');

function loadSchemas(): Map<string, z.ZodType> {
  const shared = JSON.parse(readFileSync(join(schemaDir, '_definitions.json'), 'utf8')) as Doc;
  const schemas = new Map<string, z.ZodType>();
  for (const file of readdirSync(schemaDir).filter((f) => f.endsWith('.json') && !f.startsWith('_'))) {
    const { $schema: _draft, ...schema } = JSON.parse(readFileSync(join(schemaDir, file), 'utf8')) as Doc;
    const apiVersion = schema.properties.apiVersion.enum[0] as string;
    const kind = schema.properties.kind.enum[0] as string;
    schemas.set(`${apiVersion}/${kind}`, z.fromJSONSchema({ ...schema, $defs: { ...shared.$defs, ...schema.$defs } }));
  }
  return schemas;
}

let schemas: Map<string, z.ZodType> | undefined;

/** `apiVersion/kind` of every vendored schema. */
export function schemaKinds(): string[] {
  schemas ??= loadSchemas();
  return [...schemas.keys()].sort();
}

/** Problems of one object as `path: message` lines; empty when it is valid. */
export function validateObject(doc: Doc): string[] {
  schemas ??= loadSchemas();
  const schema = schemas.get(`${doc.apiVersion}/${doc.kind}`);
  if (!schema) return [`no vendored schema for ${doc.apiVersion} ${doc.kind} in test/fixtures/schemas/`];
  const result = schema.safeParse(doc);
  const problems = result.success ? [] : result.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
  return [...problems, ...validateOpenApi(doc)];
}

const require = createRequire(import.meta.url);
const builtInGroups = new Set(['v1', 'apps/v1', 'rbac.authorization.k8s.io/v1']);

/** Kubernetes' own OpenAPI schema for built-in kinds; [] for CRDs. */
export function validateOpenApi(doc: Doc): string[] {
  if (!builtInGroups.has(doc.apiVersion)) return [];
  const module = require(`kubernetes-models/${doc.apiVersion}/${doc.kind}`) as Record<string, new (data: Doc) => { validate(): void }>;
  const Model = module[doc.kind];
  if (!Model) return [`kubernetes-models has no ${doc.apiVersion} ${doc.kind}`];
  try {
    new Model(doc).validate();
    return [];
  } catch (err) {
    return [`OpenAPI: ${(err as Error).message.split('\n')[0]}`];
  }
}
