/** Start-up: build the dependencies from a Config, listen, run the background timers, shut down cleanly. */
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { buildApp } from './app.js';
import type { Config } from './config/schema.js';
import type { MetadataIndex } from './metadata/port.js';
import { openMetadata } from './metadata/open.js';
import { LocalRegistry } from './registry/registry.js';
import { createDriver } from './storage/drivers/index.js';
import { Metrics } from './metrics.js';
import { PullThrough } from './proxy/pull-through.js';
import { ClusterFills } from './proxy/cluster-fills.js';
import { advertiseUrl } from './proxy/advertise.js';
import { SignaturePolicy } from './policy/policy.js';
import { UpstreamRouter } from './proxy/routing.js';
import { Maintenance } from './lifecycle/maintenance.js';
import { MirrorChain } from './upstream/chain.js';
import { HeldBudget } from './upstream/held-budget.js';
import { SpoolDir } from './upstream/spool.js';
import { buildDebugApp } from './http/debug-server.js';
import { IdleConnections } from './http/idle-connections.js';
import type { HealthMonitor } from './health/monitor.js';
import { createHealthMonitor, type HealthOptions } from './health/options.js';
import { Notifier, type NotifyOptions } from './notify/notifier.js';
import { hostname, tmpdir } from 'node:os';
import { randomUUID } from 'node:crypto';
import { openSecurity } from './security.js';
import type { Server as TlsServer } from 'node:tls';
import type { Server as HttpServer } from 'node:http';

export interface Services {
  registry: LocalRegistry;
  metadata: MetadataIndex;
  metrics: Metrics;
  /** This process among the replicas on one index (leases, events' source.instanceID). */
  instanceId: string;
  proxy?: PullThrough;
  /** Replicas on a shared database: one upstream fetch per blob across them. */
  cluster?: ClusterFills;
  /** The configured upstreams and routes, when there are any. */
  router?: UpstreamRouter;
  /** Cache budget, garbage collection, upload purging, proxy TTL (started by the server only). */
  maintenance: Maintenance;
  health: HealthMonitor;
  notifier: Notifier;
  /** The signature policy, when the config has one. */
  signatures?: SignaturePolicy;
  close(): Promise<void>;
}

/** config.notifications as notify's options; the source record names this host and port, as registry:2's does. */
function notifyOptions(config: Config, instanceID: string): NotifyOptions {
  const n = config.notifications;
  return {
    includeReferences: n.events.includereferences,
    source: { addr: `${hostname()}:${config.http.port}`, instanceID },
    endpoints: n.endpoints.map((e) => ({
      name: e.name, url: e.url, headers: e.headers, timeoutMs: e.timeout, threshold: e.threshold, backoffMs: e.backoff,
      disabled: e.disabled, ignoredMediaTypes: [...e.ignoredmediatypes, ...e.ignore.mediatypes], ignoredActions: e.ignore.actions,
      maxPending: e.maxpending, batch: e.batch,
    })),
  };
}

/** config.health as the health module's options. */
function healthOptions(h: Config['health']): HealthOptions {
  return {
    storagedriver: { enabled: h.storagedriver.enabled, intervalMs: h.storagedriver.interval, threshold: h.storagedriver.threshold },
    file: h.file.map((f) => ({ file: f.file, intervalMs: f.interval })),
    http: h.http.map((c) => ({ uri: c.uri, headers: c.headers, statuscode: c.statuscode, timeoutMs: c.timeout, intervalMs: c.interval, threshold: c.threshold })),
    tcp: h.tcp.map((c) => ({ addr: c.addr, timeoutMs: c.timeout, intervalMs: c.interval, threshold: c.threshold })),
    upstreams: { enabled: h.upstreams.enabled, intervalMs: h.upstreams.interval, timeoutMs: h.upstreams.timeout },
    database: { intervalMs: h.database.interval, threshold: h.database.threshold, timeoutMs: h.database.timeout },
  };
}

