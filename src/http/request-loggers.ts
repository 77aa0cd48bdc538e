/**
 * The loggers a request uses (log.ts says why they are cheap):
 * - the request line's: the same destination, level and base fields as the server's logger, without
 *   redaction. Only for lines whose fields are all our own primitives (request-log.ts): redacting
 *   them would change nothing and cost ~30 µs a line.
 * - fastify's per-request child, made on first use: pino serialises and redacts a child's bindings
 *   (the request id) when it is made, and most requests never log through it.
 */
import type { Bindings, ChildLoggerOptions, Logger } from 'pino';

/** The logger for the per-request line (see the header comment). */
export function requestLineLogger(log: Logger): Logger {
  return log.child({}, { redact: [] });
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
