/**
 * registry:2's debug server (http.debug.addr), reduced to what is safe to expose to a monitoring
 * network: GET /debug/health (registry:2's JSON: {} and 200 when healthy, failing check -> reason
 * and 503 otherwise) and the Prometheus metrics (http.debug.prometheus). Nothing else: no pprof,
 * no expvar, no registry API.
 */
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { HealthStatus } from '../health/monitor.js';
import type { Metrics } from '../metrics.js';

export interface DebugServerDeps {
  health: HealthStatus;
  metrics?: Metrics;
  prometheus: { enabled: boolean; path: string };
  log: Logger;
}

export function buildDebugApp(deps: DebugServerDeps): FastifyInstance {
  const app = Fastify({
    loggerInstance: deps.log,
    logController: new LogController({ disableRequestLogging: true }),
    forceCloseConnections: true,
  }) as unknown as FastifyInstance;
  app.get('/debug/health', async (_req, reply) => {
    const failing = deps.health.failing();
    return reply.code(Object.keys(failing).length === 0 ? 200 : 503)
      .header('cache-control', 'no-cache')
      .type('application/json; charset=utf-8')
      .send(JSON.stringify(failing));
  });
  const metrics = deps.metrics;
  if (deps.prometheus.enabled && metrics) {
    app.get(deps.prometheus.path, async (_req, reply) => reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()));
  }
  app.setNotFoundHandler((_req, reply) => reply.code(404).type('text/plain; charset=utf-8').send('404 page not found\n'));
  return app;
}
