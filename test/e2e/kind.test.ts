import { execFile } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const script = fileURLToPath(new URL('./kind.sh', import.meta.url));

function run(command: string, args: string[]): Promise<{ code: number | null; output: string; missing: boolean }> {
  return new Promise((resolve) => {
    execFile(command, args, (err, stdout, stderr) => {
      const missing = (err as NodeJS.ErrnoException | null)?.code === 'ENOENT';
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, output: stdout + stderr, missing });
    });
  });
}

// The script needs Docker and cannot run here; these checks keep it from rotting.
describe('test/e2e/kind.sh', () => {
  it('is executable, strict and parses (bash -n)', async () => {
    expect(statSync(script).mode & 0o111).not.toBe(0);
    const text = readFileSync(script, 'utf8');
    expect(text.startsWith('#!/usr/bin/env bash\n')).toBe(true);
    expect(text).toMatch(/^set -euo pipefail$/m);
    const result = await run('bash', ['-n', script]);
    expect(result.output).toBe('');
    expect(result.code).toBe(0);
  });

  it('is shellcheck-clean (skipped where shellcheck is not installed)', async (ctx) => {
    const result = await run('shellcheck', ['--severity=style', script]);
    if (result.missing) ctx.skip();
    expect(result.output).toBe('');
    expect(result.code).toBe(0);
  });

  it('installs the driver with the values the examples need, and checks mounted files and a synced Secret', () => {
    const text = readFileSync(script, 'utf8');
    const values = readFileSync(fileURLToPath(new URL('./driver-values.yaml', import.meta.url)), 'utf8');
    expect(text).toMatch(/-f test\/e2e\/driver-values\.yaml/);
    expect(values).toMatch(/tokenRequests:\n\s+- audience: ""/);
    expect(values).toMatch(/syncSecret:\n\s+enabled: true/);
    expect(values).toMatch(/enableSecretRotation: true/);
    for (const example of ['deploy/examples/file', 'deploy/examples/kubernetes', 'test/e2e/manifests/sync.yaml']) expect(text).toContain(example);
    expect(text).toMatch(/kind load docker-image/);
    expect(text).toMatch(/exec "\$pod" -- cat/);
    expect(text).toMatch(/get secret shop-db-synced/);
    expect(text).toMatch(/kind delete cluster/);
  });
});
