/**
 * Limits on request bodies (blob uploads, manifest PUTs), the part of a request a slow client can
 * stretch the most:
 * - at most `maxConcurrent` bodies are received at once; past that new ones get 429
 *   TOOMANYREQUESTS with Retry-After, while pulls and listings go on being served. The slot is
 *   given back when the response closes, completed or not.
 * - a body that sends nothing for `idleMs` is cut (the socket is destroyed; the upload session
 *   stays resumable, as after any broken connection).
 * Headers and idle keep-alive connections are bounded by the server's own timeouts (app.ts).
 */
import type { FastifyRequest } from 'fastify';
import { RegistryError } from '../../errors.js';
import type { Metrics } from '../../metrics.js';
import type { Gate } from '../context.js';

export interface BodyLimits {
  /** Bodies received at once; 0: no cap. */
  maxConcurrent: number;
  /** Longest silence within a body, ms; 0: none. */
  idleMs: number;
}

const carriesBody = (req: FastifyRequest): boolean => {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
};

export function createBodyLimits(limits: BodyLimits, metrics?: Metrics): Gate | undefined {
  if (limits.maxConcurrent <= 0 && limits.idleMs <= 0) return undefined;
  let running = 0;
  // Not async: it decides at once, and most requests are no uploads.
  return (req, reply, endpoint) => {
    const isUpload = endpoint.kind === 'uploads' || endpoint.kind === 'upload' || (endpoint.kind === 'manifest' && req.method === 'PUT');
    if (!isUpload || !carriesBody(req)) return undefined;
    if (limits.maxConcurrent > 0) {
      if (running >= limits.maxConcurrent) {
        metrics?.uploadsRefused.inc();
        throw new RegistryError('TOOMANYREQUESTS', 'too many uploads at once; retry later', {
          detail: { limit: limits.maxConcurrent }, headers: { 'Retry-After': '1', Connection: 'close' },
        });
      }
      running++;
      reply.raw.once('close', () => { running--; });
    }
    const socket = req.raw.socket;
    // (fastify.inject's stand-in socket has no timers)
    if (limits.idleMs > 0 && typeof socket?.setTimeout === 'function') {
      // Node destroys a socket whose timeout fires when nobody listens for it.
      socket.setTimeout(limits.idleMs);
      req.raw.once('end', () => socket.setTimeout(0));
      req.raw.once('close', () => socket.setTimeout(0));
    }
  };
}
