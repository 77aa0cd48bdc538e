/** Start-up: build the dependencies from a Config, listen, run the background timers, shut down cleanly. */
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { buildApp } from './app.js';
import type { Config } from './config/schema.js';
import { MetadataIndex } from './metadata/index.js';
import { LocalRegistry } from './registry/registry.js';
import { createDriver } from './storage/drivers/index.js';
import { Metrics } from './metrics.js';
import { PullThrough } from './proxy/pull-through.js';
import { UpstreamRouter, type Upstream } from './proxy/routing.js';
import { CacheExpiry } from './proxy/expiry.js';
import { UpstreamClient } from './upstream/client.js';

export interface Services {
  registry: LocalRegistry;
  metadata: MetadataIndex;
  metrics: Metrics;
  proxy?: PullThrough;
  expiry: CacheExpiry;
  close(): Promise<void>;
}

export function createServices(config: Config, log: Logger): Services {
  const storage = createDriver(config.storage.backend);
  const metadata = new MetadataIndex(config.metadata.path);
  const registry = new LocalRegistry(storage, metadata, log);
  const metrics = new Metrics({ defaults: true });
  const upstreams: Upstream[] = config.upstreams.map((cfg) => ({
    config: cfg,
    client: new UpstreamClient(cfg, { log: log.child({ upstream: cfg.name }) }),
  }));
  const proxy = upstreams.length > 0
    ? new PullThrough({ registry, metadata, log, metrics, router: new UpstreamRouter(upstreams, config.defaultUpstream) })
    : undefined;
  if (proxy) registry.local.onNewLocal((repo) => proxy.noteNewLocal(repo));
  const expiry = new CacheExpiry(config.upstreams, registry, metadata, log);
  return {
    registry,
    metadata,
    metrics,
    expiry,
    ...(proxy ? { proxy } : {}),
    async close() {
      expiry.stop();
      await Promise.all(upstreams.map((u) => u.client.close()));
      metadata.close();
      await storage.close?.();
    },
  };
}

export interface RunningServer {
  app: FastifyInstance;
  address: string;
  /**
   * Graceful stop: stop accepting; let in-flight requests (uploads, blob bodies) and upstream
   * fills finish for up to drainMs, then cut what is left (nothing partial is ever committed);
   * flush the access records; close SQLite. drainMs 0 cuts at once, as registry:2 does without
   * http.draintimeout.
   */
  close(options?: { drainMs?: number }): Promise<void>;
}

const ACCESS_FLUSH_MS = 30_000;
/** Drain time when none is given (registry:2's http.draintimeout). */
export const DEFAULT_DRAIN_MS = 30_000;

export async function startServer(config: Config, log: Logger): Promise<RunningServer> {
  const services = createServices(config, log);
  await services.registry.ensureIndexed(config.upstreams.map((u) => u.name));
  const app = buildApp({ config, registry: services.registry, log, metrics: services.metrics, ...(services.proxy ? { proxy: services.proxy } : {}) });
  const timers: NodeJS.Timeout[] = [];
  timers.push(setInterval(() => services.metadata.flushAccessTimes(), ACCESS_FLUSH_MS).unref());
  services.expiry.start();
  const purging = config.storage.maintenance.uploadpurging;
  if (purging.enabled) {
    const purge = async () => {
      try {
        const purged = await services.registry.uploads.purge(Date.now() - purging.ageMs, purging.dryrun);
        if (purged.length > 0) log.info({ purged: purged.length, dryrun: purging.dryrun }, 'purged stale upload sessions');
      } catch (err) {
        log.error({ err }, 'upload purge failed');
      }
    };
    timers.push(setTimeout(() => void purge(), 60_000).unref());
    timers.push(setInterval(() => void purge(), purging.intervalMs).unref());
  }
  const address = await app.listen({ host: config.http.host, port: config.http.port });
  log.info({
    address, storage: config.storage.backend, metadata: config.metadata.path,
    upstreams: config.upstreams.map((u) => `${u.name}=${u.url}`), defaultUpstream: config.defaultUpstream,
  }, 'stowage listening');
  let closing: Promise<void> | undefined;
  const close = async (drainMs: number): Promise<void> => {
    for (const t of timers) clearInterval(t);
    await drain(app, services, drainMs, log);
    await services.close();
    log.info('stopped');
  };
  return {
    app,
    address,
    close(options = {}) {
      closing ??= close(options.drainMs ?? DEFAULT_DRAIN_MS);
      return closing;
    },
  };
}

/**
 * Stops accepting (fastify answers requests on kept-alive connections with 503 and closes idle
 * ones) and waits for open connections and upstream fills; at the deadline, cuts both.
 */
async function drain(app: FastifyInstance, services: Services, drainMs: number, log: Logger): Promise<void> {
  const started = Date.now();
  const connections = new Promise<void>((resolve) => app.server.getConnections((_e, n) => {
    log.info({ connections: n, drainMs }, 'draining: no new connections; waiting for in-flight requests and fills');
    resolve();
  }));
  await connections;
  const closed = app.close();
  const work = Promise.all([closed, services.proxy?.fillsSettled()]);
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<'timeout'>((resolve) => { timer = setTimeout(() => resolve('timeout'), drainMs); });
  const outcome = await Promise.race([work.then(() => 'drained' as const), deadline]);
  clearTimeout(timer);
  if (outcome === 'timeout') {
    log.warn({ drainMs }, 'drain time is up: closing the remaining connections and stopping upstream fills');
    app.server.closeAllConnections();
    services.proxy?.abortFills();
    await work;
  }
  log.info({ ms: Date.now() - started, outcome }, 'drained');
}
