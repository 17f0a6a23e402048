import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { backendDefinitions, backendKinds } from '../backends/registry.js';
import type { BackendDefinition } from '../backends/types.js';
import { providerConfig, storeCommon } from '../config/schema.js';
import { commonFields } from '../mount/objects.js';
import { templateFields } from '../mount/templates.js';
import { withBackendTable } from './backend-table.js';
import { fieldTable } from './field-table.js';
import { formatConfigSchema } from './schema.js';

function anchor(kind: string): string {
  return `#backend-${kind}`;
}

/** The common store fields with `backend` second, its choices taken from the registry. */
function commonStoreFields(): z.ZodType {
  const { name, ...rest } = storeCommon.shape;
  const kinds = backendKinds() as [string, ...string[]];
  const backend = z
    .enum(kinds)
    .describe("The store's backend; the entry's other fields are that backend's store options (see its section below).");
  return z.object({ name, backend, ...rest });
}

function backendSection(definition: BackendDefinition): string {
  const { kind, docs } = definition;
  return `## Backend \`${kind}\`

${docs.summary} Guide: ${docs.guide}.

**\`ref\`**: ${docs.ref}

### Store options (\`backend: ${kind}\`)

Besides the [common store fields](#common-store-fields):

${fieldTable(definition.options, { none: 'None: a store of this backend has only the common fields.' })}
### Object fields of \`${kind}\` stores

Besides the [common object fields](#common-object-fields):

${fieldTable(definition.objectFields, { none: 'None: every field of an object for this backend is a common field; others are errors.' })}`;
}

/** The whole configuration reference, as Markdown. Deterministic: the test compares it byte for byte. */
export function generateReference(): string {
  const backendLinks = backendDefinitions.map(({ kind }) => `[\`${kind}\`](${anchor(kind)})`).join(' · ');
  const sections = [
    `# Configuration reference

<!-- Generated from the schemas in src/ by \`npm run docs:reference\`; do not edit by hand. -->

Generated from the schemas the provider validates with, so it matches the code: a test fails when
this file is stale. The same schemas give a JSON Schema of the provider config for editors:
[config.schema.json](config.schema.json), also printed by \`usp schema\`. Conventions:

- **duration**: \`500ms\`, \`30s\`, \`5m\`, \`1h\`, or a number of seconds.
- **default**: \`required\` fields must be set; \`optional\` fields have no default and are off when absent.
- Unknown fields are errors everywhere (in the provider config, in a store entry and in an object),
  so a typo is reported rather than ignored. Relative file paths in the provider config resolve
  against the config file's directory.
- *(method: x)* marks a field that exists only for that variant of a union.

Contents: [provider config](#provider-config) · [common store fields](#common-store-fields) ·
[common object fields](#common-object-fields) · [template fields](#template-fields) · backends: ${backendLinks}
`,
    `## Provider config

The file given to \`usp serve --config\` (a ConfigMap in a cluster). Check it offline with
\`usp validate --config FILE\`.

${fieldTable(providerConfig, { collapse: ['stores'] })}
Each entry of \`stores\` has the [common store fields](#common-store-fields) and the store options
of its backend: ${backendLinks}.
`,
    `## Common store fields

Every entry of \`stores\` has these fields; the rest of the entry is the options of its backend.

${fieldTable(commonStoreFields())}`,
    `## Common object fields

Each entry of a SecretProviderClass's \`objects\` parameter has these fields; the rest of the entry
belongs to the store's backend. The class parameters are \`objects\` (required), \`role\` (the
default login role for stores that take one) and \`templates\` (files rendered from the objects);
any other parameter is an error.

${fieldTable(commonFields)}`,
    `## Template fields

Each entry of a SecretProviderClass's \`templates\` parameter has these fields, and no others. The
template language is Liquid, sandboxed: see [Templates in the README](../README.md#templates).

${fieldTable(templateFields)}`,
    ...backendDefinitions.map(backendSection),
  ];
  return sections.join('\n');
}

/**
 * Writes every file generated from the registry and the schemas under `root`: the reference, the
 * JSON Schema of the provider config, and the README's table of backends.
 */
export async function writeGeneratedDocs(root: string): Promise<string[]> {
  const readmePath = join(root, 'README.md');
  const readme = await readFile(readmePath, 'utf8');
  const files: [string, string][] = [
    [join(root, 'docs/reference.md'), generateReference()],
    [join(root, 'docs/config.schema.json'), formatConfigSchema()],
    [readmePath, withBackendTable(readme)],
  ];
  for (const [path, text] of files) await writeFile(path, text);
  return files.map(([path]) => path);
}

const invokedAs = process.argv[1];
if (invokedAs !== undefined && import.meta.url === pathToFileURL(resolve(invokedAs)).href) {
  // `npm run docs:reference` runs this from the repository's root.
  writeGeneratedDocs(process.argv[2] ?? '.').then(
    (paths) => process.stdout.write(paths.map((p) => `wrote ${p}\n`).join('')),
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
