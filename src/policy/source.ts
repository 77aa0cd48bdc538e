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

/**
 * Every cosign signature artifact for `digest` that `access` holds. The classic tag and the
 * referrers are looked up at once, and each artifact's blobs fetched together: against an
 * upstream these are round trips added to a cold pull.
 */
export async function discover(access: ContentAccess, digest: Digest): Promise<SignatureArtifact[]> {
  const [classic, bundles] = await Promise.all([classicArtifact(access, digest), bundleArtifacts(access, digest)]);
  return [...(classic ? [classic] : []), ...bundles];
}

async function classicArtifact(access: ContentAccess, digest: Digest): Promise<SignatureArtifact | undefined> {
  const tag = signatureTag(digest);
  const m = await access.manifestByTag(tag);
  return m && { form: 'cosign', ...m, tag, blobs: await readBlobs(access, m.bytes) };
}

async function bundleArtifacts(access: ContentAccess, digest: Digest): Promise<SignatureArtifact[]> {
  let referrers = await access.referrers(digest);
  if (referrers === undefined) {
    const list = await access.manifestByTag(referrersTag(digest));
    referrers = list ? (tryParse(list.bytes)?.manifests ?? []) : [];
  }
  const wanted = [...new Map(referrers.filter((d) => isBundleType(d.artifactType)).map((d) => [d.digest, d])).values()].slice(0, MAX_BUNDLE_REFERRERS);
  const found = await Promise.all(wanted.map(async (r): Promise<SignatureArtifact | undefined> => {
    const m = await access.manifestByDigest(r.digest);
    // The referrer must point at this manifest itself, not merely be listed for it.
    if (!m || tryParse(m.bytes)?.subject?.digest !== digest || !bundleLayer(m.bytes)) return undefined;
    return { form: 'bundle', ...m, blobs: await readBlobs(access, m.bytes) };
  }));
  return found.filter((a): a is SignatureArtifact => a !== undefined);
}

/** The blobs a signature manifest references that could be read (verification names the missing ones). */
async function readBlobs(access: ContentAccess, manifest: Buffer): Promise<Map<string, Buffer>> {
  const wanted = new Map((tryParse(manifest)?.blobs ?? []).slice(0, MAX_BLOBS_PER_ARTIFACT).filter((d) => d.size <= MAX_SIGNATURE_BLOB).map((d) => [d.digest, d]));
  const read = await Promise.all([...wanted.values()].map(async (d) => [d.digest, await access.blob(d)] as const));
  return new Map(read.filter((e): e is readonly [Digest, Buffer] => e[1] !== undefined));
}