export async function createServices(config: Config, log: Logger): Promise<Services> {
  let maintenance: Maintenance | undefined;
  const storage = await createDriver(config.storage.backend, { onFull: () => maintenance?.diskFull() });
  const instanceId = randomUUID();
  const metadata = await openMetadata(config, instanceId, log);
  const metrics = new Metrics({ defaults: true });
  const notifier = new Notifier(notifyOptions(config, instanceId), metadata, instanceId, log.child({ component: 'notify' }), metrics.registry);
  const registry = new LocalRegistry(storage, metadata, log, notifier.sink);
  maintenance = new Maintenance(config, registry, metadata, log, metrics, instanceId);
  const upstreams = config.upstreams.map((cfg) => ({
    config: cfg,
    client: new MirrorChain(cfg, { log: log.child({ upstream: cfg.name }), metrics }),
  }));
  const router = upstreams.length > 0 ? new UpstreamRouter(upstreams, config.defaultUpstream) : undefined;
  const cluster = router && metadata.kind === 'postgres'
    ? new ClusterFills(metadata.leases, instanceId,
      advertiseUrl(config.cluster.advertise_url, { host: config.http.host, port: config.http.port, tls: config.http.tls !== undefined }),
      await metadata.sharedSecret('peer'), log.child({ component: 'cluster' }))
    : undefined;
  const signatures = config.policy ? new SignaturePolicy(config.policy, { registry, metadata, log, metrics }) : undefined;
  const rangedBudget = new HeldBudget(config.ranges.max_memory);
  metrics.setRangedHeldSource(() => rangedBudget.held);
  const backend = config.storage.backend;
  const spoolDir = new SpoolDir(config.ranges.spool_dir ?? (backend.driver === 'filesystem' ? backend.rootdirectory : tmpdir()));
  metrics.setRangedSpooledSource(() => spoolDir.bytes);
  const proxy = router ? new PullThrough({ registry, metadata, log, metrics, router, budgetBytes: config.cache?.max_size ?? 0, rangedBudget, spoolDir, ...(cluster ? { cluster } : {}), ...(signatures ? { signatures } : {}) }) : undefined;
  if (proxy) registry.local.onNewLocal((repo) => void proxy.noteNewLocal(repo).catch(() => undefined));
  const health = createHealthMonitor(healthOptions(config.health), {
    storage, upstreams: upstreams.flatMap((u) => u.client.endpoints), log, registry: metrics.registry,
    ...(metadata.kind === 'postgres' ? { database: metadata } : {}),
  });
  return {
    registry,
    metadata,
    metrics,
    instanceId,
    maintenance,
    health,
    notifier,
    ...(proxy ? { proxy } : {}),
    ...(cluster ? { cluster } : {}),
    ...(router ? { router } : {}),
    ...(signatures ? { signatures } : {}),
    async close() {
      signatures?.close();
      await maintenance?.stop();
      health.stop();
      await notifier.flushAndStop(0);
      await Promise.all(upstreams.map((u) => u.client.close()));
      await cluster?.close();
      await metadata.close();
      await storage.close?.();
    },
  };
}

export interface RunningServer {
  app: FastifyInstance;
  address: string;
  /** The debug server's address (http.debug.addr), if one is configured. */
  debugAddress?: string;
  /**
   * Graceful stop: stop accepting; let in-flight requests (uploads, blob bodies) and upstream
   * fills finish for up to drainMs (default http.draintimeout), then cut what is left (nothing
   * partial is ever committed); flush the access records; close SQLite. drainMs 0 cuts at once.
   */
  close(options?: { drainMs?: number }): Promise<void>;
}

const ACCESS_FLUSH_MS = 30_000;
/**
 * Reads of repositories reach the index this often, so eviction on any replica sees a pull in
 * progress on another (lifecycle/evict.ts waits longer than this between untagging and removing).
 */
export const REPOSITORY_USE_FLUSH_MS = 500;

