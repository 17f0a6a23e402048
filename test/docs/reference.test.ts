import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { backendDefinitions } from '../../src/backends/registry.js';
import { generateReference } from '../../src/cli/reference.js';

const referencePath = new URL('../../docs/reference.md', import.meta.url);

describe('docs/reference.md', () => {
  const generated = generateReference();

  it('is what the schemas generate', async () => {
    const committed = await readFile(referencePath, 'utf8');
    // A diff of the whole file is noise; the first differing line says what moved.
    if (committed !== generated) {
      const a = committed.split('\n');
      const b = generated.split('\n');
      const line = a.findIndex((l, i) => l !== b[i]);
      expect.fail(
        `docs/reference.md is stale: run npm run docs:reference (first difference at line ${line + 1}: ` +
          `${JSON.stringify(a[line] ?? '')} vs ${JSON.stringify(b[line] ?? '')})`,
      );
    }
  });

  it('documents every backend, every field with a description', () => {
    for (const { kind } of backendDefinitions) expect(generated).toContain(`## Backend \`${kind}\``);
    const rows = generated.split('\n').filter((l) => l.startsWith('| `'));
    expect(rows.length).toBeGreaterThan(40);
    for (const row of rows) {
      const description = row.split(' | ').at(-1)!.replace(/\*\([^)]*\)\*/, '').replace(/\|$/, '').trim();
      expect(description, row).not.toBe('');
    }
  });

  it('shows durations in the units users write, with their defaults', () => {
    expect(generated).toMatch(/\| `cache.ttl` \| duration \| 60s \|/);
    expect(generated).toMatch(/\| `limits.mountTimeout` \| duration \| 60s \|/);
  });
});
