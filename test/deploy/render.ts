import { execFile } from 'node:child_process';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

export const root = fileURLToPath(new URL('../../', import.meta.url));

export type Doc = Record<string, any>;

/** `kubectl kustomize DIR` as text, exactly as `kubectl apply -k DIR` would render it. */
export function kustomizeText(dir: string): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    execFile('kubectl', ['kustomize', dir], { maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if ((err as NodeJS.ErrnoException | null)?.code === 'ENOENT') {
        reject(new Error('kubectl is not installed or not on PATH: these tests render the manifests with `kubectl kustomize`'));
      } else if (err) {
        reject(new Error(`kubectl kustomize ${relative(root, dir)} failed:\n${stderr}`));
      } else {
        resolve(stdout);
      }
    });
  });
}

export async function kustomize(dir: string): Promise<Doc[]> {
  return parseDocs(await kustomizeText(dir), relative(root, dir));
}

/** The documents of a multi-document YAML text; empty documents are dropped. */
export function parseDocs(text: string, where: string): Doc[] {
  const docs = parseAllDocuments(text);
  for (const doc of docs) {
    if (doc.errors.length > 0) throw new Error(`${where}: ${doc.errors[0]!.message}`);
  }
  return docs.map((d) => d.toJS() as Doc).filter((d) => d !== null && d !== undefined);
}
