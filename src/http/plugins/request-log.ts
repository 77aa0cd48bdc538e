/**
 * One structured log line per request: id, method, repo, reference, status, cache outcome, bytes,
 * ms. A client that hangs up before the response is complete gets its line too (aborted: true,
 * no status if none was sent). `bytes` counts body bytes only, on every path.
 *
 * This runs for every request, so it is kept cheap (log.ts says what it cost before): the line
 * goes through `requestLineLogger` (no redaction: every field is one of ours), fields that are
 * unset are not put on the line at all, and nothing is computed for a line the level hides
 * beyond what the metrics need. fastify's per-request child logger is made only when a request
 * logs through it.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { deferredChild, requestLineLogger } from '../request-loggers.js';
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

/** Per request: the socket's byte count when it started (for a hang-up's body bytes), and done. */
interface LineState { socketBytesBefore: number; logged: boolean }

declare module 'fastify' {
  interface FastifyRequest {
    lineState: LineState;
  }
}

export function registerRequestLog(app: FastifyInstance, metrics?: Metrics): RequestLog {
  const listeners: Array<(served: ServedRequest) => void> = [];
  // app.log is the pino logger app.ts hands fastify (loggerInstance); fastify types it narrower.
  app.setChildLoggerFactory((logger, bindings) => deferredChild(logger as Logger, bindings));
  const line = requestLineLogger(app.log as Logger);

  const logLine = (req: FastifyRequest, reply: FastifyReply, aborted: boolean) => {
    const state = req.lineState;
    if (state.logged) return;
    state.logged = true;
    const writeLine = line.isLevelEnabled('info');
    if (!writeLine && !metrics && listeners.length === 0) return;
    const { facts } = req;
    const bytes = req.method === 'HEAD' ? 0 : bodyBytes(reply, aborted, state.socketBytesBefore);
    if (metrics) {
      const kind = facts.kind ?? (req.routeOptions.url === '/metrics' ? 'metrics' : 'other');
      metrics.requests.inc({ kind, method: req.method, status: aborted ? 'aborted' : String(reply.statusCode) });
      if (bytes > 0) metrics.bytesServed.inc({ kind }, bytes);
    }
    const status = aborted && !reply.raw.headersSent ? undefined : reply.statusCode;
    if (listeners.length > 0) {
      const served: ServedRequest = { ...facts, method: req.method, status, bytes, ns: facts.kind ? queryParam(req, 'ns') : undefined };
      for (const l of listeners) l(served);
    }
    if (!writeLine) return;
    // Built key by key: pino serialises every own key, so absent facts must not be keys at all.
    const fields: Record<string, unknown> = {
      reqId: req.id,
      method: req.method,
      url: req.url.length > 300 ? `${req.url.slice(0, 300)}...` : req.url,
    };
    if (facts.repo !== undefined) fields.repo = facts.repo;
    if (facts.user !== undefined) fields.user = facts.user;
    if (facts.reference !== undefined) fields.reference = facts.reference;
    // A client that left before the status line was sent has no status to report.
    if (status !== undefined) fields.status = status;
    if (facts.cache !== undefined) fields.cache = facts.cache;
    fields.bytes = bytes;
    if (facts.upstreamBytes !== undefined) fields.upstreamBytes = facts.upstreamBytes;
    if (facts.redirected !== undefined) fields.redirected = facts.redirected;
    fields.ms = Math.round(reply.elapsedTime * 10) / 10;
    if (aborted) fields.aborted = true;
    line.info(fields, 'request');
  };

  app.decorateRequest('facts', null as never);
  app.decorateRequest('lineState', null as never);
  app.addHook('onRequest', (req, reply, done) => {
    req.facts = {};
    const state: LineState = { socketBytesBefore: reply.raw.socket?.bytesWritten ?? 0, logged: false };
    req.lineState = state;
    // 'close' also follows a response that finished; by then onResponse has written the line.
    reply.raw.once('close', () => {
      if (!state.logged && !reply.raw.writableFinished) logLine(req, reply, true);
    });
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
