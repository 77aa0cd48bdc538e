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
  close(): Promise<void>;
}

const ACCESS_FLUSH_MS = 30_000;

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
  let closed = false;
  return {
    app,
    address,
    async close() {
      if (closed) return;
      closed = true;
      for (const t of timers) clearInterval(t);
      await app.close();
      await services.close();
    },
  };
}
