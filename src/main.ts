#!/usr/bin/env node
import { pino, type Logger, type LevelWithSilent } from 'pino';
import { UsageError } from './cli/class-file.js';
import type { Io } from './cli/flags.js';
import { migrateUsage, runMigrate } from './cli/migrate.js';
import { mountUsage, runMount } from './cli/mount.js';
import { renderUsage, runRender } from './cli/render.js';
import { runSchema, schemaUsage } from './cli/schema.js';
import { readServeFlags, runServe, serveUsage } from './cli/serve.js';
import { runValidate, validateUsage } from './cli/validate.js';
import { createLogger } from './observability/log.js';
import { createLogDestination } from './observability/log-destination.js';
import { createMetrics } from './observability/metrics.js';
import { runtimeVersion } from './package-info.js';
import { StartupError } from './server/provider.js';

const usage = `usp ${runtimeVersion}: Universal Secrets Provider for the Secrets Store CSI Driver

commands:
  serve      serve the provider API on a Unix socket (the DaemonSet's command)
  render     run a SecretProviderClass through the pipeline locally and show the files
  validate   check a provider config and a SecretProviderClass offline
  mount      send a driver-like Mount to a running provider
  migrate    convert a vault, aws, azure or gcp SecretProviderClass into one for this provider
  schema     print the JSON Schema of the provider config (for editors)

${serveUsage}
${renderUsage}
${validateUsage}
${mountUsage}
${migrateUsage}
${schemaUsage}`;

const levels = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

/** The composition root: the only place that reads the environment, signals and exit codes. */
async function main(argv: string[]): Promise<number> {
  const io: Io = {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    env: process.env,
  };
  const [command, ...args] = argv;
  try {
    switch (command) {
      case 'serve':
        return await serve(args, io);
      case 'render':
        return await runRender(args, io, cliLogger(io));
      case 'validate':
        return await runValidate(args, io);
      case 'mount':
        return await runMount(args, io);
      case 'migrate':
        return await runMigrate(args, io);
      case 'schema':
        return runSchema(args, io);
      case 'version':
      case '--version':
        io.stdout(`${runtimeVersion}\n`);
        return 0;
      case 'help':
      case '--help':
      case '-h':
        io.stdout(usage);
        return 0;
      default:
        io.stderr(command ? `unknown command "${command}"\n\n${usage}` : usage);
        return 2;
    }
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr(`${err.message}\n(see usp help)\n`);
      return 2;
    }
    if (err instanceof StartupError) {
      io.stderr(`${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

async function serve(args: string[], io: Io): Promise<number> {
  const flags = readServeFlags(args, io.env);
  if (!levels.has(flags.logLevel)) throw new UsageError(`--log-level: one of ${[...levels].join(', ')}`);
  if (!Number.isFinite(flags.graceSeconds) || flags.graceSeconds < 0) throw new UsageError('--grace-period: seconds, 0 or more');
  // Batched (log-destination.ts): a write per Mount line costs more than the Mount itself on a cache hit.
  const destination = createLogDestination();
  const logger = createLogger({ level: flags.logLevel as LevelWithSilent, destination });
  guardProcess(logger);
  // Listen before starting: a signal that arrives while the provider binds must still drain it.
  const stopSignal = new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  const provider = await runServe(flags, { logger, metrics: createMetrics() });
  const signal = await stopSignal;
  logger.info({ signal }, 'shutting down');
  await provider.stop();
  destination.flushSync();
  // Idle keep-alive handles of client libraries must not hold a stopped provider open.
  process.exit(0);
}

/** A stray rejection in one Mount must not take down every pod's mounts on the node. */
function guardProcess(logger: Logger): void {
  process.on('unhandledRejection', (reason) => {
    logger.error({ kind: reason instanceof Error ? reason.constructor.name : typeof reason }, 'unhandled rejection');
  });
}

function cliLogger(io: Io): Logger {
  const level = io.env.USP_LOG_LEVEL && levels.has(io.env.USP_LOG_LEVEL) ? io.env.USP_LOG_LEVEL : 'error';
  return createLogger({ level: level as LevelWithSilent, destination: pino.destination({ fd: 2, sync: true }) });
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`usp: internal error (${err instanceof Error ? err.constructor.name : typeof err})\n`);
    process.exitCode = 1;
  },
);

