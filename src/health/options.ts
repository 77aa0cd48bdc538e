/**
 * The health section as typed options (durations in ms), and the monitor built from it.
 * registry:2's keys: storagedriver {enabled, interval, threshold}, file [{file, interval}],
 * http [{uri, headers, statuscode, timeout, interval, threshold}], tcp [{addr, timeout, interval,
 * threshold}]. stowage's own: upstreams {enabled, interval, timeout} (reachability, reported only).
 */
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { StorageDriver } from '../storage/driver.js';
import { databaseCheck, fileCheck, httpCheck, storageDriverCheck, tcpCheck, upstreamBreakerCheck, upstreamCheck, type HttpCheckOptions, type TcpCheckOptions } from './checks.js';
import { HealthMonitor } from './monitor.js';

export interface HealthOptions {
  storagedriver: { enabled: boolean; intervalMs: number; threshold: number };
  file: Array<{ file: string; intervalMs: number }>;
  http: HttpCheckOptions[];
  tcp: TcpCheckOptions[];
  upstreams: { enabled: boolean; intervalMs: number; timeoutMs: number };
  database: { intervalMs: number; threshold: number; timeoutMs: number };
}

/** registry:2's defaults: no checks unless configured, 10s intervals, one failure is enough. */
export const DEFAULT_HEALTH: HealthOptions = {
  storagedriver: { enabled: false, intervalMs: 10_000, threshold: 1 },
  file: [],
  http: [],
  tcp: [],
  upstreams: { enabled: false, intervalMs: 60_000, timeoutMs: 5_000 },
  database: { intervalMs: 2_000, threshold: 1, timeoutMs: 2_000 },
};

export function createHealthMonitor(options: HealthOptions, deps: {
  storage: StorageDriver; upstreams: Array<{ name: string; url: string; breaker?: { state(): string } }>; log: Logger; registry?: Registry;
  /** The shared metadata database (PostgreSQL), when there is one. */
  database?: { ping(): Promise<void> };
}): HealthMonitor {
  const gating = [
    ...(deps.database ? [databaseCheck(deps.database, options.database)] : []),
    ...(options.storagedriver.enabled ? [storageDriverCheck(deps.storage, options.storagedriver)] : []),
    ...options.file.map((f) => fileCheck(f.file, f.intervalMs)),
    ...options.http.map((h) => httpCheck(h)),
    ...options.tcp.map((c) => tcpCheck(c)),
  ];
  // Active probes only when asked for; otherwise the breakers report what the pulls found.
  const reported = options.upstreams.enabled
    ? deps.upstreams.map((u) => upstreamCheck(u.name, u.url, { ...options.upstreams, threshold: 1 }))
    : deps.upstreams.flatMap((u) => (u.breaker ? [upstreamBreakerCheck(u.name, u.breaker, 5_000)] : []));
  return new HealthMonitor(gating, reported, { log: deps.log.child({ component: 'health' }), ...(deps.registry ? { registry: deps.registry } : {}) });
}
