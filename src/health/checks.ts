/**
 * registry:2's health checks (its `health:` section), plus stowage's upstream reachability probe.
 * A check is a function that throws when the thing it watches is not fine; monitor.ts runs it
 * periodically and applies the threshold. Names are registry:2's: "storagedriver_<driver>", the
 * file path, the URI, the TCP address; upstream probes are "upstream_<name>".
 */
import { stat } from 'node:fs/promises';
import { connect } from 'node:net';
import { randomUUID } from 'node:crypto';
import { request } from 'undici';
import { isPathNotFound, type StorageDriver } from '../storage/driver.js';

export interface HealthCheck {
  name: string;
  intervalMs: number;
  /** Consecutive failures before the check counts as failing (registry:2: unset means 1). */
  threshold: number;
  /** Resolves when fine; rejects with the reason shown in /debug/health otherwise. */
  run(): Promise<void>;
}

export interface Periodic { intervalMs: number; threshold: number }

/**
 * The storage driver can store, read back and delete a small file. registry:2 only stats "/",
 * which a full disk or a read-only mount passes; a registry that cannot write is not healthy.
 * The probe lives outside registry:2's docker/ tree.
 */
export function storageDriverCheck(driver: StorageDriver, options: Periodic): HealthCheck {
  const path = `/stowage/health/${randomUUID()}`;
  return {
    name: `storagedriver_${driver.name}`,
    ...options,
    async run() {
      const probe = Buffer.from(new Date().toISOString());
      try {
        await driver.putContent(path, probe);
        const back = await driver.getContent(path);
        if (!back.equals(probe)) throw new Error('storage returned other bytes than were written');
      } finally {
        await driver.delete(path).catch((e: unknown) => { if (!isPathNotFound(e)) throw e; });
      }
    },
  };
}

/**
 * The shared metadata database answers a trivial query within timeoutMs. While it does not, this
 * replica answers 503, so a load balancer's health check takes it out, and back once it answers.
 */
export function databaseCheck(database: { ping(): Promise<void> }, o: Periodic & { timeoutMs: number }): HealthCheck {
  return {
    name: 'database',
    intervalMs: o.intervalMs,
    threshold: o.threshold,
    async run() {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_r, reject) => {
        timer = setTimeout(() => reject(new Error(`the database did not answer within ${o.timeoutMs} ms`)), o.timeoutMs);
      });
      try {
        await Promise.race([database.ping(), timeout]);
      } catch (err) {
        const cause = (err as { cause?: unknown }).cause;
        throw new Error(cause instanceof Error ? `the database is unavailable: ${cause.message}` : (err as Error).message);
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/** Fails while the file exists: touch it to take this instance out of rotation (registry:2). */
export function fileCheck(file: string, intervalMs: number): HealthCheck {
  return {
    name: file,
    intervalMs,
    threshold: 1,
    async run() {
      const exists = await stat(file).then(() => true, (e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT' || e.code === 'ENOTDIR') return false;
        throw e;
      });
      if (exists) throw new Error('file exists');
    },
  };
}

export interface HttpCheckOptions extends Periodic {
  uri: string;
  headers: Record<string, string[]>;
  statuscode: number;
  timeoutMs: number;
}

/** A HEAD request must answer with statuscode (registry:2 uses HEAD too). */
export function httpCheck(o: HttpCheckOptions): HealthCheck {
  return {
    name: o.uri,
    intervalMs: o.intervalMs,
    threshold: o.threshold,
    async run() {
      const res = await request(o.uri, {
        method: 'HEAD', headers: o.headers, headersTimeout: o.timeoutMs, bodyTimeout: o.timeoutMs,
        signal: AbortSignal.timeout(o.timeoutMs),
      });
      await res.body.dump();
      if (res.statusCode !== o.statuscode) throw new Error(`downstream service returned unexpected status: ${res.statusCode}`);
    },
  };
}

export interface TcpCheckOptions extends Periodic { addr: string; timeoutMs: number }

/** A TCP connection to addr (host:port) must open within the timeout. */
export function tcpCheck(o: TcpCheckOptions): HealthCheck {
  const { host, port } = splitHostPort(o.addr);
  return {
    name: o.addr,
    intervalMs: o.intervalMs,
    threshold: o.threshold,
    run: () => new Promise<void>((resolve, reject) => {
      const socket = connect({ host, port, timeout: o.timeoutMs });
      socket.once('connect', () => { socket.destroy(); resolve(); });
      socket.once('timeout', () => { socket.destroy(); reject(new Error(`connection to ${o.addr} timed out`)); });
      socket.once('error', (e) => reject(new Error(`connection to ${o.addr} failed: ${e.message}`)));
    }),
  };
}

/**
 * Is the upstream registry reachable: GET /v2/ answered without a server error (401 is the usual
 * answer from a registry that wants a token). Reported, never failing health: a cache whose
 * upstream is down still serves what it has.
 */
export function upstreamCheck(name: string, url: string, o: Periodic & { timeoutMs: number }): HealthCheck {
  return {
    name: `upstream_${name}`,
    intervalMs: o.intervalMs,
    threshold: o.threshold,
    async run() {
      const res = await request(`${url}/v2/`, {
        method: 'GET', headers: { 'user-agent': 'stowage' }, headersTimeout: o.timeoutMs, bodyTimeout: o.timeoutMs,
        signal: AbortSignal.timeout(o.timeoutMs),
      });
      await res.body.dump();
      if (res.statusCode >= 500) throw new Error(`${url}/v2/ answered ${res.statusCode}`);
    },
  };
}

/**
 * Upstream reachability without contacting it: what the pulls themselves found, as the upstream
 * client's circuit breaker keeps it (open = it failed repeatedly and is not being waited on).
 * The default, so that in an isolated network nothing leaves the machine but pulls.
 */
export function upstreamBreakerCheck(name: string, breaker: { state(): string }, intervalMs: number): HealthCheck {
  return {
    name: `upstream_${name}`,
    intervalMs,
    threshold: 1,
    async run() {
      const state = breaker.state();
      if (state !== 'closed') throw new Error(`circuit ${state}: recent requests to the upstream failed`);
    },
  };
}

function splitHostPort(addr: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(addr);
  if (!m) throw new Error(`expected host:port, got ${JSON.stringify(addr)}`);
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port: Number(m[3]) };
}
