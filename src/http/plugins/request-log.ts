/** One structured log line per request: id, method, repo, reference, status, cache outcome, bytes, ms. */
import type { FastifyInstance } from 'fastify';
import type { Metrics } from '../../metrics.js';

export function registerRequestLog(app: FastifyInstance, metrics?: Metrics): void {
  app.decorateRequest('facts', null as never);
  app.addHook('onRequest', async (req) => {
    req.facts = {};
  });
  app.addHook('onResponse', async (req, reply) => {
    const { facts } = req;
    const length = reply.getHeader('content-length');
    const aborted = !reply.raw.writableFinished;
    const bytes = req.method === 'HEAD' ? 0 : Number(length ?? 0);
    if (metrics) {
      const kind = req.routeOptions.url === '/metrics' ? 'metrics' : facts.kind ?? 'other';
      metrics.requests.inc({ kind, method: req.method, status: String(reply.statusCode) });
      if (bytes > 0) metrics.bytesServed.inc({ kind }, bytes);
    }
    req.log.info({
      method: req.method,
      url: req.url.length > 300 ? `${req.url.slice(0, 300)}...` : req.url,
      repo: facts.repo,
      reference: facts.reference,
      status: reply.statusCode,
      cache: facts.cache,
      bytes,
      upstreamBytes: facts.upstreamBytes,
      ms: Math.round(reply.elapsedTime * 10) / 10,
      ...(aborted ? { aborted: true } : {}),
    }, 'request');
  });
}
