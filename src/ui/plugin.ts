/**
 * The web page and its JSON API, on the registry's own listener (so its TLS), behind its own
 * authenticator and access rules:
 *   /            redirects to /ui/
 *   /ui/...      server-rendered pages (pages/), two static files (assets.ts)
 *   /_stowage/api/...  the same models as JSON, for the page's script and for scripts
 * Every answer carries a Content-Security-Policy without inline script or style, nosniff and
 * frame denial. Usage figures are counted from the request log (usage.ts).
 */
import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { AccessPolicy } from '../auth/access.js';
import type { Authenticator } from '../auth/authenticator.js';
import type { Config } from '../config/schema.js';
import type { RequestLog } from '../http/plugins/request-log.js';
import type { BrowseIndex } from '../metadata/browse.js';
import type { Metrics } from '../metrics.js';
import type { PullThrough } from '../proxy/pull-through.js';
import type { UpstreamRouter } from '../proxy/routing.js';
import type { LocalRegistry } from '../registry/registry.js';
import { UiAccess, type Viewer } from './access.js';
import { AirGapPreview } from './model/airgap.js';
import type { CacheBudgetSource, NotifySource, UiContext } from './model/context.js';
import { ImageSizes } from './model/images.js';
import { endpointOf, type Endpoint } from './pull-commands.js';
import { registerApi } from './routes-api.js';
import { registerPages } from './routes-pages.js';
import { SESSION_COOKIE, SessionCodec } from './session.js';
import { UsageRecorder } from './usage.js';

/** What main.ts hands the page besides what buildApp already has. */
export interface UiServices {
  browse: BrowseIndex;
  /** The session cookie's key, the same on every replica (the metadata index's shared secret). */
  sessionSecret: () => Promise<Buffer>;
  router?: UpstreamRouter;
  maintenance?: CacheBudgetSource;
  notifier?: NotifySource;
}

export interface UiDeps extends UiServices {
  config: Config;
  registry: LocalRegistry;
  log: Logger;
  requestLog: RequestLog;
  proxy?: PullThrough;
  metrics?: Metrics;
  authenticator?: Authenticator;
  policy?: AccessPolicy;
  /** The listener speaks TLS. */
  tls: boolean;
}

const USAGE_FLUSH_MS = 5_000;

export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'Content-Security-Policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'same-origin',
};

/** What the page and API routes share. */
export interface UiRuntime {
  ctx: UiContext;
  deps: UiDeps;
  access: UiAccess;
  sizes: ImageSizes;
  airgap: AirGapPreview;
  session(): Promise<SessionCodec>;
  endpoint(req: FastifyRequest): Endpoint;
  viewer(req: FastifyRequest): Promise<Viewer>;
  setSession(req: FastifyRequest, reply: FastifyReply, authorization: string | undefined): Promise<void>;
}

export function registerUi(app: FastifyInstance, deps: UiDeps): void {
  if (!deps.config.ui.enabled) return;
  const { config, browse } = deps;
  let codec: Promise<SessionCodec> | undefined;
  const session = () => (codec ??= deps.sessionSecret()
    .then((secret) => SessionCodec.fromSecret(secret.toString('base64'), config.ui.session)));
  const access = new UiAccess({
    deleteEnabled: config.storage.delete.enabled, session,
    ...(deps.authenticator ? { authenticator: deps.authenticator } : {}), ...(deps.policy ? { policy: deps.policy } : {}),
  });
  const ctx: UiContext = {
    config, browse, registry: deps.registry,
    ...(deps.router ? { router: deps.router } : {}), ...(deps.maintenance ? { maintenance: deps.maintenance } : {}),
    ...(deps.notifier ? { notifier: deps.notifier } : {}), ...(deps.metrics ? { metrics: deps.metrics } : {}),
  };
  const secureCookie = (req: FastifyRequest) => deps.tls || String(req.headers['x-forwarded-proto'] ?? '').startsWith('https');
  const runtime: UiRuntime = {
    ctx, deps, access, session,
    sizes: new ImageSizes(ctx),
    airgap: new AirGapPreview(ctx),
    endpoint: (req) => endpointOf(req, config, deps.tls),
    viewer: (req) => access.viewer(req),
    async setSession(req, reply, authorization) {
      const attributes = `Path=/; HttpOnly; SameSite=Strict${secureCookie(req) ? '; Secure' : ''}`;
      if (authorization === undefined) {
        reply.header('Set-Cookie', `${SESSION_COOKIE}=; ${attributes}; Max-Age=0`);
        return;
      }
      const c = await session();
      reply.header('Set-Cookie', `${SESSION_COOKIE}=${c.seal(authorization)}; ${attributes}; Max-Age=${c.maxAgeSeconds}`);
    },
  };

  const usage = new UsageRecorder(browse, deps.log.child({ component: 'ui' }), { flushMs: USAGE_FLUSH_MS });
  deps.requestLog.onServed(usage.record);
  app.addHook('onReady', async () => usage.start());
  app.addHook('onClose', async () => usage.stop());

  void app.register(async (scope) => {
    scope.addHook('onSend', async (_req, reply, payload) => {
      reply.headers(SECURITY_HEADERS);
      return payload;
    });
    registerPages(scope, runtime);
    registerApi(scope, runtime);
  });
}
