import { appendFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Suite-wide secret hygiene: every canary marker and every text a user or operator could read
 * (provider logs, gRPC error details, object ids and versions, metrics, CLI output without
 * --show-values) is appended to files in USP_CAPTURE_DIR; test/global-setup.ts scans them all
 * after the suite, so a marker from one test file leaking through another is caught too.
 */
const dir = process.env.USP_CAPTURE_DIR;

export function recordMarker(marker: string): void {
  if (dir) appendFileSync(join(dir, `markers-${process.pid}.txt`), `${marker}\n`);
}

export function recordText(where: string, text: string): void {
  if (dir && text) appendFileSync(join(dir, `texts-${process.pid}.jsonl`), `${JSON.stringify({ where, text })}\n`);
}
