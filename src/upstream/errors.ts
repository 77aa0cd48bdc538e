/** Upstream failures, and how each reaches the client (DESIGN.md "Errors"). */
import { RegistryError } from '../errors.js';

export type UpstreamErrorKind = 'unavailable' | 'timeout' | 'rate-limited' | 'unauthorized' | 'circuit-open' | 'bad-response';

export class UpstreamError extends Error {
  constructor(
    readonly kind: UpstreamErrorKind,
    readonly upstream: string,
    message: string,
    readonly options: { status?: number; retryAfter?: number; cause?: unknown } = {},
  ) {
    super(`upstream ${upstream}: ${message}`, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'UpstreamError';
  }

  /** Failures that say the upstream is unhealthy (they count toward opening the circuit). */
  get isOutage(): boolean {
    return this.kind === 'unavailable' || this.kind === 'timeout';
  }
}

export function toRegistryError(e: UpstreamError): RegistryError {
  const detail = { upstream: e.upstream, reason: e.kind };
  switch (e.kind) {
    case 'rate-limited':
      return new RegistryError('TOOMANYREQUESTS', `upstream ${e.upstream} is rate limiting`, {
        detail, ...(e.options.retryAfter !== undefined ? { headers: { 'Retry-After': String(e.options.retryAfter) } } : {}),
      });
    case 'timeout':
      return new RegistryError('UNAVAILABLE', `upstream ${e.upstream} timed out`, { status: 504, detail });
    case 'unavailable':
    case 'circuit-open':
      return new RegistryError('UNAVAILABLE', `upstream ${e.upstream} is unavailable`, { status: 503, detail });
    case 'unauthorized':
      return new RegistryError('UNAVAILABLE', `upstream ${e.upstream} refused stowage's credentials`, { status: 502, detail });
    case 'bad-response':
      return new RegistryError('UNAVAILABLE', `upstream ${e.upstream} answered unexpectedly (${e.options.status ?? '?'})`, { status: 502, detail });
  }
}
