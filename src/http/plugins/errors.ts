/**
 * The one place where errors become responses: RegistryError -> its status and the OCI JSON body;
 * fastify's own errors -> the closest OCI code; anything else -> 500 UNKNOWN, logged with its
 * stack (the client never sees one). If the response has already started, the socket is
 * destroyed instead, so a broken transfer is visibly broken. Requests that never reach a route
 * get the same body: a URL fastify cannot decode (frameworkErrors) and what Node's HTTP parser
 * refuses before there is a request at all (clientErrorHandler).
 */
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { RegistryError } from '../../errors.js';
import { DriverError, InvalidPathError, StorageFullError } from '../../storage/driver.js';

export function toRegistryError(err: unknown): RegistryError | undefined {
  if (err instanceof RegistryError) return err;
  if (err instanceof InvalidPathError) return new RegistryError('NAME_INVALID', 'invalid name');
  if (err instanceof StorageFullError) {
    return new RegistryError('UNAVAILABLE', 'storage is full; the cache is making room, retry shortly', { status: 503, headers: { 'Retry-After': '5' } });
  }
  // The storage backend failed after its own retries (an object store down, slow or answering 5xx).
  if (err instanceof DriverError) {
    return new RegistryError('UNAVAILABLE', 'storage backend unavailable', { headers: { 'Retry-After': '5' } });
  }
  const fe = err as Partial<FastifyError> & { code?: string };
  if (fe.code === 'FST_ERR_BAD_URL') return new RegistryError('NAME_INVALID', 'the URL path has a malformed percent-encoding', { status: 400 });
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    if (fe.statusCode === 413) return new RegistryError('SIZE_INVALID', 'request body too large', { status: 413 });
    if (fe.statusCode === 415) return new RegistryError('UNSUPPORTED', 'unsupported media type', { status: 415 });
    return new RegistryError('UNSUPPORTED', fe.message ?? 'bad request', { status: fe.statusCode });
  }
  // A client that went away mid-body is not a server error.
  if (fe.code === 'ECONNRESET' || fe.code === 'ERR_STREAM_PREMATURE_CLOSE' || (err as Error)?.message === 'aborted') {
    return new RegistryError('BLOB_UPLOAD_INVALID', 'request body was cut short', { status: 400 });
  }
  return undefined;
}

export function sendError(req: FastifyRequest, reply: FastifyReply, err: unknown): FastifyReply {
  if (reply.raw.headersSent) {
    req.log.warn({ err }, 'error after response started; destroying connection');
    reply.raw.destroy(err instanceof Error ? err : undefined);
    return reply;
  }
  // Only the message: the error's cause may carry the store's request details.
  if (err instanceof DriverError) req.log.warn({ storageError: err.message, path: err.path }, 'storage backend error');
  let re = toRegistryError(err);
  if (!re) {
    req.log.error({ err }, 'internal error');
    re = new RegistryError('UNKNOWN', 'internal server error');
  }
  reply.code(re.status).headers(re.headers).type('application/json');
  // A request body left unread (an upload that failed midway): the connection cannot carry another
  // request, so say so and close it instead of leaving the client's next request stuck behind it.
  if (!req.raw.complete) reply.header('Connection', 'close');
  return reply.send(JSON.stringify(re.toJSON()));
}

export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err, req, reply) => sendError(req, reply, err));
  app.setNotFoundHandler((req, reply) =>
    sendError(req, reply, new RegistryError('UNSUPPORTED', 'no such endpoint', { status: 404 })));
}

/**
 * For fastify's `frameworkErrors` (a URL it cannot decode): no route, no hooks, so no request
 * line from request-log.ts either; this one says what was refused.
 */
export function answerFrameworkError(err: Error, req: FastifyRequest, reply: FastifyReply): FastifyReply {
  sendError(req, reply, err);
  const url = req.url.length > 300 ? `${req.url.slice(0, 300)}...` : req.url;
  req.log.info({ method: req.method, url, status: reply.statusCode, err: err.message }, 'request refused before routing');
  return reply;
}

/**
 * For fastify's `clientErrorHandler`: a request Node's HTTP parser refused (a malformed request
 * line or header, headers too large, headers that never finished). There is no request to log or
 * route, so the OCI body is written to the socket as it is, and the connection closed.
 */
export function answerClientError(err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, re] = err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
    ? [408, new RegistryError('UNSUPPORTED', 'the request headers did not arrive in time')]
    : err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, new RegistryError('UNSUPPORTED', 'the request headers are too large')]
      : [400, new RegistryError('UNSUPPORTED', 'malformed HTTP request')];
  const body = JSON.stringify(re.toJSON());
  if (socket.writable) {
    socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  }
  socket.destroy();
}
