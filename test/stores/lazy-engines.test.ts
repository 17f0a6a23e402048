import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { parseProviderConfig } from '../../src/config/load.js';
import { parseClass } from '../../src/mount/class.js';

/**
 * The template engine and JMESPath load with the first class that uses them, not at start. Each
 * test file runs in a process of its own (pool: forks), and nothing imported here loads either
 * package, so the process's CommonJS cache shows what class parsing loaded.
 */
const loaded = (pkg: string) => Object.keys(createRequire(import.meta.url).cache).some((path) => path.includes(`/node_modules/${pkg}/`));

async function parse(parameters: Record<string, string>) {
  const config = await parseProviderConfig('stores:\n  - {name: files, backend: file, root: ./secrets}\n', '/tmp');
  if (!config.ok) throw new Error(config.problems.join('; '));
  const parsed = parseClass(new Map(Object.entries(parameters)), config.config);
  if (!parsed.ok) throw new Error(parsed.problems.join('; '));
  return parsed;
}

describe('class parsing loads what the class uses', () => {
  it('loads neither for plain objects, JMESPath for select, Liquid for templates', async () => {
    await parse({ objects: '- {name: a, store: files, ref: a, key: k}' });
    expect([loaded('liquidjs'), loaded('@jmespath-community/jmespath')]).toEqual([false, false]);

    const withSelect = await parse({ objects: '- {name: a, store: files, ref: a, select: "db.password"}' });
    expect([loaded('liquidjs'), loaded('@jmespath-community/jmespath')]).toEqual([false, true]);
    expect(withSelect.objects[0]!.select!.search({ db: { password: 'p' } })).toBe('p');

    await parse({ objects: '- {name: a, store: files, ref: a}', templates: '- {name: t, template: "x={{ objects[\'a\'] }}"}' });
    expect(loaded('liquidjs')).toBe(true);
  });
});
