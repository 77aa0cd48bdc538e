/**
 * Signatures inside a bundle being imported: the `.sig` tag of the image among its named entries
 * ("docker.io/acme/app:sha256-<hex>.sig") and the referrers of the repository among its unnamed
 * ones. Their bytes are read from storage, where the import's first pass staged every blob of the
 * bundle after checking its digest, so nothing here needs a second check.
 */
import type { Digest } from '../oci/digest.js';
import type { Descriptor } from '../oci/manifest.js';
import type { Tag } from '../oci/reference.js';
import { MediaType } from '../oci/media-types.js';
import { MAX_SIGNATURE_BLOB, tryParse } from './formats.js';
import { discover, type ContentAccess, type FetchedManifest, type SignatureSource } from './source.js';

/** An entry of the bundle's index.json (bundle/layout.ts LayoutEntry has this shape). */
export interface BundleEntryLike { descriptor: { digest: Digest; mediaType: string }; refName?: string; repository?: string }

export class BundleSignatureSource implements SignatureSource {
  readonly name = 'bundle';
  private readonly access: ContentAccess;

  constructor(repo: string, entries: readonly BundleEntryLike[], read: (digest: Digest) => Promise<Buffer | undefined>) {
    const manifest = async (digest: Digest, mediaType?: string): Promise<FetchedManifest | undefined> => {
      const bytes = await read(digest);
      return bytes && { digest, mediaType: mediaType ?? tryParse(bytes)?.declaredMediaType ?? MediaType.OciManifest, bytes };
    };
    this.access = {
      manifestByTag: async (tag: Tag) => {
        const entry = entries.find((e) => e.refName === `${repo}:${tag}`);
        return entry && manifest(entry.descriptor.digest, entry.descriptor.mediaType);
      },
      manifestByDigest: (digest) => manifest(digest),
      referrers: async (subject) => {
        const out: Descriptor[] = [];
        for (const e of entries) {
          if (e.refName !== undefined || e.repository !== repo) continue;
          const parsed = tryParse((await read(e.descriptor.digest)) ?? Buffer.alloc(0));
          if (parsed?.subject?.digest === subject) out.push({ mediaType: e.descriptor.mediaType, digest: e.descriptor.digest, size: 0, ...(parsed.artifactType ? { artifactType: parsed.artifactType } : {}) });
        }
        return out;
      },
      blob: async (d) => (d.size > MAX_SIGNATURE_BLOB ? undefined : read(d.digest)),
    };
  }

  signatures(digest: Digest) {
    return discover(this.access, digest);
  }
}
