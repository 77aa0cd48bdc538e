/** pino options: JSON lines, secrets redacted wherever they might appear. */
import { pino, type Logger } from 'pino';
import type { Config } from './config/schema.js';

export const REDACT_PATHS = [
  'password', '*.password', '*.*.password', 'token', '*.token', 'secret', '*.secret',
  'headers.authorization', '*.headers.authorization', 'req.headers.authorization', 'headers.cookie',
  'config.http.secret', 'config.upstreams[*].password',
  // Object-store credentials (storage.s3/oss/azure/swift), wherever a storage config is logged.
  'storage.secretkey', 'storage.accesskey', 'storage.accountkey', 'storage.password',
  '*.storage.secretkey', '*.storage.accesskey', '*.storage.accountkey', '*.storage.password',
];

export function createLogger(log: Config['log'], destination?: pino.DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    level: log.level,
    base: { ...log.fields },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  };
  return destination ? pino(options, destination) : pino(options);
}
