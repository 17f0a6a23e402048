import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { backendDefinitions, backendKinds } from '../../src/backends/registry.js';
import { generateReference } from '../../src/cli/reference.js';

const referencePath = new URL('../../docs/reference.md', import.meta.url);

/** The text of one `## ` section, heading included. */
function section(text: string, heading: string): string {
  const start = text.indexOf(`\n## ${heading}\n`);
  expect(start, `a section "## ${heading}"`).toBeGreaterThanOrEqual(0);
  const end = text.indexOf('\n## ', start + 1);
  return text.slice(start, end < 0 ? undefined : end);
}

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

  it('documents every backend from its definition: summary, guide, ref, options and object fields', () => {
    for (const { kind, docs } of backendDefinitions) {
      const text = section(generated, `Backend \`${kind}\``);
      expect(text).toContain(docs.summary);
      expect(text).toContain(docs.guide);
      expect(text).toContain(`**\`ref\`**: ${docs.ref}`);
      expect(text).toContain(`### Store options (\`backend: ${kind}\`)`);
      expect(text).toContain(`### Object fields of \`${kind}\` stores`);
    }
  });

  it('every field has a description', () => {
    const rows = generated.split('\n').filter((l) => l.startsWith('| `'));
    expect(rows.length).toBeGreaterThan(40);
    for (const row of rows) {
      const description = row.split(' | ').at(-1)!.replace(/\*\([^)]*\)\*/, '').replace(/\|$/, '').trim();
      expect(description, row).not.toBe('');
    }
  });

  it('keeps backend options out of the provider config table and lists every kind once in the common store fields', () => {
    const top = section(generated, 'Provider config');
    expect(top).toMatch(/\| `stores` \| list of object \| required \|/);
    expect(top).not.toContain('`stores[].');
    const common = section(generated, 'Common store fields');
    const backendRow = common.split('\n').find((l) => l.startsWith('| `backend` |'));
    expect(backendRow).toBe(
      `| \`backend\` | ${backendKinds().map((k) => `"${k}"`).join(' \\| ')} | required | ${backendRow!.split(' | ').at(-1)}`,
    );
  });

  it('shows durations in the units users write, with their defaults', () => {
    expect(generated).toMatch(/\| `cache.ttl` \| duration \| 60s \|/);
    expect(generated).toMatch(/\| `limits.mountTimeout` \| duration \| 60s \|/);
    expect(generated).toMatch(/\| `retry.baseDelay` \| duration \| 100ms \|/);
  });
});
