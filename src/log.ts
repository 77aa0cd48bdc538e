/** pino options: JSON lines, secrets redacted wherever they might appear. */
import { pino, type Logger } from 'pino';
import { secretKeyNames } from './config/reference.js';
import type { Config } from './config/schema.js';

/** Fixed paths, plus every key the config schema marks secret, at any of the first three levels. */
export const REDACT_PATHS = [...new Set([
  'password', '*.password', '*.*.password', 'token', '*.token', 'secret', '*.secret',
  'headers.authorization', '*.headers.authorization', 'req.headers.authorization', 'headers.cookie',
  'config.http.secret', 'config.upstreams[*].password',
  ...secretKeyNames().flatMap((k) => [k, `*.${k}`, `*.*.${k}`]),
])];

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
