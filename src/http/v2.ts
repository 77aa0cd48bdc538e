/**
 * Registers /v2 and dispatches each request to its handler by endpoint kind and method.
 * Where does a blob GET go? parseV2Path -> 'blob' -> routes/blobs.ts getBlob.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { RegistryError } from '../errors.js';
import type { Gate, Handler, RouteDeps } from './context.js';
import { deleteBlob, getBlob } from './routes/blobs.js';
import { catalog, listTags, referrers } from './routes/listings.js';
import { deleteManifest, getManifest, putManifest } from './routes/manifests.js';
import { deleteUpload, getUpload, patchUpload, postUpload, putUpload } from './routes/uploads.js';
import { parseV2Path, type V2Endpoint } from './v2-path.js';

type Method = 'GET' | 'HEAD' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';
type Table = { [K in V2Endpoint['kind']]: Partial<Record<Method, Handler<K>>> };

const base: Handler<'base'> = async (_req, reply) => reply.type('application/json').send('{}');

export const ROUTES: Table = {
  base: { GET: base, HEAD: base },
  catalog: { GET: catalog },
  manifest: { GET: getManifest, HEAD: getManifest, PUT: putManifest, DELETE: deleteManifest },
  blob: { GET: getBlob, HEAD: getBlob, DELETE: deleteBlob },
  uploads: { POST: postUpload },
  upload: { GET: getUpload, PATCH: patchUpload, PUT: putUpload, DELETE: deleteUpload },
  tags: { GET: listTags },
  referrers: { GET: referrers },
};

export function registerV2(app: FastifyInstance, deps: RouteDeps, gates: readonly Gate[] = []): void {
  const dispatch = async (req: FastifyRequest, reply: FastifyReply) => {
    const query = req.url.indexOf('?');
    const path = query < 0 ? req.url : req.url.slice(0, query);
    const rest = path === '/v2' ? '' : path.slice('/v2/'.length);
    const endpoint = parseV2Path(rest);
    req.facts.kind = endpoint.kind;
    const handler = ROUTES[endpoint.kind][req.method as Method] as Handler<typeof endpoint.kind> | undefined;
    if (!handler) {
      throw new RegistryError('UNSUPPORTED', `${req.method} is not supported here`, { status: 405 });
    }
    for (const gate of gates) {
      // Most gates decide at once (no await, no microtask turn) for most requests.
      const pending = gate(req, reply, endpoint);
      if (pending) await pending;
    }
    return handler(req, reply, endpoint as never, deps);
  };
  const methods: Method[] = ['GET', 'HEAD', 'PUT', 'POST', 'PATCH', 'DELETE'];
  app.route({ method: methods, url: '/v2', handler: dispatch });
  app.route({ method: methods, url: '/v2/*', handler: dispatch });
}
