import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { recordText } from './capture.js';

/** The built CLI, exactly as the package's `usp` bin runs it. */
export const uspBin = fileURLToPath(new URL('../../dist/src/main.js', import.meta.url));

export interface RunResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `usp ARGS` to completion. */
export async function runUsp(args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<RunResult> {
  const child = spawn(process.execPath, [uspBin, ...args], {
    env: { ...process.env, ...options.env },
    cwd: options.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  if (!args.includes('--show-values')) recordText(`usp ${args[0]} output`, stdout + stderr);
  return { code, stdout, stderr };
}

export interface ServingUsp {
  readonly child: ChildProcess;
  /** Everything the process wrote so far (stdout and stderr), line by line. */
  readonly lines: string[];
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<string>;
  exited: Promise<number | null>;
}

/** Starts `usp serve ARGS` as its own process. */
export function spawnUsp(args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): ServingUsp {
  const child = spawn(process.execPath, [uspBin, ...args], {
    env: { ...process.env, ...options.env },
    cwd: options.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const waiters = new Set<() => void>();
  const collect = (chunk: Buffer) => {
    lines.push(...chunk.toString().split('\n').filter(Boolean));
    for (const w of waiters) w();
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  const exited = once(child, 'exit').then(([code]) => {
    recordText(`usp ${args[0]} process output`, lines.join('\n'));
    return code as number | null;
  });
  return {
    child,
    lines,
    exited,
    waitForLine(pattern, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = lines.find((l) => pattern.test(l));
          if (found) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve(found);
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no line matching ${pattern} within ${timeoutMs} ms; got:\n${lines.join('\n')}`));
        }, timeoutMs);
        waiters.add(check);
        check();
        void exited.then(() => {
          if (waiters.has(check)) {
            waiters.delete(check);
            clearTimeout(timer);
            reject(new Error(`process exited before a line matching ${pattern}; got:\n${lines.join('\n')}`));
          }
        });
      });
    },
  };
}
