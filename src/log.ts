/**
 * pino options: JSON lines, secrets redacted wherever they might appear.
 *
 * The hot path is the one line per request (http/plugins/request-log.ts), and two things made it
 * cost 40% of a warm manifest GET (bench/registry.mjs, issue 17):
 * - redaction: the wildcard paths below run @pinojs/redact on every value of every line and on
 *   every child's bindings, ~30 µs a line. The request line holds only fixed fields of our own
 *   (no headers, no config, no errors), so it is written by `requestLineLogger`, whose output
 *   would be the same redacted or not; every other line keeps full redaction.
 * - a write per line: pino's asynchronous destination (sonic-boom) handed every line to the
 *   threadpool as its own write(2). Lines are now gathered up to 4 KiB (about 12 request lines)
 *   or 100 ms, whichever comes first. What is buffered is written synchronously at exit (pino's
 *   own exit hook, and `flushLog` before serve exits), so a shutdown or a fatal error loses nothing.
 */
import { pino, type Bindings, type Logger } from 'pino';
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

/**
 * The logger for the per-request line: the same destination, level and base fields, without
 * redaction (see the header comment: only for lines whose fields are all our own primitives).
 */
export function requestLineLogger(log: Logger): Logger {
  return log.child({}, { redact: [] });
}

/**
 * fastify makes a child logger per request (its bindings: the request id), and pino serialises and
 * redacts the bindings when the child is made. Most requests never log through it (their one line
 * is the request line), so the child is made on first use instead.
 */
export function deferredChild(parent: Logger, bindings: Bindings): Logger {
  return new DeferredChild(parent, bindings) as unknown as Logger;
}

type LevelName = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';

class DeferredChild {
  private made: Logger | undefined;

  constructor(private readonly parent: Logger, private readonly ownBindings: Bindings) {}

  get level(): string {
    return this.made?.level ?? this.parent.level;
  }

  set level(level: string) {
    this.logger().level = level;
  }

  fatal(...args: unknown[]): void { this.write('fatal', args); }
  error(...args: unknown[]): void { this.write('error', args); }
  warn(...args: unknown[]): void { this.write('warn', args); }
  info(...args: unknown[]): void { this.write('info', args); }
  debug(...args: unknown[]): void { this.write('debug', args); }
  trace(...args: unknown[]): void { this.write('trace', args); }
  silent(): void {}

  isLevelEnabled(level: string): boolean {
    return (this.made ?? this.parent).isLevelEnabled(level);
  }

  child(bindings: Bindings, options?: pino.ChildLoggerOptions): Logger {
    return this.logger().child(bindings, options);
  }

  bindings(): Bindings {
    return this.made ? this.made.bindings() : { ...this.parent.bindings(), ...this.ownBindings };
  }

  flush(cb?: (err?: Error) => void): void {
    this.parent.flush(cb);
  }

  private write(level: LevelName, args: unknown[]): void {
    if (!this.isLevelEnabled(level)) return;
    (this.logger()[level] as (...a: unknown[]) => void)(...args);
  }

  private logger(): Logger {
    this.made ??= this.parent.child(this.ownBindings);
    return this.made;
  }
}
