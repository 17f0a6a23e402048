import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { Secret } from '../../src/secret.js';
import { createLogger } from '../../src/observability/log.js';
import { Writable } from 'node:stream';

describe('Secret wrapper', () => {
  const value = 'CANARY-wrapper-value';
  const secret = new Secret(Buffer.from(value));

  it('prints [REDACTED] through String, template strings, JSON and util.inspect', () => {
    expect(String(secret)).toBe('[REDACTED]');
    expect(`${secret}`).toBe('[REDACTED]');
    expect(JSON.stringify({ secret })).toBe('{"secret":"[REDACTED]"}');
    expect(inspect({ nested: { secret } })).not.toContain(value);
    expect(inspect({ nested: { secret } })).toContain('[REDACTED]');
    expect(secret.reveal().toString()).toBe(value);
  });

  it('stays redacted when logged, and the logger redacts token and attribute fields too', () => {
    const lines: string[] = [];
    const logger = createLogger({
      level: 'info',
      destination: new Writable({ write: (chunk: Buffer, _e, done) => (lines.push(chunk.toString()), done()) }),
    });
    logger.info({ secret, token: 'CANARY-token', attributes: { x: 'CANARY-attr' }, nested: { password: 'CANARY-pw' } }, 'test');
    const text = lines.join('');
    expect(text).not.toMatch(/CANARY-/);
    expect(text).toContain('[REDACTED]');
  });
});
