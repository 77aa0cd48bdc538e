/**
 * One structured log line per request: id, method, repo, reference, status, cache outcome, bytes,
 * ms. A client that hangs up before the response is complete gets its line too (aborted: true,
 * no status if none was sent). `bytes` counts body bytes only, on every path.
 *
 * This runs for every request, so it is kept cheap (log.ts and request-loggers.ts say what it
 * cost before): the line is written by `requestLineWriter` (no redaction: every field is one of
 * ours), nothing is computed for a line the level hides beyond what the metrics need, the hang-up
 * watch is one shared listener rather than a closure per request, and fastify's per-request child
 * logger is made only when a request logs through it.
 */
import type { ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { deferredChild, requestLineWriter } from '../request-loggers.js';
import type { Metrics } from '../../metrics.js';
import { newRequestFacts, type RequestFacts } from '../context.js';

/** A finished (or abandoned) request as the log line reports it, for listeners such as the web page's usage counts. */
export interface ServedRequest extends Readonly<RequestFacts> {
  method: string;
  /** The response status; undefined when the client left before one was sent. */
  status: number | undefined;
  /** Body bytes sent. */
  bytes: number;
}

export interface RequestLog {
  /** Calls `listener` with every request once its log line is written. */
  onServed(listener: (served: ServedRequest) => void): void;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The socket's byte count when the request started (for a hang-up's body bytes). */
    socketBytesBefore: number;
    /** Its line was written (by onResponse, or by the hang-up watch). */
    lineLogged: boolean;
  }
}

/** The reply a raw response belongs to, for the one shared 'close' listener. */
const REPLY = Symbol('stowage.reply');
type WatchedResponse = ServerResponse & { [REPLY]: FastifyReply };

export function registerRequestLog(app: FastifyInstance, metrics?: Metrics): RequestLog {
  const listeners: Array<(served: ServedRequest) => void> = [];
  // app.log is the pino logger app.ts hands fastify (loggerInstance); fastify types it narrower.
  app.setChildLoggerFactory((logger, bindings) => deferredChild(logger as Logger, bindings));
  const line = requestLineWriter(app.log as Logger);

  const logLine = (req: FastifyRequest, reply: FastifyReply, aborted: boolean) => {
    if (req.lineLogged) return;
    req.lineLogged = true;
    const writeLine = line.enabled();
    if (!writeLine && !metrics && listeners.length === 0) return;
    const { facts } = req;
    const bytes = req.method === 'HEAD' ? 0 : bodyBytes(reply, aborted, req.socketBytesBefore);
    if (metrics) {
      const kind = facts.kind ?? (req.routeOptions.url === '/metrics' ? 'metrics' : 'other');
      metrics.countRequest(kind, req.method, aborted ? 'aborted' : String(reply.statusCode), bytes);
    }
    const status = aborted && !reply.raw.headersSent ? undefined : reply.statusCode;
    if (listeners.length > 0) {
      // Field by field: a spread of facts took the slow path of object cloning.
      const served: ServedRequest = {
        kind: facts.kind, repo: facts.repo, reference: facts.reference, digest: facts.digest, storedRepo: facts.storedRepo, cache: facts.cache,
        upstreamBytes: facts.upstreamBytes, redirected: facts.redirected, user: facts.user,
        method: req.method, status, bytes,
      };
      for (const l of listeners) l(served);
    }
    if (!writeLine) return;
    line.write({
      reqId: req.id,
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
      aborted,
    });
  };

  // 'close' also follows a response that finished; by then onResponse has written the line.
  function onClose(this: WatchedResponse): void {
    const reply = this[REPLY];
    if (!reply.request.lineLogged && !this.writableFinished) logLine(reply.request, reply, true);
  }

  app.decorateRequest('facts', null as never);
  app.decorateRequest('socketBytesBefore', 0);
  app.decorateRequest('lineLogged', false);
  app.addHook('onRequest', (req, reply, done) => {
    req.facts = newRequestFacts();
    req.socketBytesBefore = reply.raw.socket?.bytesWritten ?? 0;
    (reply.raw as WatchedResponse)[REPLY] = reply;
    reply.raw.on('close', onClose);
    done();
  });
  // Runs after 'finish': the response was handed to the socket whole. A callback hook: it runs
  // on every request, and an async one costs a promise and a microtask turn.
  app.addHook('onResponse', (req, reply, done) => {
    logLine(req, reply, false);
    done();
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
