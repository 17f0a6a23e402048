import type { Logger } from 'pino';
import type { Metrics } from '../observability/metrics.js';
import { startProvider, type RunningProvider } from '../server/provider.js';
import { parseFlags, type Io } from './flags.js';

export const serveUsage = `usage: usp serve [--config FILE] [--socket-dir DIR] [--provider-name NAME] [--http-addr HOST:PORT]
                 [--log-level LEVEL] [--grace-period SECONDS]
Serves the CSI driver's provider API on DIR/NAME.sock. Each flag may also come from its
environment variable: USP_CONFIG, USP_SOCKET_DIR, USP_PROVIDER_NAME, USP_HTTP_ADDR, USP_LOG_LEVEL,
USP_GRACE_PERIOD.
`;

export const serveFlags = {
  config: { type: 'string' },
  'socket-dir': { type: 'string' },
  'provider-name': { type: 'string' },
  'http-addr': { type: 'string' },
  'log-level': { type: 'string' },
  'grace-period': { type: 'string' },
} as const;

export function readServeFlags(args: string[], env: Io['env']) {
  const flags = parseFlags(args, serveFlags);
  const pick = (flag: keyof typeof serveFlags, variable: string, fallback: string) =>
    (flags[flag] as string | undefined) ?? env[variable] ?? fallback;
  return {
    configPath: pick('config', 'USP_CONFIG', '/etc/usp/config.yaml'),
    socketDir: pick('socket-dir', 'USP_SOCKET_DIR', '/var/run/secrets-store-csi-providers'),
    providerName: pick('provider-name', 'USP_PROVIDER_NAME', 'universal'),
    httpAddr: pick('http-addr', 'USP_HTTP_ADDR', '0.0.0.0:8095'),
    logLevel: pick('log-level', 'USP_LOG_LEVEL', 'info'),
    graceSeconds: Number(pick('grace-period', 'USP_GRACE_PERIOD', '25')),
  };
}

/** `usp serve`: starts the provider; resolves with a stop function for the signal handlers. */
export async function runServe(
  flags: ReturnType<typeof readServeFlags>,
  deps: { logger: Logger; metrics: Metrics },
): Promise<RunningProvider> {
  return startProvider({
    configPath: flags.configPath,
    socketDir: flags.socketDir,
    providerName: flags.providerName,
    httpAddr: flags.httpAddr,
    graceMs: flags.graceSeconds * 1000,
    logger: deps.logger,
    metrics: deps.metrics,
  });
}
