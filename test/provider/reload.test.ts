import { mkdir, rename, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCanaries } from '../helpers/canary.js';
import { driverRequest, fileMap } from '../helpers/driver-client.js';
import { startTestProvider, type TestProvider } from '../helpers/provider.js';

const canaries = createCanaries();
const a = canaries.next('a');
const b = canaries.next('b');
let p: TestProvider;

const configWith = (root: string) => `
defaultStore: files
versionKey: reload-version-key-0123456789
stores:
  - {name: files, backend: file, root: ${root}}
`;

/** Polls until `check` passes: reloads are triggered by file-system events, not by the test. */
async function eventually(check: () => Promise<void>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

beforeAll(async () => {
  p = await startTestProvider({ config: configWith('../a'), files: { 'a/x': a, 'b/x': b } });
});

afterAll(async () => {
  await p.stop();
  canaries.expectNoneIn(p.logs, 'provider logs');
});

const read = async () => fileMap(await p.client.mount(driverRequest('- {name: x, ref: x}'))).get('x')?.contents.toString();

describe('config reload', () => {
  it('applies a good change when the file is rewritten', async () => {
    expect(await read()).toBe(a);
    await writeFile(p.configPath, configWith('../b'));
    await eventually(async () => expect(await read()).toBe(b));
    expect(p.logs.some((l) => l.includes('"msg":"config reloaded"'))).toBe(true);
  });

  it('keeps the last good config and logs why when a change is bad', async () => {
    await writeFile(p.configPath, 'stores:\n  - {name: files, backend: file, root: 42}\n');
    await eventually(async () => expect(p.logs.some((l) => l.includes('config change rejected'))).toBe(true));
    const line = p.logs.find((l) => l.includes('config change rejected'))!;
    expect(line).toContain('stores[0].root');
    expect(await read()).toBe(b);
    const metrics = await p.metrics.registry.metrics();
    expect(metrics).toMatch(/usp_config_reloads_total\{outcome="rejected"\} 1/);
  });

  it('follows a ConfigMap-style atomic symlink swap', async () => {
    const q = await startTestProvider({ config: configWith('../a'), files: { 'a/x': a, 'b/x': b }, configMap: true });
    try {
      const readQ = async () => fileMap(await q.client.mount(driverRequest('- {name: x, ref: x}'))).get('x')?.contents.toString();
      expect(await readQ()).toBe(a);
      // kubelet writes a new timestamped directory, then renames a fresh `..data` link over the old one.
      const dir = join(q.dir, 'config');
      await mkdir(join(dir, '..2026_02_02'));
      await writeFile(join(dir, '..2026_02_02/config.yaml'), configWith('../b'));
      await symlink('..2026_02_02', join(dir, '..data_tmp'));
      await rename(join(dir, '..data_tmp'), join(dir, '..data'));
      await eventually(async () => expect(await readQ()).toBe(b));
      canaries.expectNoneIn(q.logs, 'provider logs');
    } finally {
      await q.stop();
    }
  });
});
