import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { recordText } from '../helpers/capture.js';
import { findOnPath } from './promtool.js';

/** Debian's prometheus server on PATH (the same package as promtool), or undefined. */
export const prometheusBin = findOnPath('prometheus');

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface RunningPrometheus {
  /** GET /api/v1/query: the result vector, or the error Prometheus answered. */
  query(expr: string): Promise<{ status: string; error?: string; data?: { result: Array<{ metric: Record<string, string>; value: [number, string] }> } }>;
  /** GET /api/v1/alerts: active (pending or firing) alerts. */
  alerts(): Promise<Array<{ labels: Record<string, string>; state: string }>>;
  stop(): Promise<void>;
}

/**
 * A real Prometheus on loopback that scrapes `target` every second under the job the production
 * overlay's ServiceMonitor gets, and evaluates `rules` (a rules file's content) every second.
 */
export async function startPrometheus(target: string, rules: unknown): Promise<RunningPrometheus> {
  if (!prometheusBin) throw new Error('prometheus is not installed');
  const dir = await mkdtemp(join(tmpdir(), 'usp-prometheus-'));
  await writeFile(join(dir, 'rules.yaml'), stringify(rules));
  const config = {
    global: { scrape_interval: '1s', evaluation_interval: '1s' },
    rule_files: ['rules.yaml'],
    scrape_configs: [
      {
        job_name: 'universal-secrets-provider-metrics',
        static_configs: [{ targets: [target], labels: { namespace: 'usp-system', pod: 'universal-secrets-provider-test' } }],
      },
    ],
  };
  await writeFile(join(dir, 'prometheus.yml'), stringify(config));
  const address = `127.0.0.1:${await freePort()}`;
  const child: ChildProcess = spawn(
    prometheusBin,
    [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=${address}`],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  child.stderr!.on('data', (chunk: Buffer) => (log += chunk.toString()));
  const exited = once(child, 'exit');
  const get = async (path: string) => (await fetch(`http://${address}${path}`)).json() as Promise<any>;
  const stop = async () => {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
    recordText('prometheus log', log);
    await rm(dir, { recursive: true, force: true });
  };
  for (let ready = false, tries = 0; !ready; tries++) {
    if (child.exitCode !== null || tries > 100) {
      await stop();
      throw new Error(`prometheus did not start:\n${log}`);
    }
    ready = await fetch(`http://${address}/-/ready`).then((r) => r.ok, () => false);
    if (!ready) await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    query: (expr) => get(`/api/v1/query?query=${encodeURIComponent(expr)}`),
    alerts: async () => (await get('/api/v1/alerts')).data.alerts,
    stop,
  };
}
