/** GET / HEAD / DELETE /v2/<name>/blobs/<digest> */
import { RegistryError } from '../../errors.js';
import type { Handler } from '../context.js';
import { parseRangeHeader } from '../range.js';

export const getBlob: Handler<'blob'> = async (req, reply, { name, digest }, { registry }) => {
  req.facts.repo = name;
  req.facts.reference = digest;
  const size = await registry.blobs.requireIn(name, digest);
  reply.headers({
    'Docker-Content-Digest': digest,
    ETag: `"${digest}"`,
    'Accept-Ranges': 'bytes',
    'Content-Type': 'application/octet-stream',
    'Cache-Control': 'max-age=31536000',
  });
  if (req.headers['if-none-match'] === `"${digest}"`) return reply.code(304).send();
  const range = parseRangeHeader(req.headers.range, size);
  if (range) reply.code(206).header('Content-Range', `bytes ${range.start}-${range.end}/${size}`);
  const length = range ? range.end - range.start + 1 : size;
  reply.header('Content-Length', length);
  if (req.method === 'HEAD') return reply.send();
  const stream = await registry.blobs.open(digest, range);
  return reply.send(stream);
};

export const deleteBlob: Handler<'blob'> = async (req, reply, { name, digest }, { registry, config }) => {
  req.facts.repo = name;
  req.facts.reference = digest;
  if (!config.storage.delete.enabled) throw deletesDisabled();
  if (!(await registry.blobs.unlink(name, digest))) {
    throw new RegistryError('BLOB_UNKNOWN', 'blob unknown to registry', { detail: { digest } });
  }
  return reply.code(202).header('Content-Length', 0).send();
};

export function deletesDisabled(): RegistryError {
  return new RegistryError('UNSUPPORTED', 'deletes are disabled on this registry (storage.delete.enabled)');
}
