import { randomBytes } from 'node:crypto';
import { expect } from 'vitest';
import { recordMarker } from './capture.js';

/**
 * Unique markers used as secret values. After a test file, `expectNoneIn` checks that no marker
 * reached anything a user or operator can read (logs, errors, metrics, CLI output).
 */
export function createCanaries() {
  const markers: string[] = [];
  return {
    next(label = 'secret'): string {
      const marker = `CANARY-${label}-${randomBytes(9).toString('hex')}`;
      markers.push(marker);
      recordMarker(marker);
      return marker;
    },
    /** Registers values made elsewhere (tokens, binary secrets as text) to be checked too. */
    add(...values: string[]): void {
      markers.push(...values);
      values.forEach(recordMarker);
    },
    get all(): readonly string[] {
      return markers;
    },
    expectNoneIn(texts: Iterable<string>, where: string): void {
      const all = [...texts].join('\n');
      const leaked = markers.filter((m) => all.includes(m));
      expect(leaked, `secret markers found in ${where}`).toEqual([]);
    },
  };
}
export type Canaries = ReturnType<typeof createCanaries>;
