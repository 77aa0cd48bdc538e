/**
 * pino options: JSON lines, secrets redacted wherever they might appear.
 *
 * The hot path is the one line per request (http/plugins/request-log.ts), and two things made it
 * cost 40% of a warm manifest GET (bench/registry.mjs, issue 17):
 * - redaction: the wildcard paths below run @pinojs/redact on every value of every line and on
 *   every child's bindings, ~30 µs a line. The request line holds only fixed fields of our own
 *   (no headers, no config, no errors), so it is written without redaction, whose output would
 *   be the same redacted or not (http/request-loggers.ts); every other line keeps full redaction.
 * - a write per line: pino's asynchronous destination (sonic-boom) handed every line to the
 *   threadpool as its own write(2). Lines are now gathered up to 4 KiB (about 12 request lines)
 *   or 100 ms, whichever comes first. What is buffered is written synchronously at exit (pino's
 *   own exit hook, and `flushLog` before serve exits), so a shutdown or a fatal error loses nothing.
 */
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

/** Lines are written in batches of at least this many bytes, or after FLUSH_EVERY_MS. */
const LOG_BATCH_BYTES = 4096;
const FLUSH_EVERY_MS = 100;
/**
 * Past this many buffered bytes (a reader of stdout that stopped reading) lines are dropped rather
 * than held without bound; one notice on stderr says so.
 */
const MAX_BUFFERED_LOG_BYTES = 16 * 1024 * 1024;

export function createLogger(log: Config['log'], destination?: pino.DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    level: log.level,
    base: { ...log.fields },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  };
  return pino(options, destination ?? stdoutDestination());
}

function stdoutDestination(): pino.DestinationStream {
  const stream = pino.destination({
    dest: 1, sync: false, minLength: LOG_BATCH_BYTES, periodicFlush: FLUSH_EVERY_MS, maxLength: MAX_BUFFERED_LOG_BYTES,
  });
  stream.once('drop', () => process.stderr.write('stowage: stdout is not being read; log lines are being dropped\n'));
  return stream;
}

/** Writes out what the logger's destination still buffers, synchronously (before process.exit). */
export function flushLog(log: Logger): void {
  const stream = (log as unknown as Record<symbol, { flushSync?: () => void } | undefined>)[pino.symbols.streamSym];
  try {
    stream?.flushSync?.();
  } catch {
    // Nothing more can be done about a log that cannot be written.
  }
}
