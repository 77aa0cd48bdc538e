/**
 * Where signatures of a manifest are looked for: a SignatureSource answers "which signature
 * artifacts exist for this digest". The discovery is the same everywhere (cosign's `.sig` tag;
 * OCI 1.1 referrers, or the referrers tag schema where a registry has no referrers API), so each
 * place only says how to read a manifest by tag or digest, its referrers and a blob: the upstream
 * a fill comes from (upstream-source.ts), local storage (local-source.ts), a bundle being imported.
 */
import type { Digest } from '../oci/digest.js';
import type { Descriptor } from '../oci/manifest.js';
import type { Tag } from '../oci/reference.js';
import { bundleLayer, isBundleType, MAX_SIGNATURE_BLOB, referrersTag, signatureTag, tryParse } from './formats.js';
import type { SignatureArtifact } from './verify.js';

export interface SignatureSource {
  /** For reports: "upstream docker.io", "storage", "bundle". */
  readonly name: string;
  /** Asking it costs a round trip (an upstream): an unsigned answer is then remembered for a while. */
  readonly remote?: boolean;
  signatures(digest: Digest): Promise<SignatureArtifact[]>;
  /**
   * Indexes held with the manifest that list it (for a platform manifest whose index is signed),
   * when the source can tell. Only local storage can.
   */
  indexesListing?(digest: Digest): Promise<Array<{ digest: Digest; bytes: Buffer }>>;
  /** Called with what signatures() found once the image is admitted: the upstream keeps them in the cache. */
  keep?(artifacts: readonly SignatureArtifact[]): Promise<void>;
}

/**
 * Bounds on what one manifest's signatures may cost to read: an upstream listing a thousand
 * referrers, or a `.sig` manifest of a thousand layers, gets this many looked at.
 */
const MAX_BUNDLE_REFERRERS = 16;
const MAX_BLOBS_PER_ARTIFACT = 64;

export interface FetchedManifest { digest: Digest; mediaType: string; bytes: Buffer }

/** How one place is read. Every answer is digest-verified by the implementation; undefined: not there. */
export interface ContentAccess {
  manifestByTag(tag: Tag): Promise<FetchedManifest | undefined>;
  manifestByDigest(digest: Digest): Promise<FetchedManifest | undefined>;
  /** The referrers of digest; undefined when this place has no referrers API (the tag schema is tried). */
  referrers(digest: Digest): Promise<Descriptor[] | undefined>;
  blob(descriptor: Descriptor): Promise<Buffer | undefined>;
}

/** Every cosign signature artifact for `digest` that `access` holds. */
export async function discover(access: ContentAccess, digest: Digest): Promise<SignatureArtifact[]> {
  const out: SignatureArtifact[] = [];
  const tag = signatureTag(digest);
  const classic = await access.manifestByTag(tag);
  if (classic) {
    out.push({ form: 'cosign', ...classic, tag, blobs: await readBlobs(access, classic.bytes) });
  }
  let referrers = await access.referrers(digest);
  if (referrers === undefined) {
    const list = await access.manifestByTag(referrersTag(digest));
    referrers = list ? (tryParse(list.bytes)?.manifests ?? []) : [];
  }
  for (const r of referrers.filter((d) => isBundleType(d.artifactType)).slice(0, MAX_BUNDLE_REFERRERS)) {
    if (out.some((a) => a.digest === r.digest)) continue;
    const m = await access.manifestByDigest(r.digest);
    const parsed = m ? tryParse(m.bytes) : undefined;
    // The referrer must point at this manifest itself, not merely be listed for it.
    if (!m || parsed?.subject?.digest !== digest || !bundleLayer(m.bytes)) continue;
    out.push({ form: 'bundle', ...m, blobs: await readBlobs(access, m.bytes) });
  }
  return out;
}

/** The blobs a signature manifest references that could be read (verification names the missing ones). */
async function readBlobs(access: ContentAccess, manifest: Buffer): Promise<Map<string, Buffer>> {
  const parsed = tryParse(manifest);
  if (!parsed) return new Map();
  const blobs = new Map<string, Buffer>();
  for (const d of parsed.blobs.slice(0, MAX_BLOBS_PER_ARTIFACT)) {
    if (d.size > MAX_SIGNATURE_BLOB || blobs.has(d.digest)) continue;
    const bytes = await access.blob(d);
    if (bytes) blobs.set(d.digest, bytes);
  }
  return blobs;
}
