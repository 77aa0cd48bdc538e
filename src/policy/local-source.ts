/**
 * Signatures held in local storage, in the repository of the image: what a fill stored beside the
 * image, what a push or an import brought. Storage is content-addressed and verified when written,
 * so what is read here needs no second digest check. Also finds the indexes of the repository that
 * list a platform manifest (its tags, then the indexes they name), for platform manifests pulled
 * by digest whose signed index this process has not seen yet.
 */
import type { Digest } from '../oci/digest.js';
import type { Descriptor } from '../oci/manifest.js';
import type { RepoName, Tag } from '../oci/reference.js';
import type { LocalRegistry } from '../registry/registry.js';
import { tryParse } from './formats.js';
import { discover, type ContentAccess, type FetchedManifest, type SignatureSource } from './source.js';

/** How many tags are looked through for an index listing a manifest. */
const MAX_TAGS_SCANNED = 1000;

export class LocalSignatureSource implements SignatureSource {
  readonly name = 'storage';
  private readonly access: ContentAccess;

  constructor(private readonly registry: LocalRegistry, private readonly repo: RepoName) {
    const held = (m: { digest: Digest; mediaType: string; bytes: Buffer } | undefined): FetchedManifest | undefined =>
      m && { digest: m.digest, mediaType: m.mediaType, bytes: m.bytes };
    this.access = {
      manifestByTag: async (tag) => held(await registry.manifests.get(repo, { kind: 'tag', tag })),
      manifestByDigest: async (digest) => held(await registry.manifests.get(repo, { kind: 'digest', digest })),
      referrers: async (digest) => (await registry.referrers(repo, digest)).map((r) => ({ ...r, digest: r.digest as Digest })),
      blob: async (d: Descriptor) => ((await registry.blobs.sizeIn(repo, d.digest)) === undefined ? undefined : registry.blobs.getContent(d.digest)),
    };
  }

  signatures(digest: Digest) {
    return discover(this.access, digest);
  }

  async indexesListing(digest: Digest): Promise<Array<{ digest: Digest; bytes: Buffer }>> {
    const out: Array<{ digest: Digest; bytes: Buffer }> = [];
    const seen = new Set<string>();
    const tags = (await this.registry.tags(this.repo, MAX_TAGS_SCANNED, '')).items;
    for (const tag of tags) {
      const m = await this.registry.manifests.get(this.repo, { kind: 'tag', tag: tag as Tag });
      if (!m || seen.has(m.digest)) continue;
      seen.add(m.digest);
      if (tryParse(m.bytes)?.manifests.some((c) => c.digest === digest)) out.push({ digest: m.digest, bytes: m.bytes });
    }
    return out;
  }
}
