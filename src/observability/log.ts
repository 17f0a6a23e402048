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

export function createLogger(options: { level: LevelWithSilent; destination?: DestinationStream }): Logger {
  return pino(
    {
      level: options.level,
      base: { service: 'usp' },
      redact: { paths: redactPaths, censor: '[REDACTED]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    options.destination ?? pino.destination({ sync: false }),
  );
}
