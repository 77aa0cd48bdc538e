/**
 * The loggers a request uses (log.ts says why they are cheap):
 * - the request line's writer: one JSON line per request, written straight to the server logger's
 *   destination in the very shape pino writes (level, time, the logger's base fields, the
 *   request's fields, msg), without redaction. Only for the request line, whose fields are all
 *   our own strings and numbers (request-log.ts): redacting them would change nothing and cost
 *   ~30 µs a line, and pino's general serialiser (a key loop with a type switch and an escaping
 *   check per value) cost ~5% of a warm manifest GET (bench/registry.mjs).
 * - fastify's per-request child, made on first use: pino serialises and redacts a child's bindings
 *   (the request id) when it is made, and most requests never log through it.
 */
import { pino, type Bindings, type ChildLoggerOptions, type Logger } from 'pino';

/** What the one line per request says; unset fields are left off the line. */
export interface RequestLine {
  reqId: string;
  method: string;
  url: string;
  repo: string | undefined;
  user: string | undefined;
  reference: string | undefined;
  status: number | undefined;
  cache: string | undefined;
  bytes: number;
  upstreamBytes: number | undefined;
  redirected: boolean | undefined;
  ms: number;
  aborted: boolean;
}

export interface RequestLineWriter {
  /** Whether the line is written at all (the logger's level lets `info` through). */
  enabled(): boolean;
  write(line: RequestLine): void;
}

const INFO = 30;
type PinoInternals = Record<symbol, unknown>;

/** The request line's writer (see the header comment). */
export function requestLineWriter(log: Logger): RequestLineWriter {
  const internals = log as unknown as PinoInternals;
  const stream = internals[pino.symbols.streamSym] as { write(s: string): void } & PinoInternals;
  // A destination that wants pino's per-line metadata (pino.multistream) gets the line from pino.
  if (stream[pino.symbols.needsMetadataGsym]) {
    const child = log.child({}, { redact: [] });
    return { enabled: () => child.isLevelEnabled('info'), write: (line) => child.info(fieldsOf(line), 'request') };
  }
  // `{"level":"info"` as pino renders this logger's info level; the base fields (log.fields) as pino
  // serialised them; then the message key pino uses.
  const levelPrefix = (internals[pino.symbols.lsCacheSym] as Record<number, string>)[INFO];
  const bindings = internals[pino.symbols.chindingsSym] as string;
  const msgKey = JSON.stringify(internals[pino.symbols.messageKeySym] as string);
  const end = `,${msgKey}:"request"}\n`;
  // Formatting a Date was the line's largest cost; requests finish many to a millisecond.
  let lastMs = 0;
  let lastTime = '';
  const isoTime = (): string => {
    const now = Date.now();
    if (now !== lastMs) {
      lastMs = now;
      lastTime = new Date(now).toISOString();
    }
    return lastTime;
  };
  return {
    enabled: () => log.isLevelEnabled('info'),
    write(l) {
      let s = `${levelPrefix},"time":"${isoTime()}"${bindings},"reqId":${JSON.stringify(l.reqId)},"method":${JSON.stringify(l.method)},"url":${JSON.stringify(l.url)}`;
      if (l.repo !== undefined) s += `,"repo":${JSON.stringify(l.repo)}`;
      if (l.user !== undefined) s += `,"user":${JSON.stringify(l.user)}`;
      if (l.reference !== undefined) s += `,"reference":${JSON.stringify(l.reference)}`;
      if (l.status !== undefined) s += `,"status":${l.status}`;
      if (l.cache !== undefined) s += `,"cache":${JSON.stringify(l.cache)}`;
      s += `,"bytes":${l.bytes}`;
      if (l.upstreamBytes !== undefined) s += `,"upstreamBytes":${l.upstreamBytes}`;
      if (l.redirected !== undefined) s += `,"redirected":${l.redirected}`;
      s += `,"ms":${l.ms}`;
      if (l.aborted) s += ',"aborted":true';
      stream.write(s + end);
    },
  };
}

/** The line's fields as an object for pino (unset ones left out, as on the direct path). */
function fieldsOf(line: RequestLine): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(line)) if (v !== undefined && !(k === 'aborted' && v === false)) fields[k] = v;
  return fields;
}

/** fastify's per-request child logger, made when a request first logs through it. */
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

  child(bindings: Bindings, options?: ChildLoggerOptions): Logger {
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
