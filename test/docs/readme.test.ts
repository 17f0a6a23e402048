import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { backendKinds } from '../../src/backends/registry.js';
import { tableEnd, tableStart, withBackendTable } from '../../src/cli/backend-table.js';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

describe('README.md', () => {
  it('has the table of backends the registry generates', () => {
    expect(readme === withBackendTable(readme), 'the table of backends in README.md is stale: run npm run docs:reference').toBe(true);
    const block = readme.slice(readme.indexOf(tableStart), readme.indexOf(tableEnd));
    for (const kind of backendKinds()) expect(block).toContain(`| \`${kind}\` |`);
  });

  it('keeps no list of backends by hand outside the generated table', () => {
    const outside = readme.slice(0, readme.indexOf(tableStart)) + readme.slice(readme.indexOf(tableEnd));
    // A line naming three kinds or more is a list of them, and goes stale when a kind is added.
    const words = (line: string) => new Set(line.split(/[^a-z0-9-]+/));
    const lists = outside.split('\n').filter((line) => backendKinds().filter((kind) => words(line).has(kind)).length >= 3);
    expect(lists).toEqual([]);
  });
});
