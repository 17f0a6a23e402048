import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger, flatLineLogger } from '../../src/observability/log.js';
import { createLogDestination } from '../../src/observability/log-destination.js';

const root = resolve(import.meta.dirname, '../..');

function capture() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { lines, logger: createLogger({ level: 'info', destination: stream }) };
}

describe('flatLineLogger', () => {
  it('writes the line its parent would, top-level redaction included', () => {
    const { lines, logger } = capture();
    const flat = flatLineLogger(logger);
    const fields = { pod: 'app-0', namespace: 'shop', objects: 10, durationMs: 0.31, outcome: 'ok', token: 'not-to-be-seen' };
    logger.info(fields, 'mount');
    flat.info(fields, 'mount');
    const [parent, child] = lines.map(({ time: _time, ...rest }) => rest);
    expect(child).toEqual(parent);
    expect(child).toEqual({ level: 'info', service: 'usp', pod: 'app-0', namespace: 'shop', objects: 10, durationMs: 0.31, outcome: 'ok', token: '[REDACTED]', msg: 'mount' });
  });

  it('follows its parent level when it changes later', () => {
    const { lines, logger } = capture();
    const flat = flatLineLogger(logger);
    logger.level = 'warn';
    flat.info({ outcome: 'ok' }, 'mount');
    flat.warn({ outcome: 'error' }, 'mount failed');
    expect(lines.map((l) => l['msg'])).toEqual(['mount failed']);
  });
});

describe('createLogDestination', () => {
  let dir: string;
  let path: string;
  let fd: number;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'usp-log-'));
    path = join(dir, 'log');
    fd = openSync(path, 'w');
  });
  afterEach(() => {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  });
  const written = () => readFileSync(path, 'utf8');
  const eventually = async (expected: string) => {
    for (let i = 0; i < 100 && written() !== expected; i++) await sleep(5);
    expect(written()).toBe(expected);
  };

  it('holds lines until flushMs has passed since the first, then writes them in one go, in order', async () => {
    const destination = createLogDestination({ fd, flushMs: 60 });
    destination.write('a\n');
    await sleep(20);
    destination.write('b\n');
    await sleep(20);
    expect(written()).toBe('');
    await eventually('a\nb\n');
    destination.write('c\n');
    await eventually('a\nb\nc\n');
  });

  it('writes once batchChars are waiting, and at once on flush()', async () => {
    const destination = createLogDestination({ fd, flushMs: 60_000, batchChars: 8 });
    destination.write('1234\n');
    destination.write('5678\n');
    await eventually('1234\n5678\n');
    destination.write('x\n');
    let flushed = false;
    destination.flush(() => (flushed = true));
    expect(flushed).toBe(true);
    await eventually('1234\n5678\nx\n');
  });

  it('flushSync writes every line before it returns', () => {
    const destination = createLogDestination({ fd, flushMs: 60_000 });
    destination.write('first\n');
    destination.write('second\n');
    destination.write('third\n');
    destination.flushSync();
    expect(written()).toBe('first\nsecond\nthird\n');
  });

  it('loses no waiting line when the process exits', () => {
    const script = `
      import { createLogDestination } from ${JSON.stringify(pathToFileURL(join(root, 'dist/src/observability/log-destination.js')).href)};
      const destination = createLogDestination({ flushMs: 60_000 });
      for (let i = 0; i < 3; i++) destination.write('line ' + i + '\\n');
      process.exit(0);`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(out).toBe('line 0\nline 1\nline 2\n');
  });
});
