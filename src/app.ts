/**
 * buildApp: the fastify instance with every dependency injected. No I/O happens here; main.ts
 * builds the dependencies (storage driver, metadata index, registry) and listens.
 */
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { randomUUID } from 'node:crypto';
import type { Config } from './config/schema.js';
import { RegistryError } from './errors.js';
import type { HealthStatus } from './health/monitor.js';
import type { Metrics } from './metrics.js';
import type { PullThrough } from './proxy/pull-through.js';
import type { LocalRegistry } from './registry/registry.js';
import { registerErrorHandling } from './http/plugins/errors.js';
import { registerRequestLog } from './http/plugins/request-log.js';
import { registerEventContext } from './http/plugins/event-context.js';
import { registerV2 } from './http/v2.js';

export interface AppDeps {
  config: Config;
  registry: LocalRegistry;
  log: Logger;
  proxy?: PullThrough;
  metrics?: Metrics;
  /** While it reports unhealthy, every request but /metrics is 503 (registry:2's health.Handler). */
  health?: HealthStatus;
}

export function buildApp(deps: AppDeps): FastifyInstance {
  const { config, log } = deps;
  const app = Fastify({
    loggerInstance: log,
    // request-log.ts writes the one line per request; fastify's own pair of lines is off.
    logController: new LogController({ disableRequestLogging: true }),
    requestIdHeader: 'x-request-id',
    genReqId: () => randomUUID(),
    forceCloseConnections: 'idle',
    return503OnClosing: true,
    keepAliveTimeout: 75_000,
    // Upload bodies are streamed by the routes, never parsed or buffered by fastify.
    bodyLimit: Number.MAX_SAFE_INTEGER,
  }) as unknown as FastifyInstance;

  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, _payload, done) => done(null, undefined));

  const extraHeaders = Object.entries(config.http.headers);
  app.addHook('onRequest', async (_req, reply) => {
    reply.header('Docker-Distribution-API-Version', 'registry/2.0');
    for (const [name, values] of extraHeaders) reply.header(name, values.length === 1 ? values[0] : values);
  });
  if (config.notifications.endpoints.some((e) => !e.disabled)) registerEventContext(app, config);
  registerRequestLog(app, deps.metrics);
  registerErrorHandling(app);
  const health = deps.health;
  if (health) {
    app.addHook('onRequest', async (req) => {
      if (!health.healthy() && req.url !== '/metrics') {
        throw new RegistryError('UNAVAILABLE', 'service unavailable', { detail: 'health check failed: please see /debug/health' });
      }
    });
  }
  registerV2(app, { config, registry: deps.registry, ...(deps.proxy ? { proxy: deps.proxy } : {}), ...(deps.metrics ? { metrics: deps.metrics } : {}) });
  const metrics = deps.metrics;
  if (metrics) {
    app.get('/metrics', async (_req, reply) => reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()));
  }
  return app;
}
