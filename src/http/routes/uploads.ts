/**
 * Blob uploads: POST /v2/<name>/blobs/uploads/ (session, monolithic ?digest=, cross-repo ?mount=),
 * PATCH / PUT / GET / DELETE /v2/<name>/blobs/uploads/<uuid>.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { RegistryError } from '../../errors.js';
import { parseDigest, type Digest } from '../../oci/digest.js';
import { parseRepoName, type RepoName } from '../../oci/reference.js';
import { rangeHeader } from '../../registry/upload-store.js';
import { locationFor, queryParam, type Handler, type RouteDeps } from '../context.js';
import { contentLength, parseContentRange } from '../range.js';

export const postUpload: Handler<'uploads'> = async (req, reply, { name }, deps) => {
  req.facts.repo = name;
  const { registry } = deps;
  const mount = queryParam(req, 'mount');
  const from = queryParam(req, 'from');
  if (mount !== undefined) {
    const digest = parseDigest(mount);
    req.facts.reference = digest;
    // Without pull on `from` the mount is not attempted: the upload starts as usual, and whether
    // `from` holds the blob stays unknown to the caller.
    const source = from === undefined ? undefined : parseRepoName(from);
    if (source !== undefined && (req.access?.mayPull(source) ?? true) && (await registry.mount(name, source, digest))) {
      return blobCreated(req, reply, name, digest, deps);
    }
  }
  const digestParam = queryParam(req, 'digest');
  const digest = digestParam === undefined ? undefined : parseDigest(digestParam);
  const uuid = await registry.uploads.start(name);
  if (digest !== undefined) {
    req.facts.reference = digest;
    try {
      await appendBody(req, name, uuid, deps);
      await registry.uploads.complete(name, uuid, digest);
    } catch (e) {
      await registry.uploads.cancel(name, uuid).catch(() => undefined);
      throw e;
    }
    return blobCreated(req, reply, name, digest, deps);
  }
  return uploadAccepted(req, reply, name, uuid, 0, deps);
};

export const patchUpload: Handler<'upload'> = async (req, reply, { name, uuid }, deps) => {
  req.facts.repo = name;
  const size = await deps.registry.uploads.append(name, uuid, req.raw, {
    ...optional('range', parseContentRange(req.headers['content-range'] as string | undefined)),
    ...optional('length', contentLength(req.headers['content-length'])),
  });
  return uploadAccepted(req, reply, name, uuid, size, deps);
};

export const putUpload: Handler<'upload'> = async (req, reply, { name, uuid }, deps) => {
  req.facts.repo = name;
  const digest = parseDigest(queryParam(req, 'digest') ?? '');
  req.facts.reference = digest;
  try {
    await appendBody(req, name, uuid, deps);
    await deps.registry.uploads.complete(name, uuid, digest);
  } catch (e) {
    // A closing PUT repeated after its answer was lost (a load balancer passing it on to another
    // replica, say) finds the session gone: if it carries no bytes and the blob is in place, it
    // already succeeded.
    if (!(e instanceof RegistryError && e.code === 'BLOB_UPLOAD_UNKNOWN') || hasBody(req)
      || (await deps.registry.blobs.sizeIn(name, digest)) === undefined) throw e;
  }
  return blobCreated(req, reply, name, digest, deps);
};

function hasBody(req: FastifyRequest): boolean {
  return req.headers['transfer-encoding'] !== undefined || (contentLength(req.headers['content-length']) ?? 0) > 0;
}

export const getUpload: Handler<'upload'> = async (req, reply, { name, uuid }, deps) => {
  req.facts.repo = name;
  const size = await deps.registry.uploads.size(name, uuid);
  return uploadAccepted(req, reply, name, uuid, size, deps, 204);
};

export const deleteUpload: Handler<'upload'> = async (req, reply, { name, uuid }, { registry }) => {
  req.facts.repo = name;
  await registry.uploads.cancel(name, uuid);
  return reply.code(204).send();
};

/** Appends the request body, if it has one (Content-Length > 0 or chunked). */
async function appendBody(req: FastifyRequest, name: RepoName, uuid: string, { registry }: RouteDeps): Promise<void> {
  const length = contentLength(req.headers['content-length']);
  const chunked = req.headers['transfer-encoding'] !== undefined;
  if (!chunked && !length) return;
  await registry.uploads.append(name, uuid, req.raw, {
    ...optional('range', parseContentRange(req.headers['content-range'] as string | undefined)),
    ...optional('length', length),
  });
}

function uploadAccepted(req: FastifyRequest, reply: FastifyReply, name: RepoName, uuid: string, size: number,
  { config }: RouteDeps, status = 202) {
  return reply.code(status).headers({
    Location: locationFor(req, config, `/v2/${name}/blobs/uploads/${uuid}`),
    Range: rangeHeader(size),
    'Docker-Upload-UUID': uuid,
    'Content-Length': 0,
  }).send();
}

function blobCreated(req: FastifyRequest, reply: FastifyReply, name: RepoName, digest: Digest, { config }: RouteDeps) {
  return reply.code(201).headers({
    Location: locationFor(req, config, `/v2/${name}/blobs/${digest}`),
    'Docker-Content-Digest': digest,
    'Content-Length': 0,
  }).send();
}

function optional<K extends string, V>(key: K, value: V | undefined): Partial<Record<K, V>> {
  return value === undefined ? {} : ({ [key]: value } as Record<K, V>);
}
