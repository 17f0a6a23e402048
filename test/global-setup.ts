import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Runs once around the whole suite: collects what test/helpers/capture.ts records and scans it. */
export default function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'usp-capture-'));
  process.env.USP_CAPTURE_DIR = dir;
  return () => {
    try {
      const files = readdirSync(dir);
      const markers = new Set(
        files.filter((f) => f.startsWith('markers-')).flatMap((f) => readFileSync(join(dir, f), 'utf8').split('\n').filter(Boolean)),
      );
      const leaks: string[] = [];
      let scanned = 0;
      for (const f of files.filter((name) => name.startsWith('texts-'))) {
        for (const line of readFileSync(join(dir, f), 'utf8').split('\n').filter(Boolean)) {
          const { where, text } = JSON.parse(line) as { where: string; text: string };
          scanned += 1;
          for (const marker of markers) if (text.includes(marker)) leaks.push(`${where}: ${marker.slice(0, 40)}`);
        }
      }
      if (leaks.length > 0) {
        // vitest reports a throwing teardown but still exits 0; the exit code is what CI reads.
        process.exitCode = 1;
        process.stderr.write(`FAIL secret hygiene: markers leaked into readable output:\n  ${leaks.slice(0, 20).join('\n  ')}\n`);
        return;
      }
      process.stdout.write(`secret hygiene: ${markers.size} markers, none in ${scanned} captured texts\n`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}
