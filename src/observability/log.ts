import { pino, type DestinationStream, type Logger, type LevelWithSilent } from 'pino';

/**
 * Paths that may hold tokens or secret material if someone ever logs a request-shaped object.
 * The Mount path never logs these; redaction is the second line of defence (CVE-2023-2878).
 */
const redactPaths = [
  'attributes',
  'secrets',
  'token',
  'tokens',
  'jwt',
  'contents',
  'value',
  'password',
  'authorization',
  '*.attributes',
  '*.secrets',
  '*.token',
  '*.tokens',
  '*.jwt',
  '*.contents',
  '*.value',
  '*.password',
  '*.authorization',
  'req.headers.authorization',
  'req.headers["x-vault-token"]',
];

const censor = '[REDACTED]';

export function createLogger(options: { level: LevelWithSilent; destination?: DestinationStream }): Logger {
  return pino(
    {
      level: options.level,
      base: { service: 'usp' },
      redact: { paths: redactPaths, censor },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    options.destination ?? pino.destination({ sync: false }),
  );
}

/** The paths that name a key of the line itself (no `.` or `[`): they apply to flat lines too. */
const topLevelPaths = redactPaths.filter((path) => !/[.[]/.test(path));

/**
 * A logger for lines whose every value is a string, number or boolean (the per-Mount lines). The
 * `*.x` paths only match inside objects, but pino still runs every value of every line through
 * their redactor: about half of pino's time formatting a Mount line (1% of the provider's CPU
 * samples on cache-hit Mounts). This child keeps the top-level paths, writes to the same
 * destination at the same level (it follows the parent's), and prints the same line.
 */
export function flatLineLogger(logger: Logger): Logger {
  return logger.child({}, { redact: { paths: topLevelPaths, censor } });
}
