import { writeSync } from 'node:fs';
import { pino } from 'pino';

/** What `usp serve` logs to: pino's destination, plus the synchronous flush for shutdown. */
export interface LogDestination {
  write(line: string): void;
  /** Hands every waiting line on to be written now (pino's logger.flush() calls it). */
  flush(done?: () => void): void;
  /** Writes every line logged so far before it returns (shutdown; also run on process exit). */
  flushSync(): void;
}

export interface LogDestinationOptions {
  /** 1 (stdout) unless a test says otherwise. */
  readonly fd?: number;
  /** Lines are handed on once this many characters are waiting... */
  readonly batchChars?: number;
  /** ...or this long after the first of them was logged. */
  readonly flushMs?: number;
}

/**
 * The provider's log output, written in batches. Every asynchronous write is a round trip through
 * libuv's thread pool (about 25 us of CPU, and a thread to wake, whatever its size), and sonic-boom
 * (pino's destination) only joins the lines that arrive while a write is in flight: one write per
 * Mount line at one Mount at a time, a write per few lines under load. Here lines wait until 64 Ki
 * characters are ready or 100 ms have passed, whichever comes first; the timer runs only while lines
 * wait. A line is written at most `flushMs` late, at once after `logger.flush()` (the provider's
 * ready line: people and scripts wait for it), and nothing is lost on exit. Measured on 2 cores
 * (docs/performance.md): CPU per cache-hit Mount -8% at one at a time; at 128 concurrent Mounts,
 * 4 Ki batches saved nothing and 64 Ki batches 6%.
 */
export function createLogDestination(options: LogDestinationOptions = {}): LogDestination {
  const fd = options.fd ?? 1;
  const batchChars = options.batchChars ?? 64 * 1024;
  const flushMs = options.flushMs ?? 100;
  // Writes each batch at once, or with the next write if one is in flight; pino registers it to be
  // flushed synchronously on exit.
  const stream = pino.destination({ fd, sync: false });
  let pending = '';
  let timer: NodeJS.Timeout | undefined;
  const stopTimer = () => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
  };
  const handOn = () => {
    stopTimer();
    if (pending === '') return;
    const batch = pending;
    pending = '';
    stream.write(batch);
  };
  const destination: LogDestination = {
    write(line) {
      pending += line;
      if (pending.length >= batchChars) handOn();
      else if (timer === undefined) {
        timer = setTimeout(handOn, flushMs);
        timer.unref();
      }
    },
    flush(done) {
      handOn();
      done?.();
    },
    flushSync() {
      stopTimer();
      const rest = pending;
      pending = '';
      // The stream's lines are older than ours; handing ours to it now would start an asynchronous
      // write that an exiting process never finishes.
      stream.flushSync();
      if (rest !== '') writeAllSync(fd, rest);
    },
  };
  // A crash or process.exit() must not drop the lines still waiting (pino flushes its stream first).
  process.once('exit', () => destination.flushSync());
  return destination;
}

/** Like sonic-boom's flushSync: partial writes go on, a busy pipe is retried, a closed one ends it. */
function writeAllSync(fd: number, text: string): void {
  let rest = Buffer.from(text, 'utf8');
  for (let busy = 0; rest.length > 0 && busy < 100; ) {
    try {
      rest = rest.subarray(writeSync(fd, rest));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EAGAIN' && code !== 'EBUSY') return;
      busy += 1;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
    }
  }
}
