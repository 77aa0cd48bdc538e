/**
 * Signatures fetched from the upstream a manifest is being filled from, through that route's
 * UpstreamClient (its credentials, token cache and circuit breaker). Every document is checked
 * against its digest before it is believed, and read with a size limit. What was fetched is
 * kept (keep()) beside the image in the cache repository once the image is admitted, so the
 * signatures travel with exports and can be verified again offline (after a key change, by
 * `stowage verify`, on the far side of an air gap).
 */
import type { Readable } from 'node:stream';
import { RegistryError } from '../errors.js';
import { digestOf, tryParseDigest, type Digest } from '../oci/digest.js';
import { MediaType } from '../oci/media-types.js';
import type { Descriptor } from '../oci/manifest.js';
import type { RepoName, Tag } from '../oci/reference.js';
import type { RegistryClient, UpstreamResponse } from '../upstream/client.js';
import { toRegistryError, UpstreamError } from '../upstream/errors.js';
import { MAX_SIGNATURE_BLOB } from './formats.js';
import { discover, type ContentAccess, type FetchedManifest, type SignatureSource } from './source.js';
import type { SignatureArtifact } from './verify.js';

/** The part of a pull-through route this needs (proxy/routing.ts Route has it). */
export interface UpstreamRoute {
  cacheRepo: RepoName;
  remoteRepo: string;
  upstream: { config: { name: string }; client: RegistryClient };
}

/** Stores signature artifacts in a cache repository (store.ts). */
export interface SignatureKeeper {
  keep(route: UpstreamRoute, artifacts: readonly SignatureArtifact[]): Promise<void>;
}

const MANIFEST_TYPES = [MediaType.OciManifest, MediaType.DockerManifest, MediaType.OciIndex];
const MAX_MANIFEST = 4 * 1024 * 1024;

export class UpstreamSignatureSource implements SignatureSource {
  readonly name: string;
  readonly remote = true;
  private readonly access: ContentAccess;

  constructor(private readonly route: UpstreamRoute, private readonly keeper?: SignatureKeeper) {
    this.name = `upstream ${route.upstream.config.name}`;
    const client = route.upstream.client;
    const repo = route.remoteRepo;
    this.access = {
      manifestByTag: (tag: Tag) => this.manifest(tag, undefined),
      manifestByDigest: (digest: Digest) => this.manifest(digest, digest),
      referrers: async (digest) => {
        const res = await call(() => client.referrers(repo, digest), undefined);
        if (!res) return undefined;
        const doc = parseObject(await readLimited(res.body, MAX_MANIFEST));
        return Array.isArray(doc.manifests) ? doc.manifests.filter(isDescriptor) : [];
      },
      blob: async (d: Descriptor) => {
        const res = await call(() => client.blob(repo, d.digest), NOT_THERE);
        if (res.status !== 200) return undefined;
        const bytes = await readLimited(res.body, MAX_SIGNATURE_BLOB);
        return digestOf(bytes) === d.digest ? bytes : undefined;
      },
    };
  }

  signatures(digest: Digest): Promise<SignatureArtifact[]> {
    return discover(this.access, digest);
  }

  async keep(artifacts: readonly SignatureArtifact[]): Promise<void> {
    await this.keeper?.keep(this.route, artifacts);
  }

  private async manifest(reference: string, expected: Digest | undefined): Promise<FetchedManifest | undefined> {
    const { client } = this.route.upstream;
    const res = await call(() => client.manifest(this.route.remoteRepo, reference, { method: 'GET', accept: MANIFEST_TYPES }), NOT_THERE);
    if (res.status !== 200) return undefined;
    const bytes = await readLimited(res.body, MAX_MANIFEST);
    const digest = digestOf(bytes);
    const announced = tryParseDigest(String(res.headers['docker-content-digest'] ?? ''));
    if ((expected && digest !== expected) || (announced && announced !== digest)) return undefined;
    const type = String(res.headers['content-type'] ?? '').split(';')[0]!.trim();
    return { digest, mediaType: type || MediaType.OciManifest, bytes };
  }
}

const NOT_THERE: UpstreamResponse = { status: 404, headers: {}, body: null };

/**
 * An upstream that refuses a signature lookup (401/403, an odd status: some registries answer the
 * referrers endpoint so) has no signature to offer there: `absent`. One that is down, slow or
 * rate limiting leaves the question open: the error goes up (the gate answers 503 under enforce).
 */
async function call<T>(fn: () => Promise<T>, absent: T): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (!(e instanceof UpstreamError)) throw e;
    if (e.kind === 'unauthorized' || e.kind === 'bad-response') return absent;
    throw toRegistryError(e);
  }
}

async function readLimited(body: Readable | null, limit: number): Promise<Buffer> {
  if (!body) return Buffer.alloc(0);
  const parts: Buffer[] = [];
  let total = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > limit) {
      body.destroy();
      throw new RegistryError('UNAVAILABLE', 'an upstream signature document is too big', { status: 502 });
    }
    parts.push(chunk);
  }
  return Buffer.concat(parts, total);
}

function isDescriptor(v: unknown): v is Descriptor {
  const d = v as Descriptor;
  return typeof d === 'object' && d !== null && typeof d.digest === 'string' && tryParseDigest(d.digest) !== undefined && typeof d.mediaType === 'string';
}

function parseObject(bytes: Buffer): { manifests?: unknown } {
  try {
    const doc = JSON.parse(bytes.toString('utf8')) as unknown;
    return typeof doc === 'object' && doc !== null ? doc : {};
  } catch {
    return {};
  }
}
