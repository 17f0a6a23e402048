import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** An executable on PATH, or undefined. */
export function findOnPath(name: string): string | undefined {
  return (process.env.PATH ?? '')
    .split(delimiter)
    .map((dir) => join(dir, name))
    .find((path) => {
      try {
        accessSync(path, constants.X_OK);
        return true;
      } catch {
        return false;
      }
    });
}

/** promtool on PATH (Debian's `prometheus` package; .ci/run installs it), or undefined. */
export const promtool = findOnPath('promtool');

export const promtoolMissing = 'promtool is not installed (apt-get install prometheus): the Prometheus checks are skipped';

if (!promtool && process.env.USP_REQUIRE_PROMTOOL === '1') throw new Error(`${promtoolMissing}, but USP_REQUIRE_PROMTOOL=1 (set by .ci/run once it installed promtool)`);
if (!promtool) console.warn(promtoolMissing);

/** Runs `promtool ARGS` (stdin from `input`), resolving with its exit code and output. */
export function runPromtool(args: string[], options: { cwd?: string; input?: string } = {}): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    if (!promtool) return reject(new Error(promtoolMissing));
    const child = execFile(promtool, args, { cwd: options.cwd, maxBuffer: 8 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, output: `${stdout}${stderr}` });
    });
    child.stdin!.end(options.input ?? '');
  });
}
