/**
 * A cap on request bodies being received at once (blob uploads, manifest PUTs). A body can take
 * as long as its client likes, one byte at a time, and each one holds a file, a hash and a
 * socket; past the cap new ones get 429 TOOMANYREQUESTS with Retry-After, and everything else
 * (pulls, listings) goes on being served. The slot is given back when the response closes,
 * whether it completed or the client went away.
 */
import type { FastifyRequest } from 'fastify';
import { RegistryError } from '../../errors.js';
import type { Metrics } from '../../metrics.js';
import type { Gate } from '../context.js';

const carriesBody = (req: FastifyRequest): boolean => {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
};

export function createUploadLimit(max: number, metrics?: Metrics): Gate | undefined {
  if (max <= 0) return undefined;
  let running = 0;
  return async (req, reply, endpoint) => {
    const isUpload = endpoint.kind === 'uploads' || endpoint.kind === 'upload' || (endpoint.kind === 'manifest' && req.method === 'PUT');
    if (!isUpload || !carriesBody(req)) return;
    if (running >= max) {
      metrics?.uploadsRefused.inc();
      throw new RegistryError('TOOMANYREQUESTS', 'too many uploads at once; retry later', {
        detail: { limit: max }, headers: { 'Retry-After': '1', Connection: 'close' },
      });
    }
    running++;
    reply.raw.once('close', () => { running--; });
  };
}
