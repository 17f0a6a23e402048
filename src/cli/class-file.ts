import { readFile } from 'node:fs/promises';
import { parseAllDocuments } from 'yaml';
import { isPlainObject } from '../util.js';

export interface ClassFile {
  readonly name: string;
  readonly namespace?: string;
  readonly provider: string;
  readonly parameters: Record<string, string>;
}

/** Reads a SecretProviderClass manifest (the first of its kind in a multi-document file). */
export async function readClassFile(path: string): Promise<ClassFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new UsageError(`--class: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  const docs = parseAllDocuments(text);
  const list = Array.isArray(docs) ? docs : [docs];
  for (const doc of list) {
    if (doc.errors.length > 0) throw new UsageError(`--class: ${path} is not valid YAML: ${doc.errors[0]!.message.split('\n', 1)[0]}`);
    const value: unknown = doc.toJS({ maxAliasCount: 0 });
    if (!isPlainObject(value) || value.kind !== 'SecretProviderClass') continue;
    const metadata = isPlainObject(value.metadata) ? value.metadata : {};
    const spec = isPlainObject(value.spec) ? value.spec : {};
    const parameters = isPlainObject(spec.parameters) ? spec.parameters : {};
    const nonString = Object.entries(parameters).find(([, v]) => typeof v !== 'string');
    if (nonString) throw new UsageError(`--class: spec.parameters.${nonString[0]} must be a string (Kubernetes requires it)`);
    return {
      name: typeof metadata.name === 'string' ? metadata.name : 'unnamed',
      namespace: typeof metadata.namespace === 'string' ? metadata.namespace : undefined,
      provider: typeof spec.provider === 'string' ? spec.provider : '',
      parameters: parameters as Record<string, string>,
    };
  }
  throw new UsageError(`--class: ${path} holds no SecretProviderClass`);
}

/** Bad command-line use: exit code 2. */
export class UsageError extends Error {}
