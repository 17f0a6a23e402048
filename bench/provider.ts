import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseAllDocuments } from 'yaml';
import { packageRoot } from '../src/package-info.js';

/** How the provider process is run: Node flags and extra environment. */
export interface RunSettings {
  readonly nodeFlags: readonly string[];
  readonly env: Readonly<Record<string, string>>;
}

export const defaultSettings: RunSettings = { nodeFlags: [], env: {} };

/**
 * The settings the install manifest (deploy/install.yaml) gives the provider container: its
 * NODE_OPTIONS as flags, and the allocator's variables (MALLOC_*). Read from the manifest so the
 * bench measures what a node runs.
 */
export function readDaemonSetSettings(): RunSettings {
  const docs = parseAllDocuments(readFileSync(join(packageRoot, 'deploy/install.yaml'), 'utf8')).map((d) => d.toJS());
  const daemonSet = docs.find((d) => d?.kind === 'DaemonSet');
  const container = daemonSet?.spec?.template?.spec?.containers?.find((c: { name: string }) => c.name === 'provider');
  const env: Array<{ name: string; value?: string }> = container?.env ?? [];
  const value = (name: string) => env.find((e) => e.name === name)?.value;
  return {
    nodeFlags: (value('NODE_OPTIONS') ?? '').split(/\s+/).filter(Boolean),
    env: Object.fromEntries(env.filter((e) => e.name.startsWith('MALLOC_') && e.value !== undefined).map((e) => [e.name, e.value!])),
  };
}

/** The settings as the bench prints them. */
export const describeSettings = (s: RunSettings) => [...Object.entries(s.env).map(([k, v]) => `${k}=${v}`), ...s.nodeFlags].join(' ') || 'Node defaults';

/** The built provider in its own process, as the DaemonSet runs it, and what /proc says of it. */
export interface StartedProvider {
  readonly proc: ChildProcess;
  /** host:port of its HTTP endpoints (picked by the provider). */
  readonly address: string;
  /** From spawn to the first 200 from /readyz. */
  readonly readyMs: number;
}

export async function startProvider(dir: string, config = 'config.yaml', settings = defaultSettings, socketDir = 'sock'): Promise<StartedProvider> {
  const started = performance.now();
  const proc = spawn(
    process.execPath,
    [...settings.nodeFlags, join(packageRoot, 'dist/src/main.js'), 'serve', '--config', join(dir, config), '--socket-dir', join(dir, socketDir), '--http-addr', '127.0.0.1:0'],
    { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...settings.env, USP_LOG_LEVEL: 'info' } },
  );
  // The HTTP port is picked by the provider: read it from the ready line, then poll /readyz as a kubelet would.
  let output = '';
  const address = await new Promise<string>((resolve, reject) => {
    const read = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /"http":"([^"]+)"/.exec(output);
      if (!match) return;
      // From here on its log lines are drained unread: keeping and searching them would cost the
      // driver side of the bench CPU that the two cores share with the provider.
      proc.stdout!.off('data', read);
      proc.stdout!.resume();
      resolve(match[1]!);
    };
    proc.stdout!.on('data', read);
    proc.once('exit', () => reject(new Error(`provider exited: ${output}`)));
  });
  while ((await fetch(`http://${address}/readyz`).catch(() => undefined))?.status !== 200) await sleep(2);
  return { proc, address, readyMs: Math.round(performance.now() - started) };
}

export function readRss(pid: number, field: 'VmRSS' | 'VmHWM' = 'VmRSS'): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN);
  return round(kb / 1024);
}

/**
 * RSS once the process has been left alone long enough to settle. V8 collects and shrinks an idle
 * heap on its own (its memory reducer starts about 8 s after activity stops), so a reading taken
 * right after start-up or a Mount counts garbage a node does not keep paying for. Polls each second
 * until RSS has not moved by more than 0.25 MiB for `quietSeconds`, at most `maxSeconds`.
 */
export async function readSettledRss(pid: number, { quietSeconds = 5, maxSeconds = 30, smoke = false } = {}): Promise<number> {
  if (smoke) {
    await sleep(500);
    return readRss(pid);
  }
  let last = readRss(pid);
  let quiet = 0;
  for (let s = 0; s < maxSeconds && quiet < quietSeconds; s++) {
    await sleep(1000);
    const now = readRss(pid);
    quiet = Math.abs(now - last) <= 0.25 && s >= 10 ? quiet + 1 : 0;
    last = now;
  }
  return last;
}

export const round = (n: number) => Math.round(n * 100) / 100;
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Clock ticks per second for /proc/PID/stat (USER_HZ); 100 on Linux unless getconf says otherwise. */
const ticksPerSecond = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

function readCpu(pid: number) {
  // Fields 14 and 15 of /proc/PID/stat (after the parenthesised command): user and system time of
  // every thread of the process, in clock ticks.
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ');
  const wakeups = Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);
  return { seconds: (Number(fields[11]) + Number(fields[12])) / ticksPerSecond, wakeups };
}

/**
 * CPU a process spends doing nothing: user + system seconds over `seconds` of no traffic, scaled
 * to a minute, from /proc/PID/stat; and how often its main thread wakes up (voluntary context
 * switches of the main thread, from /proc/PID/status), which is what timers cost.
 */
export async function measureIdleCpu(pid: number, seconds: number) {
  const before = readCpu(pid);
  await sleep(seconds * 1000);
  const after = readCpu(pid);
  return {
    seconds,
    cpuSecondsPerMinute: round(((after.seconds - before.seconds) * 60) / seconds),
    wakeupsPerSecond: round((after.wakeups - before.wakeups) / seconds),
    source: '/proc/PID/stat utime+stime; wakeups: /proc/PID/status voluntary_ctxt_switches',
  };
}
