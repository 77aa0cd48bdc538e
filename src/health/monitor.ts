/**
 * Runs the health checks periodically and keeps their verdicts, as registry:2's health registry
 * does: a check is failing once it has failed `threshold` times in a row, and fine again after one
 * success. The first run is at start-up (registry:2 waits one interval). Gating checks decide
 * health: /debug/health lists the failing ones, and while any fails every registry request is 503.
 * Upstream probes are only reported (metrics, a log line when reachability changes).
 */
import type { Logger } from 'pino';
import { Gauge, type Registry } from 'prom-client';
import type { HealthCheck } from './checks.js';

interface Verdict { failures: number; error: string | undefined; checkedAt: number }

export interface HealthStatus {
  /** False while a gating check fails or the server is draining. */
  healthy(): boolean;
  /** registry:2's /debug/health body: failing check name -> reason (empty when healthy). */
  failing(): Record<string, string>;
}

export class HealthMonitor implements HealthStatus {
  private readonly verdicts = new Map<string, Verdict>();
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly running = new Set<string>();
  private draining = false;
  private failingCount = 0;

  constructor(
    private readonly gating: HealthCheck[],
    private readonly reported: HealthCheck[],
    private readonly deps: { log: Logger; registry?: Registry },
  ) {
    for (const c of [...gating, ...reported]) this.verdicts.set(c.name, { failures: 0, error: undefined, checkedAt: 0 });
    const registers = deps.registry ? [deps.registry] : [];
    const verdicts = this.verdicts;
    new Gauge({
      name: 'stowage_health_check_up', help: 'Health checks (registry:2 health section): 1 passing, 0 failing',
      labelNames: ['check'] as const, registers,
      collect() { for (const c of gating) this.set({ check: c.name }, verdicts.get(c.name)!.error === undefined ? 1 : 0); },
    });
    new Gauge({
      name: 'stowage_upstream_reachable', help: 'Upstream registries answering GET /v2/ (reported only; never fails health)',
      labelNames: ['upstream'] as const, registers,
      collect() { for (const c of reported) this.set({ upstream: c.name.replace(/^upstream_/, '') }, verdicts.get(c.name)!.error === undefined ? 1 : 0); },
    });
  }

  start(): void {
    for (const check of [...this.gating, ...this.reported]) {
      void this.runOnce(check);
      this.timers.push(setInterval(() => void this.runOnce(check), check.intervalMs).unref());
    }
  }

  stop(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers.length = 0;
  }

  /** Shutdown: /debug/health fails from now on, so readiness probes take this instance out. */
  setDraining(): void {
    this.draining = true;
  }

  healthy(): boolean {
    return this.failingCount === 0 && !this.draining;
  }

  failing(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const c of this.gating) {
      const v = this.verdicts.get(c.name)!;
      if (v.error !== undefined) out[c.name] = v.error;
    }
    if (this.draining) out.shutdown = 'draining: stopped accepting connections';
    return out;
  }

  /** Runs one check now (never two runs of the same check at once). */
  async runOnce(check: HealthCheck): Promise<void> {
    if (this.running.has(check.name)) return;
    this.running.add(check.name);
    const v = this.verdicts.get(check.name)!;
    const wasFailing = v.error !== undefined;
    try {
      await check.run();
      v.failures = 0;
      v.error = undefined;
    } catch (err) {
      v.failures++;
      if (v.failures >= Math.max(1, check.threshold)) v.error = err instanceof Error ? err.message : String(err);
    } finally {
      v.checkedAt = Date.now();
      this.running.delete(check.name);
    }
    const isFailing = v.error !== undefined;
    if (isFailing === wasFailing) return;
    const gating = this.gating.includes(check);
    if (gating) this.failingCount += isFailing ? 1 : -1;
    if (isFailing) {
      this.deps.log.warn({ check: check.name, err: v.error, failures: v.failures },
        gating ? 'health check failing: registry requests answer 503' : 'upstream unreachable (health unaffected)');
    } else {
      this.deps.log.info({ check: check.name }, gating ? 'health check passing again' : 'upstream reachable again');
    }
  }
}
