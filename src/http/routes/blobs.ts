/** GET / HEAD / DELETE /v2/<name>/blobs/<digest> */
import { RegistryError } from '../../errors.js';
import type { BlobAnswer } from '../../proxy/pull-through.js';
import { BLOB_MEDIA_TYPE } from '../../registry/blob-store.js';
import { queryParam, type Handler } from '../context.js';
import { parseRangeHeader } from '../range.js';
import { sendBody } from '../send-body.js';

export const getBlob: Handler<'blob'> = async (req, reply, { name, digest }, { registry, proxy, config }) => {
  req.facts.repo = name;
  req.facts.reference = digest;
  const answer = proxy
    ? await proxy.blob(name, digest, queryParam(req, 'ns'), req.method === 'HEAD')
    : localAnswer(await registry.blobs.requireIn(name, digest), (range) => registry.blobs.open(digest, range));
  req.facts.cache = answer.outcome;
  // registry:2's storage.redirect: a stored blob is fetched from the object store itself.
  if (!config.storage.redirect.disable && req.method === 'GET' && answer.complete && (answer.outcome === 'local' || answer.outcome === 'hit')) {
    const url = await registry.blobs.redirectURL(digest);
    if (url) {
      req.facts.redirected = true;
      return reply.code(307).headers({ Location: url, 'Docker-Content-Digest': digest, 'Content-Length': 0 }).send();
    }
  }
  if (answer.outcome === 'miss' && answer.size !== undefined) req.facts.upstreamBytes = answer.size;
  if (answer.namespace) reply.header('OCI-Namespace', answer.namespace);
  // A range, a HEAD, or an unannounced length needs the verified size: wait for the fetch to end.
  const needsSize = req.headers.range !== undefined || req.method === 'HEAD' || answer.size === undefined;
  const size = answer.complete || !needsSize ? answer.size : await answer.whenComplete();
  reply.headers({
    'Docker-Content-Digest': digest,
    ETag: `"${digest}"`,
    'Accept-Ranges': 'bytes',
    'Content-Type': 'application/octet-stream',
    'Cache-Control': 'max-age=31536000',
  });
  if (req.headers['if-none-match'] === `"${digest}"`) return reply.code(304).send();
  const total = size as number;
  const range = parseRangeHeader(req.headers.range, total);
  if (range) reply.code(206).header('Content-Range', `bytes ${range.start}-${range.end}/${total}`);
  reply.header('Content-Length', range ? range.end - range.start + 1 : total);
  if (req.method === 'HEAD') return reply.send();
  registry.events.record({
    action: 'pull',
    target: { kind: 'blob', repository: name, digest, size: total, mediaType: BLOB_MEDIA_TYPE },
    cache: answer.outcome,
    ...(answer.outcome !== 'local' && answer.namespace ? { upstream: answer.namespace } : {}),
  });
  return sendBody(reply, await answer.open(range));
};

function localAnswer(size: number, open: BlobAnswer['open']): BlobAnswer {
  return { size, outcome: 'local', complete: true, open, whenComplete: async () => size };
}

export const deleteBlob: Handler<'blob'> = async (req, reply, { name, digest }, { registry, config }) => {
  req.facts.repo = name;
  req.facts.reference = digest;
  if (!config.storage.delete.enabled) throw deletesDisabled();
  if (!(await registry.blobs.unlink(name, digest))) {
    throw new RegistryError('BLOB_UNKNOWN', 'blob unknown to registry', { detail: { digest } });
  }
  registry.events.record({ action: 'delete', target: { kind: 'blob', repository: name, digest } });
  return reply.code(202).header('Content-Length', 0).send();
};

export function deletesDisabled(): RegistryError {
  return new RegistryError('UNSUPPORTED', 'deletes are disabled on this registry (storage.delete.enabled)');
}
