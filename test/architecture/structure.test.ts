/**
 * The structure docs/architecture.md describes, checked on the code: imports point one way
 * (cli -> server -> mount -> stores -> config -> backends -> kit; neutral modules below all of
 * them), files stay small, and every backend kind in the registry runs the contract suite.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { backendDefinitions } from '../../src/backends/registry.js';

const root = resolve(import.meta.dirname, '../..');
const src = join(root, 'src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return name.endsWith('.ts') ? [path] : [];
  });
}

/** A file's layer: lower layers may never import higher ones. */
function layerOf(file: string): { name: string; rank: number } {
  const rel = relative(src, file).split('/');
  const top = rel.length === 1 ? 'neutral' : rel[0]!;
  // The kit and the contract types every backend shares sit below the backends themselves.
  if (rel[0] === 'backends' && (rel[1] === 'kit' || rel[1] === 'types.ts')) return { name: 'backends/kit', rank: 1 };
  const ranks: Record<string, number> = {
    neutral: 0,
    vendor: 0,
    backends: 2,
    config: 3,
    observability: 3,
    stores: 4,
    mount: 5,
    server: 6,
    cli: 7,
  };
  if (rel.length === 1 && rel[0] === 'main.ts') return { name: 'main', rank: 8 };
  const rank = ranks[top];
  if (rank === undefined) throw new Error(`src/${rel.join('/')} is in no known layer: add it to this test and docs/architecture.md`);
  return { name: top, rank };
}

function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)].map((m) => resolve(dirname(file), m[1]!.replace(/\.js$/, '.ts')));
}

const files = sourceFiles(src);

describe('code structure', () => {
  it('imports point one way: no layer imports a higher one', () => {
    const upward: string[] = [];
    for (const file of files) {
      const from = layerOf(file);
      for (const target of importsOf(file)) {
        const to = layerOf(target);
        if (to.rank > from.rank) upward.push(`${relative(root, file)} (${from.name}) imports ${relative(root, target)} (${to.name})`);
      }
    }
    expect(upward).toEqual([]);
  });

  it('backends and config never import mount, server or cli', () => {
    const bad = files
      .filter((f) => /^src\/(backends|config)\//.test(relative(root, f)))
      .flatMap((f) => importsOf(f).filter((t) => /^src\/(mount|server|cli)\//.test(relative(root, t))).map((t) => `${relative(root, f)} -> ${relative(root, t)}`));
    expect(bad).toEqual([]);
  });

  it('no source file is over 300 lines', () => {
    const long = files
      .map((f) => ({ file: relative(root, f), lines: readFileSync(f, 'utf8').split('\n').length - 1 }))
      .filter((f) => f.lines > 300)
      .map((f) => `${f.file}: ${f.lines} lines`);
    expect(long).toEqual([]);
  });

  it.each(backendDefinitions.map((d) => d.kind))('backend %s runs the contract suite', (kind) => {
    const path = join(root, 'test/backends', `${kind}.contract.test.ts`);
    expect(existsSync(path), `test/backends/${kind}.contract.test.ts`).toBe(true);
    expect(readFileSync(path, 'utf8')).toMatch(new RegExp(`runBackendContract\\(\\s*'${kind}'`));
  });
});
