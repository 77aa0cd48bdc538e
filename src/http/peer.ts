/**
 * GET / HEAD /_stowage/fills/<digest>: another replica streams a blob this one is fetching from
 * the upstream (proxy/cluster-fills.ts), as it arrives. Only for requests signed with the
 * cluster's secret; 404 when this replica has no such fill (it finished: the blob is stored, or
 * it failed). Outside /v2, so no client-facing auth applies: the asking replica has applied it.
 */
import type { FastifyInstance } from 'fastify';
import { tryParseDigest } from '../oci/digest.js';
import type { ClusterFills } from '../proxy/cluster-fills.js';
import { PEER_HEADER, PEER_PATH } from '../proxy/cluster-fills.js';
import type { PullThrough } from '../proxy/pull-through.js';
import { sendBody } from './send-body.js';

export function registerPeerFills(app: FastifyInstance, proxy: PullThrough, cluster: ClusterFills): void {
  app.route({
    method: ['GET', 'HEAD'],
    url: `${PEER_PATH}:digest`,
    handler: async (req, reply) => {
      const raw = (req.params as { digest: string }).digest;
      const header = req.headers[PEER_HEADER];
      if (!cluster.verify(raw, typeof header === 'string' ? header : undefined)) return reply.code(403).send({ error: 'not a replica of this cluster' });
      const digest = tryParseDigest(raw);
      const fill = digest && proxy.runningFill(digest);
      if (!fill) return reply.code(404).send();
      req.facts.reference = raw;
      req.facts.cache = 'peer';
      if (fill.size !== undefined) reply.header('Content-Length', fill.size);
      reply.header('Content-Type', 'application/octet-stream');
      if (req.method === 'HEAD') return reply.send();
      return sendBody(reply, fill.reader());
    },
  });
}
