/**
 * One structured log line per request: id, method, repo, reference, status, cache outcome, bytes,
 * ms. A client that hangs up before the response is complete gets its line too (aborted: true,
 * bytes = what the socket took for this response, headers included; no status if none was sent).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Metrics } from '../../metrics.js';

export function registerRequestLog(app: FastifyInstance, metrics?: Metrics): void {
  const logged = new WeakSet<FastifyRequest>();

  const logLine = (req: FastifyRequest, reply: FastifyReply, aborted: boolean, socketBytesBefore: number) => {
    if (logged.has(req)) return;
    logged.add(req);
    const { facts } = req;
    const sent = (reply.raw.socket?.bytesWritten ?? socketBytesBefore) - socketBytesBefore;
    const bytes = req.method === 'HEAD' ? 0 : aborted ? sent : Number(reply.getHeader('content-length') ?? 0);
    if (metrics) {
      const kind = req.routeOptions.url === '/metrics' ? 'metrics' : facts.kind ?? 'other';
      metrics.requests.inc({ kind, method: req.method, status: aborted ? 'aborted' : String(reply.statusCode) });
      if (bytes > 0) metrics.bytesServed.inc({ kind }, bytes);
    }
    req.log.info({
      method: req.method,
      url: req.url.length > 300 ? `${req.url.slice(0, 300)}...` : req.url,
      repo: facts.repo,
      reference: facts.reference,
      // A client that left before the status line was sent has no status to report.
      status: aborted && !reply.raw.headersSent ? undefined : reply.statusCode,
      cache: facts.cache,
      bytes,
      upstreamBytes: facts.upstreamBytes,
      redirected: facts.redirected,
      ms: Math.round(reply.elapsedTime * 10) / 10,
      ...(aborted ? { aborted: true } : {}),
    }, 'request');
  };

  app.decorateRequest('facts', null as never);
  app.addHook('onRequest', async (req, reply) => {
    req.facts = {};
    const before = reply.raw.socket?.bytesWritten ?? 0;
    let finished = false;
    reply.raw.once('finish', () => {
      finished = true;
    });
    reply.raw.once('close', () => {
      if (!finished) logLine(req, reply, true, before);
    });
  });
  // Runs after 'finish': the response was handed to the socket whole.
  app.addHook('onResponse', async (req, reply) => {
    logLine(req, reply, false, 0);
  });
}
