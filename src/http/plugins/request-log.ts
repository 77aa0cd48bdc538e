/**
 * One structured log line per request: id, method, repo, reference, status, cache outcome, bytes,
 * ms. A client that hangs up before the response is complete gets its line too (aborted: true,
 * no status if none was sent). `bytes` counts body bytes only, on every path.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Metrics } from '../../metrics.js';
import { queryParam, type RequestFacts } from '../context.js';

/** A finished (or abandoned) request as the log line reports it, for listeners such as the web page's usage counts. */
export interface ServedRequest extends Readonly<RequestFacts> {
  method: string;
  /** The response status; undefined when the client left before one was sent. */
  status: number | undefined;
  /** Body bytes sent. */
  bytes: number;
  /** The request's `ns` query parameter (a containerd mirror's upstream), if any. */
  ns: string | undefined;
}

export interface RequestLog {
  /** Calls `listener` with every request once its log line is written. */
  onServed(listener: (served: ServedRequest) => void): void;
}

export function registerRequestLog(app: FastifyInstance, metrics?: Metrics): RequestLog {
  const logged = new WeakSet<FastifyRequest>();
  const listeners: Array<(served: ServedRequest) => void> = [];

  const logLine = (req: FastifyRequest, reply: FastifyReply, aborted: boolean, socketBytesBefore: number) => {
    if (logged.has(req)) return;
    logged.add(req);
    const { facts } = req;
    const bytes = req.method === 'HEAD' ? 0 : bodyBytes(reply, aborted, socketBytesBefore);
    if (metrics) {
      const kind = req.routeOptions.url === '/metrics' ? 'metrics' : facts.kind ?? 'other';
      metrics.requests.inc({ kind, method: req.method, status: aborted ? 'aborted' : String(reply.statusCode) });
      if (bytes > 0) metrics.bytesServed.inc({ kind }, bytes);
    }
    const status = aborted && !reply.raw.headersSent ? undefined : reply.statusCode;
    if (listeners.length > 0) {
      const served: ServedRequest = { ...facts, method: req.method, status, bytes, ns: facts.kind ? queryParam(req, 'ns') : undefined };
      for (const l of listeners) l(served);
    }
    req.log.info({
      method: req.method,
      url: req.url.length > 300 ? `${req.url.slice(0, 300)}...` : req.url,
      repo: facts.repo,
      user: facts.user,
      reference: facts.reference,
      // A client that left before the status line was sent has no status to report.
      status,
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
  return { onServed: (listener) => { listeners.push(listener); } };
}

/**
 * Body bytes of a response: its Content-Length when it completed; otherwise (a hang-up, or a
 * chunked body) what the socket took for it minus the status line and headers.
 */
function bodyBytes(reply: FastifyReply, aborted: boolean, socketBytesBefore: number): number {
  const length = reply.getHeader('content-length');
  if (!aborted && length !== undefined) return Number(length);
  const sent = (reply.raw.socket?.bytesWritten ?? socketBytesBefore) - socketBytesBefore;
  // Node keeps the serialized head of a response it has sent in `_header`.
  const head = (reply.raw as unknown as { _header?: string | null })._header;
  return Math.max(0, sent - (head ? Buffer.byteLength(head) : 0));
}
