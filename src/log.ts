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
 *   threadpool as its own write(2). The lines of a turn of the event loop now go to it as one
 *   write at the end of that turn, and at most one such write happens per LOG_HANDOVER_MS
 *   (10 ms): measured again for issue 17, a write per turn still cost ~5% under load. What is
 *   still buffered at exit is written synchronously (an exit hook, and `flushLog` before serve
 *   exits), so a shutdown or a fatal error loses nothing.
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

/**
 * pino's own exit hook flushes its stream; this one first hands it the current turn's lines. One
 * process listener for every logger (tests make many); a logger that is garbage holds nothing.
 */
const atExit = new Set<WeakRef<() => void>>();
function flushAtExit(flushSync: () => void): void {
  if (atExit.size === 0) {
    process.once('exit', () => {
      for (const ref of atExit) {
        try { ref.deref()?.(); } catch { /* nothing more can be done about a log that cannot be written */ }
      }
    });
  }
  atExit.add(new WeakRef(flushSync));
}

/**
 * At most one hand-over of lines to the destination per LOG_HANDOVER_MS (or when
 * LOG_HANDOVER_BYTES are waiting): every hand-over is a write(2) on the threadpool and a wake-up of
 * the event loop when it completes, which cost ~5% of a warm manifest GET when it happened once per
 * turn of the event loop (bench/registry.mjs). A line logged when the last hand-over is that old
 * goes at the end of the current turn, as before; under load lines wait up to 10 ms.
 */
export const LOG_HANDOVER_MS = 10;
const LOG_HANDOVER_BYTES = 64 * 1024;

/** stdout, asynchronous, at most one write per LOG_HANDOVER_MS (see the header comment). */
function stdoutDestination(): pino.DestinationStream & { flushSync(): void } {
  const stream = pino.destination({ dest: 1, sync: false, maxLength: MAX_BUFFERED_LOG_BYTES });
  stream.once('drop', () => process.stderr.write('stowage: stdout is not being read; log lines are being dropped\n'));
  let waiting = '';
  let scheduled = false;
  let lastHandOver = 0;
  const handOver = () => {
    scheduled = false;
    lastHandOver = Date.now();
    const lines = waiting;
    waiting = '';
    if (lines !== '') stream.write(lines);
  };
  const flushSync = () => {
    handOver();
    stream.flushSync();
  };
  flushAtExit(flushSync);
  return {
    write(line: string) {
      waiting += line;
      if (waiting.length >= LOG_HANDOVER_BYTES) {
        handOver();
        return;
      }
      if (scheduled) return;
      scheduled = true;
      const wait = lastHandOver + LOG_HANDOVER_MS - Date.now();
      if (wait <= 0) setImmediate(handOver);
      // Unref'd: the exit hook writes what is still waiting when the process ends.
      else setTimeout(handOver, wait).unref();
    },
    flushSync,
  };
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
