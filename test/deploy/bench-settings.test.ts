/** The bench runs the provider as the install manifest does, and reads idle CPU from /proc. */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { measureIdleCpu, readDaemonSetSettings } from '../../bench/provider.js';
import { packageRoot } from '../../src/package-info.js';

describe('bench settings', () => {
  it('takes NODE_OPTIONS and the allocator variables from the DaemonSet of deploy/install.yaml', () => {
    const docs = parseAllDocuments(readFileSync(join(packageRoot, 'deploy/install.yaml'), 'utf8')).map((d) => d.toJS());
    const container = docs.find((d) => d?.kind === 'DaemonSet').spec.template.spec.containers[0];
    const env = Object.fromEntries(container.env.map((e: { name: string; value: string }) => [e.name, e.value]));
    const settings = readDaemonSetSettings();
    expect(settings.nodeFlags.join(' ')).toBe(env.NODE_OPTIONS);
    expect(settings.env).toEqual({ MALLOC_MMAP_THRESHOLD_: env.MALLOC_MMAP_THRESHOLD_ });
    expect(Number(settings.env.MALLOC_MMAP_THRESHOLD_)).toBeGreaterThan(0);
  });

  it('tells an idle process from a busy one', async () => {
    const run = (code: string) => spawn(process.execPath, ['-e', code], { stdio: 'ignore' });
    const idle = run('setInterval(() => {}, 60_000)');
    const busy = run('for (;;) {}');
    try {
      await new Promise((r) => setTimeout(r, 200));
      const [quiet, spinning] = await Promise.all([measureIdleCpu(idle.pid!, 1), measureIdleCpu(busy.pid!, 1)]);
      expect(spinning.cpuSecondsPerMinute).toBeGreaterThan(15);
      expect(quiet.cpuSecondsPerMinute).toBeLessThan(spinning.cpuSecondsPerMinute / 3);
      expect(quiet.wakeupsPerSecond).toBeGreaterThanOrEqual(0);
    } finally {
      for (const p of [idle, busy]) p.kill('SIGKILL');
      await Promise.all([once(idle, 'exit'), once(busy, 'exit')]);
    }
  });
});
