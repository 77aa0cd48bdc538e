/**
 * Runs each request inside notify's request context, so an event recorded anywhere below (a push
 * in the registry, a fetch in the cache) carries registry:2's request record: id, client address,
 * host, method, user agent, and the authenticated user as the actor. Registered only when a
 * notification endpoint is configured (AsyncLocalStorage costs a little on every request).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Config } from '../../config/schema.js';
import { requestContext, type RequestInfo } from '../../notify/request-context.js';
import { locationFor } from '../context.js';

export function registerEventContext(app: FastifyInstance, config: Config): void {
  app.addHook('onRequest', (req, _reply, done) => {
    const info: RequestInfo = {
      id: req.id,
      addr: clientAddr(req),
      host: req.headers.host ?? '',
      method: req.method,
      useragent: req.headers['user-agent'] ?? '',
      baseUrl: locationFor(req, config, ''),
      // Authentication (when configured) records the user in the request's facts.
      user: () => (req.facts as { user?: string } | undefined)?.user,
    };
    requestContext.run(info, done);
  });
}

/** As registry:2: X-Forwarded-For's first address, else X-Real-IP, else the peer's ip:port. */
function clientAddr(req: FastifyRequest): string {
  const forwarded = req.headers['x-forwarded-for'];
  const first = (Array.isArray(forwarded) ? forwarded[0] : forwarded)?.split(',')[0]?.trim();
  if (first) return first;
  const real = req.headers['x-real-ip'];
  if (typeof real === 'string' && real) return real;
  const { remoteAddress, remotePort } = req.socket;
  return remoteAddress === undefined ? '' : remoteAddress.includes(':') ? `[${remoteAddress}]:${remotePort}` : `${remoteAddress}:${remotePort}`;
}
