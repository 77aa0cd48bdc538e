/**
 * The OCI image layout (image-spec "image-layout.md"), as stowage's bundles use it:
 *
 *   oci-layout                     {"imageLayoutVersion": "1.0.0"}
 *   index.json                     an image index; every image is one entry, named by its full
 *                                  reference in org.opencontainers.image.ref.name
 *                                  ("docker.io/library/alpine:3.20", "team/app:1.0")
 *   blobs/<alg>/<hex>              manifests, configs and layers, content-addressed
 *
 * Referrers (signatures, SBOMs) of exported manifests are entries without a ref name, carrying
 * the repository they belong to in REPOSITORY_ANNOTATION. Pure functions: no I/O.
 */
import { tryParseDigest, digestAlgorithm, digestHex, type Digest } from '../oci/digest.js';
import { parseManifest, type Descriptor } from '../oci/manifest.js';
import { MediaType } from '../oci/media-types.js';
import { isValidRepoName, isValidTag, type RepoName, type Tag } from '../oci/reference.js';

export const LAYOUT_FILE = 'oci-layout';
export const INDEX_FILE = 'index.json';
export const LAYOUT_VERSION = '1.0.0';
export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';
/** Where a referrer entry (no ref name) belongs. */
export const REPOSITORY_ANNOTATION = 'dev.stowage.repository';

export const blobPathIn = (d: Digest): string => `blobs/${digestAlgorithm(d)}/${digestHex(d)}`;

/** "blobs/sha256/<hex>" (optionally "./"-prefixed, as tar writes it) -> the digest. */
export function digestOfBlobPath(path: string): Digest | undefined {
  const m = /^(?:\.\/)?blobs\/([a-z0-9]+)\/([a-f0-9]+)$/.exec(path);
  return m ? tryParseDigest(`${m[1]}:${m[2]}`) : undefined;
}

/** A full image reference as stowage writes and reads ref names: repo:tag or repo@digest. */
export interface ImageName { repo: RepoName; tag?: Tag; digest?: Digest }

/** "docker.io/library/alpine:3.20", "team/app@sha256:..." -> parts; undefined if it is not one. */
export function parseImageName(text: string): ImageName | undefined {
  let rest = text;
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = tryParseDigest(rest.slice(at + 1));
    if (!digest) return undefined;
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!isValidTag(tag)) return undefined;
  }
  // A host with a port ("localhost:5000/app") is stored under "localhost_5000/app", as upstream names are.
  const repo = rest.replace(/^([^/]+):(\d+)\//, '$1_$2/');
  if (!isValidRepoName(repo)) return undefined;
  return { repo, ...(tag !== undefined ? { tag: tag as Tag } : {}), ...(digest ? { digest } : {}) };
}

export function formatImageName(n: ImageName): string {
  return n.tag !== undefined ? `${n.repo}:${n.tag}` : `${n.repo}@${n.digest}`;
}

export interface LayoutEntry { descriptor: Descriptor; refName?: string; repository?: string }

export function layoutFile(): Buffer {
  return Buffer.from(JSON.stringify({ imageLayoutVersion: LAYOUT_VERSION }));
}

export function indexFile(entries: LayoutEntry[]): Buffer {
  return Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: MediaType.OciIndex,
    manifests: entries.map((e) => {
      const annotations: Record<string, string> = { ...(e.descriptor.annotations ?? {}) };
      if (e.refName !== undefined) annotations[REF_NAME_ANNOTATION] = e.refName;
      if (e.repository !== undefined) annotations[REPOSITORY_ANNOTATION] = e.repository;
      const d: Record<string, unknown> = { mediaType: e.descriptor.mediaType, digest: e.descriptor.digest, size: e.descriptor.size };
      if (e.descriptor.artifactType) d.artifactType = e.descriptor.artifactType;
      if (Object.keys(annotations).length > 0) d.annotations = annotations;
      return d;
    }),
  }, null, 1));
}

/** Reads index.json; throws LayoutError when it is not an image index. */
export function readIndexFile(bytes: Buffer): LayoutEntry[] {
  let parsed;
  try {
    parsed = parseManifest(bytes);
  } catch (e) {
    throw new LayoutError(`index.json is not an image index: ${(e as Error).message}`);
  }
  if (!parsed.hasManifestList) throw new LayoutError('index.json has no "manifests" list');
  return parsed.manifests.map((descriptor) => {
    const refName = descriptor.annotations?.[REF_NAME_ANNOTATION];
    const repository = descriptor.annotations?.[REPOSITORY_ANNOTATION];
    return { descriptor, ...(refName !== undefined ? { refName } : {}), ...(repository !== undefined ? { repository } : {}) };
  });
}

export class LayoutError extends Error {}
