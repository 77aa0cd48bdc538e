/**
 * buildApp: the fastify instance with every dependency injected. No I/O happens here; main.ts
 * builds the dependencies (storage driver, metadata index, registry) and listens.
 */
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import type { ServerOptions } from 'node:https';
import type { Logger } from 'pino';
import { randomUUID } from 'node:crypto';
import type { AccessPolicy } from './auth/access.js';
import type { Authenticator } from './auth/authenticator.js';
import type { Config } from './config/schema.js';
import { RegistryError } from './errors.js';
import type { HealthStatus } from './health/monitor.js';
import type { Metrics } from './metrics.js';
import type { SignaturePolicy } from './policy/policy.js';
import type { PullThrough } from './proxy/pull-through.js';
import { PEER_PATH, type ClusterFills } from './proxy/cluster-fills.js';
import type { LocalRegistry } from './registry/registry.js';
import type { Gate } from './http/context.js';
import { createAuthGate, registerTokenEndpoint } from './http/plugins/auth.js';
import { answerClientError, answerFrameworkError, registerErrorHandling } from './http/plugins/errors.js';
import { createBodyLimits } from './http/plugins/limits.js';
import { registerRequestLog } from './http/plugins/request-log.js';
import { registerEventContext } from './http/plugins/event-context.js';
import { registerV2 } from './http/v2.js';
import { registerPeerFills } from './http/peer.js';
import { registerUi, type UiServices } from './ui/plugin.js';

export interface AppDeps {
  config: Config;
  registry: LocalRegistry;
  log: Logger;
  proxy?: PullThrough;
  metrics?: Metrics;
  /** While it reports unhealthy, every request but /metrics is 503 (registry:2's health.Handler). */
  health?: HealthStatus;
  /** Who may do what (auth.htpasswd / auth.token, access rules); absent: open, as registry:2 without auth. */
  authenticator?: Authenticator;
  policy?: AccessPolicy;
  /** Signature policy (policy:); absent: nothing is checked. */
  signatures?: SignaturePolicy;
  /** https.createServer options (http.tls, see http/tls.ts); absent: plain HTTP. */
  https?: ServerOptions;
  /** Replicas: other replicas stream this one's upstream fills (http/peer.ts). */
  cluster?: ClusterFills;
  /** What the web page reads (ui.enabled); absent: no page. */
  ui?: UiServices;
}

export function buildApp(deps: AppDeps): FastifyInstance {
  const { config, log } = deps;
  const { timeouts } = config.http;
  // headersTimeout is enforced by a sweep every connectionsCheckingInterval (30 s by default).
  const serverOptions = {
    headersTimeout: timeouts.headers,
    connectionsCheckingInterval: Math.max(250, Math.min(5000, timeouts.headers / 4)),
  };
  const app = Fastify({
    loggerInstance: log,
    // request-log.ts writes the one line per request; fastify's own pair of lines is off.
    logController: new LogController({ disableRequestLogging: true }),
    requestIdHeader: 'x-request-id',
    genReqId: () => randomUUID(),
    forceCloseConnections: 'idle',
    return503OnClosing: true,
    keepAliveTimeout: timeouts.keepalive,
    maxRequestsPerSocket: config.http.max_requests_per_connection,
    // Whole-request deadlines would cut long uploads; bodies have their own idle limit.
    requestTimeout: 0,
    // A TLS handshake that never completes is held no longer than headers that never arrive.
    ...(deps.https ? { https: { ...deps.https, ...serverOptions, handshakeTimeout: timeouts.headers } } : { http: serverOptions }),
    // Upload bodies are streamed by the routes, never parsed or buffered by fastify.
    bodyLimit: Number.MAX_SAFE_INTEGER,
    // Requests that never reach a route still get the OCI error body (http/plugins/errors.ts).
    frameworkErrors: answerFrameworkError,
    clientErrorHandler: answerClientError,
  }) as unknown as FastifyInstance;

  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, _payload, done) => done(null, undefined));

  const extraHeaders = Object.entries(config.http.headers);
  // Callback hooks, not async ones: these run on every request, and an async hook costs a promise
  // and a microtask turn each.
  app.addHook('onRequest', (_req, reply, done) => {
    reply.header('Docker-Distribution-API-Version', 'registry/2.0');
    for (const [name, values] of extraHeaders) reply.header(name, values.length === 1 ? values[0] : values);
    done();
  });
  if (config.notifications.endpoints.some((e) => !e.disabled)) registerEventContext(app, config);
  const requestLog = registerRequestLog(app, deps.metrics);
  registerErrorHandling(app);
  const health = deps.health;
  if (health) {
    app.addHook('onRequest', (req, _reply, done) => {
      // Exempt: metrics, and a peer replica streaming a fill running here (http/peer.ts): it needs
      // nothing the checks watch, and while the fill runs this process is its only source.
      if (!health.healthy() && req.url !== '/metrics' && !req.url.startsWith(PEER_PATH)) {
        done(new RegistryError('UNAVAILABLE', 'service unavailable', { detail: 'health check failed: please see /debug/health' }));
        return;
      }
      done();
    });
  }
  const gates = [
    createAuthGate({ registry: deps.registry, log, ...pick(deps, 'authenticator', 'policy', 'proxy', 'metrics') }),
    createBodyLimits({ maxConcurrent: config.http.max_concurrent_uploads, idleMs: timeouts.body_idle }, deps.metrics),
  ].filter((g): g is Gate => g !== undefined);
  registerV2(app, { config, registry: deps.registry, ...pick(deps, 'proxy', 'metrics', 'signatures') }, gates);
  if (deps.authenticator) registerTokenEndpoint(app, deps.authenticator, deps.metrics);
  if (deps.cluster && deps.proxy) registerPeerFills(app, deps.proxy, deps.cluster);
  if (deps.ui) {
    registerUi(app, {
      ...deps.ui, config, registry: deps.registry, log, requestLog, tls: deps.https !== undefined,
      ...pick(deps, 'proxy', 'metrics', 'authenticator', 'policy'),
    });
  }
  const metrics = deps.metrics;
  if (metrics) {
    app.get('/metrics', async (_req, reply) => reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()));
  }
  return app;
}

/** The keys of `deps` that are set, for exactOptionalPropertyTypes. */
function pick<K extends keyof AppDeps>(deps: AppDeps, ...keys: K[]): { [P in K]?: NonNullable<AppDeps[P]> } {
  const out: { [P in K]?: NonNullable<AppDeps[P]> } = {};
  for (const k of keys) if (deps[k] !== undefined) out[k] = deps[k] as NonNullable<AppDeps[K]>;
  return out;
}
