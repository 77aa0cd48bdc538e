/**
 * Keeps signature artifacts fetched from an upstream in the cache repository, as a client pulling
 * them through the cache would have: blobs first, then the manifest (a `.sig` under its tag, with
 * a tag-cache entry so it is revalidated like any cached tag; a bundle referrer by digest, which
 * indexes it as a referrer of the image). Only complete artifacts are kept (every blob read), so an
 * export of the image carries them whole.
 */
import type { Logger } from 'pino';
import type { MetadataIndex } from '../metadata/port.js';
import type { Digest } from '../oci/digest.js';
import type { Tag } from '../oci/reference.js';
import type { LocalRegistry } from '../registry/registry.js';
import { tryParse } from './formats.js';
import type { SignatureKeeper, UpstreamRoute } from './upstream-source.js';
import type { SignatureArtifact } from './verify.js';

export class CacheSignatureKeeper implements SignatureKeeper {
  constructor(private readonly registry: LocalRegistry, private readonly metadata: MetadataIndex, private readonly log: Logger,
    private readonly now: () => number = Date.now) {}

  async keep(route: UpstreamRoute, artifacts: readonly SignatureArtifact[]): Promise<void> {
    const upstream = route.upstream.config.name;
    for (const a of artifacts) {
      const parsed = tryParse(a.bytes);
      if (!parsed || parsed.blobs.some((b) => !a.blobs.has(b.digest))) continue;
      try {
        for (const b of parsed.blobs) {
          await this.registry.blobs.putVerified(b.digest, a.blobs.get(b.digest)!, 'cached', upstream);
          await this.registry.blobs.link(route.cacheRepo, b.digest);
        }
        const ref = a.tag !== undefined ? { kind: 'tag' as const, tag: a.tag as Tag } : { kind: 'digest' as const, digest: a.digest };
        await this.registry.manifests.put(route.cacheRepo, ref, a.bytes, a.mediaType, { verifyReferences: false, origin: 'cached', upstream });
        const tag = a.tag;
        if (tag !== undefined) await this.metadata.write((w) => w.setTagCache(upstream, route.remoteRepo, tag, a.digest as Digest, a.mediaType, this.now()));
      } catch (e) {
        this.log.warn({ repo: route.cacheRepo, signature: a.digest, err: (e as Error).message }, 'signature not kept in the cache');
      }
    }
  }
}
