import { posix } from 'node:path';
import { backendDefinitions } from '../backends/registry.js';

export const tableStart = '<!-- backends: generated from the registry by npm run docs:reference; do not edit by hand -->';
export const tableEnd = '<!-- end of backends -->';

/**
 * A guide link as the README must write it: the registry's links are relative to `docs/`. A link
 * back into the README itself is dropped: the table is where it would lead.
 */
function readmeLink(markdown: string): string | undefined {
  const link = /^\[([^\]]+)\]\(([^)#]*)(#[^)]*)?\)$/.exec(markdown);
  if (!link) throw new Error(`a backend guide must be one Markdown link, not ${JSON.stringify(markdown)}`);
  const [, text, path, fragment = ''] = link as unknown as [string, string, string, string?];
  const target = posix.normalize(posix.join('docs', path));
  return target === 'README.md' ? undefined : `[${text}](${target}${fragment})`;
}

function cell(text: string): string {
  return text.replaceAll('|', '\\|').replaceAll('\n', ' ');
}

/** The README's table of backends: one row per registry entry. */
export function backendTable(): string {
  const lines = ['| `backend` | what it reads, as whom | `ref` | docs |', '|---|---|---|---|'];
  for (const { kind, docs } of backendDefinitions) {
    const links = [readmeLink(docs.guide), `[fields](docs/reference.md#backend-${kind})`].filter((l) => l !== undefined);
    lines.push(`| \`${kind}\` | ${cell(docs.summary)} | ${cell(docs.ref)} | ${links.join(', ')} |`);
  }
  return `${lines.join('\n')}\n`;
}

/** `readme` with the text between the markers replaced by the current table. */
export function withBackendTable(readme: string): string {
  const start = readme.indexOf(tableStart);
  const end = readme.indexOf(tableEnd);
  if (start < 0 || end < start) throw new Error(`README.md needs the markers ${tableStart} and ${tableEnd}, in that order`);
  return `${readme.slice(0, start + tableStart.length)}\n${backendTable()}${readme.slice(end)}`;
}
