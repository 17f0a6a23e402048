/**
 * docs/security.md maps every threat to a mitigation and to the tests that prove it. This keeps
 * that map honest: every table row fills all three columns, and every test it cites exists, with
 * the cited test name (parameterised names like `store %` as patterns) in the cited file.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));
const doc = readFileSync(join(root, 'docs/security.md'), 'utf8');

/** Rows of the threat tables (header `| threat | mitigation | proved by |`). */
function threatRows(): string[][] {
  const rows: string[][] = [];
  let inTable = false;
  for (const line of doc.split('\n')) {
    if (/^\|\s*threat\s*\|/.test(line)) inTable = true;
    else if (!line.startsWith('|')) inTable = false;
    else if (inTable && !/^\|[-\s|]+\|$/.test(line)) rows.push(line.split(/(?<!\\)\|/).slice(1, -1).map((c) => c.trim()));
  }
  return rows;
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** A cited name as a pattern: `%`/`%s` stand for a parameter, a trailing `...` for the rest. */
const namePattern = (name: string) =>
  new RegExp(
    name
      .replace(/\s*\.\.\.$/, '')
      .split(/%[sd]?/)
      .map(escape)
      .join('.*'),
  );

describe('docs/security.md', () => {
  const rows = threatRows();

  it('has threat tables whose every row names a mitigation and a test', () => {
    expect(rows.length).toBeGreaterThan(30);
    for (const [threat, mitigation, proof] of rows) {
      expect(threat, 'threat').toBeTruthy();
      expect(mitigation, `mitigation of "${threat}"`).toBeTruthy();
      expect(proof, `proof of "${threat}"`).toMatch(/`test\//);
    }
  });

  const citations = [...new Set([...doc.matchAll(/`(test\/[^`]+)`/g)].map((m) => m[1]!))];
  it.each(citations)('cites an existing test: %s', (citation) => {
    const [file, ...names] = citation.replace(/\s+/g, ' ').split(' > ');
    const path = join(root, file!);
    expect(existsSync(path), `${file} exists`).toBe(true);
    const source = readFileSync(path, 'utf8');
    // Test titles are string literals; compare against the source with escapes undone.
    const text = source.replace(/\\'/g, "'");
    for (const name of names) expect(text, `"${name}" in ${file}`).toMatch(namePattern(name));
  });
});
