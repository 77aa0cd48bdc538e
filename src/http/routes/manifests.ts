/** GET / HEAD / PUT / DELETE /v2/<name>/manifests/<reference> */
import type { Readable } from 'node:stream';
import { RegistryError } from '../../errors.js';
import { descriptorsOf, manifestUnknown, MAX_MANIFEST_BYTES } from '../../registry/manifest-store.js';
import { parseManifest } from '../../oci/manifest.js';
import type { Descriptor } from '../../notify/events.js';
import { referenceToString, type Reference } from '../../oci/reference.js';
import type { ManifestAnswer } from '../../proxy/pull-through.js';
import { headerList, locationFor, queryParam, type Handler } from '../context.js';
import type { ManifestReference } from '../v2-path.js';
import { deletesDisabled } from './blobs.js';

/** A reference that is neither a tag nor a digest names no manifest: 404 for reads and deletes. */
function knownOrUnknown(ref: ManifestReference): Reference {
  if (ref.kind === 'invalid') throw manifestUnknown(ref.raw);
  return ref;
}

/** A PUT must name a valid tag or digest: the parse error (400) stands. */
function validForPut(ref: ManifestReference): Reference {
  if (ref.kind === 'invalid') throw ref.error;
  return ref;
}

/** A served manifest's references, for events (stored bytes that do not parse have none). */
function referencesIn(bytes: Buffer): Descriptor[] {
  try {
    return descriptorsOf(parseManifest(bytes));
  } catch {
    return [];
  }
}

const describeReference = (ref: ManifestReference): string => (ref.kind === 'invalid' ? ref.raw : referenceToString(ref));

export const getManifest: Handler<'manifest'> = async (req, reply, endpoint, { registry, proxy, signatures }) => {
  const { name } = endpoint;
  req.facts.repo = name;
  req.facts.reference = describeReference(endpoint.reference);
  const reference = knownOrUnknown(endpoint.reference);
  let m;
  let upstream: string | undefined;
  let cached: ManifestAnswer | undefined;
  if (proxy) {
    const answer = await proxy.manifest(name, reference, queryParam(req, 'ns'), () => headerList(req.headers.accept));
    req.facts.cache = answer.outcome;
    req.facts.storedRepo = answer.route?.cacheRepo;
    if (answer.outcome === 'miss') req.facts.upstreamBytes = answer.bytes.length;
    if (answer.namespace) reply.header('OCI-Namespace', answer.namespace);
    if (answer.warning) reply.header('Warning', answer.warning);
    if (answer.outcome !== 'local') { upstream = answer.namespace; cached = answer; }
    m = answer;
  } else {
    m = await registry.manifests.get(name, reference);
    if (!m) throw manifestUnknown(referenceToString(reference));
  }
  req.facts.digest = m.digest;
  await signatures?.admitServed(name, { ...m, ...(reference.kind === 'tag' ? { tag: reference.tag } : {}) }, req.facts.cache, await proxy?.route(name, queryParam(req, 'ns')));
  if (req.method === 'GET') {
    // After the access decision (the gate) and the signature check: a refused pull prefetches nothing.
    if (proxy && cached) proxy.prefetchServed(name, cached);
    const served = m;
    registry.events.record({
      action: 'pull',
      target: {
        kind: 'manifest', repository: name, digest: served.digest, size: served.bytes.length, mediaType: served.mediaType,
        ...(reference.kind === 'tag' ? { tag: reference.tag } : {}), references: () => referencesIn(served.bytes),
      },
      ...(req.facts.cache !== undefined ? { cache: req.facts.cache } : {}),
      ...(upstream !== undefined ? { upstream } : {}),
    });
  }
  reply.headers({
    'Content-Type': m.mediaType,
    'Docker-Content-Digest': m.digest,
    ETag: `"${m.digest}"`,
    'Content-Length': m.bytes.length,
  });
  if (req.method === 'HEAD') return reply.send();
  return reply.send(m.bytes);
};

export const putManifest: Handler<'manifest'> = async (req, reply, endpoint, { registry, config, signatures }) => {
  const { name } = endpoint;
  req.facts.repo = name;
  req.facts.reference = describeReference(endpoint.reference);
  const reference = validForPut(endpoint.reference);
  const body = await readLimited(req.raw, MAX_MANIFEST_BYTES, req.headers['content-length']);
  await signatures?.admitPush(name, reference, body);
  const result = await registry.manifests.put(name, reference, body, req.headers['content-type']);
  reply.code(201).headers({
    Location: locationFor(req, config, `/v2/${name}/manifests/${result.digest}`),
    'Docker-Content-Digest': result.digest,
    'Content-Length': 0,
  });
  if (result.subject) reply.header('OCI-Subject', result.subject);
  return reply.send();
};

export const deleteManifest: Handler<'manifest'> = async (req, reply, endpoint, { registry, config }) => {
  const { name } = endpoint;
  req.facts.repo = name;
  req.facts.reference = describeReference(endpoint.reference);
  if (!config.storage.delete.enabled) throw deletesDisabled();
  const reference = knownOrUnknown(endpoint.reference);
  await registry.manifests.delete(name, reference);
  return reply.code(202).header('Content-Length', 0).send();
};

/**
 * Reads a request body into memory, refusing (413) anything over `limit` bytes. On refusal the rest
 * of the body is drained and discarded rather than destroyed, so the client still reads the 413;
 * Connection: close then ends the exchange.
 */
export function readLimited(stream: Readable, limit: number, declaredLength: string | undefined): Promise<Buffer> {
  const tooBig = () => new RegistryError('MANIFEST_INVALID', 'manifest too big', {
    status: 413, detail: { limit }, headers: { Connection: 'close' },
  });
  return new Promise((resolve, reject) => {
    if (declaredLength !== undefined && Number(declaredLength) > limit) {
      stream.resume();
      reject(tooBig());
      return;
    }
    const chunks: Buffer[] = [];
    let total = 0;
    let refused = false;
    stream.on('data', (chunk: Buffer) => {
      if (refused) return;
      total += chunk.length;
      if (total > limit) {
        refused = true;
        chunks.length = 0;
        reject(tooBig());
        return;
      }
      chunks.push(chunk);
    });
    stream.once('end', () => { if (!refused) resolve(Buffer.concat(chunks, total)); });
    stream.once('error', reject);
  });
}
