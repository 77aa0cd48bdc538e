/**
 * Writes a streamed body ourselves instead of through fastify's pipe, for one reason: a pooled
 * chunk (storage/chunk-pool.ts) may be reused only after the socket has taken its bytes, and
 * only our own res.write callback says when that is. Streams without pooled chunks keep going
 * through reply.send, which also turns an error before the first byte into an OCI error response.
 *
 * The status line and headers are written at once: the stream is already open, so what can still
 * fail is an I/O error mid-body, and then the connection is destroyed: the client sees a broken
 * transfer, never a short 200.
 */
import type { OutgoingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { FastifyReply } from 'fastify';
import { claimPooledChunks } from '../storage/chunk-pool.js';

export function sendBody(reply: FastifyReply, body: Readable): FastifyReply {
  const release = claimPooledChunks(body);
  if (!release) return reply.send(body);
  reply.hijack();
  const res = reply.raw;
  res.writeHead(reply.statusCode, reply.getHeaders() as OutgoingHttpHeaders);
  body.on('data', (chunk: Buffer) => {
    const flushed = res.write(chunk, (error) => {
      if (!error) release(chunk);
    });
    if (!flushed) body.pause();
  });
  res.on('drain', () => body.resume());
  body.on('end', () => res.end());
  body.on('error', (error) => {
    reply.log.warn({ err: error }, 'blob stream failed mid-response; connection closed');
    res.destroy();
  });
  res.on('close', () => {
    if (!body.destroyed) body.destroy();
  });
  return reply;
}