export async function startServer(config: Config, log: Logger): Promise<RunningServer> {
  const services = await createServices(config, log);
  let security;
  try {
    security = await openSecurity(config, log, await services.metadata.sharedSecret('token'));
    await services.registry.ensureIndexed(config.upstreams.map((u) => u.name));
  } catch (e) {
    await services.close();
    throw e;
  }
  const app = buildApp({
    config, registry: services.registry, log, metrics: services.metrics, health: services.health, ...(services.proxy ? { proxy: services.proxy } : {}),
    ...(services.cluster ? { cluster: services.cluster } : {}),
    ...(security.authenticator ? { authenticator: security.authenticator } : {}),
    ...(security.policy ? { policy: security.policy } : {}),
    ...(services.signatures ? { signatures: services.signatures } : {}),
    ...(security.https ? { https: security.https } : {}),
    ui: {
      browse: services.metadata.browse, sessionSecret: () => services.metadata.sharedSecret('ui-session'),
      maintenance: services.maintenance, notifier: services.notifier, ...(services.router ? { router: services.router } : {}),
    },
  });
  services.health.start();
  await services.notifier.start();
  const timers: NodeJS.Timeout[] = [];
  const flush = (what: string, work: () => Promise<unknown>) => () => void work().catch((err: unknown) => log.warn({ err }, `${what} could not be written to the index`));
  timers.push(setInterval(flush('access times', () => services.metadata.flushAccessTimes()), ACCESS_FLUSH_MS).unref());
  timers.push(setInterval(flush('repository reads', () => services.metadata.flushRepositoryUse()), REPOSITORY_USE_FLUSH_MS).unref());
  await services.maintenance.start();
  const idle = new IdleConnections(app.server as unknown as HttpServer);
  const address = await app.listen({ host: config.http.host, port: config.http.port });
  if (security.https) security.watch(app.server as unknown as TlsServer);
  log.info({
    ...security.summary,
    address, storage: config.storage.backend, metadata: `${services.metadata.kind} ${services.metadata.location}`,
    upstreams: config.upstreams.map((u) => `${u.name}=${[...(u.mirrors ?? []).map((m) => m.url), u.url].join(' > ')}`), defaultUpstream: config.defaultUpstream,
    ...(services.cluster ? { replica: services.instanceId, advertise: services.cluster.advertiseUrl } : {}),
  }, 'stowage listening');
  const debug = config.http.debug;
  const debugApp = debug && buildDebugApp({ health: services.health, metrics: services.metrics, prometheus: debug.prometheus, log: log.child({ server: 'debug' }) });
  const debugAddress = debug && debugApp ? await debugApp.listen({ host: debug.addr.host, port: debug.addr.port }) : undefined;
  if (debug && debugAddress) log.info({ address: debugAddress, health: '/debug/health', metrics: debug.prometheus.enabled ? debug.prometheus.path : false }, 'debug server listening');
  let closing: Promise<void> | undefined;
  const close = async (drainMs: number): Promise<void> => {
    for (const t of timers) clearInterval(t);
    await services.maintenance.stop();
    services.health.setDraining(); // readiness probes on the debug server fail from now on
    const started = Date.now();
    await drain(app, idle, services, drainMs, log);
    // Deliver what the endpoints will take in what is left of the drain time (at least a second).
    await services.notifier.flushAndStop(drainMs === 0 ? 0 : Math.max(1000, drainMs - (Date.now() - started)));
    security.close();
    await services.close();
    await debugApp?.close();
    log.info('stopped');
  };
  return {
    app,
    address,
    ...(debugAddress ? { debugAddress } : {}),
    close(options = {}) {
      closing ??= close(options.drainMs ?? config.http.draintimeout);
      return closing;
    },
  };
}

/**
 * Stops accepting (fastify answers requests on kept-alive connections with 503 and closes idle
 * ones) and waits for open connections and upstream fills; at the deadline, cuts both.
 */
async function drain(app: FastifyInstance, idle: IdleConnections, services: Services, drainMs: number, log: Logger): Promise<void> {
  const started = Date.now();
  const connections = new Promise<void>((resolve) => app.server.getConnections((_e, n) => {
    log.info({ connections: n, drainMs }, 'draining: no new connections; waiting for in-flight requests and fills');
    resolve();
  }));
  await connections;
  const closed = app.close();
  // A kept-alive connection whose request finishes during the drain would otherwise stay open
  // until the client or keepAliveTimeout closes it: close each one as soon as it is idle.
  // (socket.end(), not server.closeIdleConnections(): that destroys a socket whose response has
  // finished but whose last bytes are still queued to a slow client; see http/idle-connections.ts.)
  const idleSweep = setInterval(() => idle.endIdle(), 100);
  const work = Promise.all([closed, services.proxy?.fillsSettled()]);
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<'timeout'>((resolve) => { timer = setTimeout(() => resolve('timeout'), drainMs); });
  const outcome = await Promise.race([work.then(() => 'drained' as const), deadline]);
  clearTimeout(timer);
  clearInterval(idleSweep);
  if (outcome === 'timeout') {
    log.warn({ drainMs }, 'drain time is up: closing the remaining connections and stopping upstream fills');
    app.server.closeAllConnections();
    services.proxy?.abortFills();
    await work;
  }
  log.info({ ms: Date.now() - started, outcome }, 'drained');
}
