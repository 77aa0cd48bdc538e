/**
 * buildApp: the fastify instance with every dependency injected. No I/O happens here; main.ts
 * builds the dependencies (storage driver, metadata index, registry) and listens.
 */
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { randomUUID } from 'node:crypto';
import type { AccessPolicy } from './auth/access.js';
import type { Authenticator } from './auth/authenticator.js';
import type { Config } from './config/schema.js';
import type { Metrics } from './metrics.js';
import type { PullThrough } from './proxy/pull-through.js';
import type { LocalRegistry } from './registry/registry.js';
import type { Gate } from './http/context.js';
import { createAuthGate } from './http/plugins/auth.js';
import { registerErrorHandling } from './http/plugins/errors.js';
import { createUploadLimit } from './http/plugins/limits.js';
import { registerRequestLog } from './http/plugins/request-log.js';
import { registerV2 } from './http/v2.js';

export interface AppDeps {
  config: Config;
  registry: LocalRegistry;
  log: Logger;
  proxy?: PullThrough;
  metrics?: Metrics;
  /** Who may do what (auth.htpasswd / auth.token, access rules); absent: open, as registry:2 without auth. */
  authenticator?: Authenticator;
  policy?: AccessPolicy;
  /** Request bodies received at once (uploads, manifest PUTs); 0 or absent: no cap. */
  maxConcurrentUploads?: number;
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
  registerRequestLog(app, deps.metrics);
  registerErrorHandling(app);
  const gates = [
    createAuthGate({ registry: deps.registry, log, ...pick(deps, 'authenticator', 'policy', 'proxy', 'metrics') }),
    createUploadLimit(deps.maxConcurrentUploads ?? 0, deps.metrics),
  ].filter((g): g is Gate => g !== undefined);
  registerV2(app, { config, registry: deps.registry, ...pick(deps, 'proxy', 'metrics') }, gates);
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
