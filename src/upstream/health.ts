/**
 * A circuit breaker per upstream. After `threshold` consecutive outages (connection failures,
 * timeouts, 5xx) the circuit opens: calls fail at once, so stale answers are served in
 * milliseconds instead of after a timeout. After a cooldown (doubling up to a cap while the
 * upstream stays down) one probe is let through; its success closes the circuit.
 */
export type CircuitState = 'closed' | 'open' | 'half-open';

export interface BreakerOptions { threshold?: number; cooldownMs?: number; maxCooldownMs?: number; now?: () => number }

export class CircuitBreaker {
  private failures = 0;
  private openedAt = 0;
  private cooldown: number;
  private probing = false;
  private readonly threshold: number;
  private readonly baseCooldown: number;
  private readonly maxCooldown: number;
  private readonly now: () => number;

  constructor(options: BreakerOptions = {}) {
    this.threshold = options.threshold ?? 3;
    this.baseCooldown = options.cooldownMs ?? 10_000;
    this.maxCooldown = options.maxCooldownMs ?? 60_000;
    this.cooldown = this.baseCooldown;
    this.now = options.now ?? Date.now;
  }

  state(): CircuitState {
    if (this.failures < this.threshold) return 'closed';
    return this.now() - this.openedAt >= this.cooldown ? 'half-open' : 'open';
  }

  /** True if a call may go out now (a half-open circuit lets exactly one probe through). */
  allow(): boolean {
    const s = this.state();
    if (s === 'closed') return true;
    if (s === 'open' || this.probing) return false;
    this.probing = true;
    return true;
  }

  success(): void {
    this.failures = 0;
    this.probing = false;
    this.cooldown = this.baseCooldown;
  }

  failure(): void {
    const wasProbe = this.probing;
    this.probing = false;
    this.failures++;
    if (wasProbe) this.cooldown = Math.min(this.cooldown * 2, this.maxCooldown);
    if (this.failures >= this.threshold) this.openedAt = this.now();
  }

  /** Opens the circuit now, whatever the count (an endpoint caught serving bad content). */
  trip(): void {
    this.probing = false;
    this.failures = Math.max(this.failures, this.threshold);
    this.openedAt = this.now();
  }

  /** A call that was allowed but ended without telling health either way (e.g. a 404). */
  neutral(): void {
    if (this.probing) this.success();
  }
}
