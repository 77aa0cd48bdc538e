/**
 * Reading what a manifest references, without I/O. A manifest is kept as the exact bytes that were
 * pushed; this module only looks inside to find the descriptors that must exist, the subject, the
 * artifact type, and a media type when none was recorded (as registry:2 does).
 */
import { RegistryError } from '../errors.js';
import { tryParseDigest, type Digest } from './digest.js';
import { MediaType } from './media-types.js';

export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
  urls?: string[];
}

export interface ParsedManifest {
  /** mediaType field of the payload, if any. */
  declaredMediaType?: string;
  /** Blobs that must exist in the repository (config, layers, blobs), foreign layers excluded. */
  blobs: Descriptor[];
  /** Manifests that must exist in the repository (index children). */
  manifests: Descriptor[];
  subject?: Descriptor;
  artifactType?: string;
  annotations?: Record<string, string>;
  schemaVersion?: number;
  /** The payload has a `manifests` list (an index or manifest list), even an empty one. */
  hasManifestList: boolean;
  /** The payload has a `config` descriptor and a `layers` list (even an empty one). */
  hasConfig: boolean;
  hasLayerList: boolean;
  /** Every digest the manifest references, foreign layers and schema 1 blobSums included. */
  references: ManifestReference[];
}

export type ReferenceKind = 'config' | 'layer' | 'blob' | 'subject' | 'manifest';
export interface ManifestReference { digest: Digest; kind: ReferenceKind }

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function invalid(message: string, detail?: unknown): RegistryError {
  return new RegistryError('MANIFEST_INVALID', message, { detail });
}

function parseDescriptor(v: unknown, where: string): Descriptor {
  if (!isObject(v)) throw invalid(`${where} is not a descriptor`);
  const digest = typeof v.digest === 'string' ? tryParseDigest(v.digest) : undefined;
  if (!digest) throw invalid(`${where} has an invalid digest`, { digest: v.digest });
  if (typeof v.size !== 'number' || !Number.isSafeInteger(v.size) || v.size < 0) throw invalid(`${where} has an invalid size`);
  if (typeof v.mediaType !== 'string') throw invalid(`${where} has no mediaType`);
  const d: Descriptor = { mediaType: v.mediaType, digest, size: v.size };
  if (typeof v.artifactType === 'string') d.artifactType = v.artifactType;
  if (isObject(v.annotations)) d.annotations = v.annotations as Record<string, string>;
  if (Array.isArray(v.urls)) d.urls = v.urls.filter((u): u is string => typeof u === 'string');
  return d;
}

function descriptorList(v: unknown, where: string): Descriptor[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw invalid(`${where} is not a list`);
  return v.map((d, i) => parseDescriptor(d, `${where}[${i}]`));
}

export function parseManifest(bytes: Buffer): ParsedManifest {
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw invalid('manifest is not valid JSON');
  }
  if (!isObject(doc)) throw invalid('manifest is not a JSON object');
  const out: ParsedManifest = {
    blobs: [], manifests: [], references: [],
    hasManifestList: Array.isArray(doc.manifests), hasConfig: doc.config !== undefined, hasLayerList: Array.isArray(doc.layers),
  };
  if (typeof doc.schemaVersion === 'number') out.schemaVersion = doc.schemaVersion;
  if (typeof doc.mediaType === 'string') out.declaredMediaType = doc.mediaType;
  if (typeof doc.artifactType === 'string') out.artifactType = doc.artifactType;
  if (isObject(doc.annotations)) out.annotations = doc.annotations as Record<string, string>;
  const refs = out.references;
  // Docker schema 1 references layers by blobSum and is signed: stored as is, only its blobSums
  // are read (for the reference index).
  if (out.schemaVersion === 1) {
    const layers = Array.isArray(doc.fsLayers) ? doc.fsLayers : [];
    for (const l of layers) {
      const d = isObject(l) && typeof l.blobSum === 'string' ? tryParseDigest(l.blobSum) : undefined;
      if (d && !refs.some((r) => r.digest === d)) refs.push({ digest: d, kind: 'layer' });
    }
    return out;
  }
  if (doc.config !== undefined) {
    const config = parseDescriptor(doc.config, 'config');
    out.blobs.push(config);
    refs.push({ digest: config.digest, kind: 'config' });
  }
  for (const d of descriptorList(doc.layers, 'layers')) {
    // A foreign layer (urls) need not be in the registry, but it is still referenced.
    if (!d.urls?.length) out.blobs.push(d);
    refs.push({ digest: d.digest, kind: 'layer' });
  }
  for (const d of descriptorList(doc.blobs, 'blobs')) {
    out.blobs.push(d);
    refs.push({ digest: d.digest, kind: 'blob' });
  }
  out.manifests = descriptorList(doc.manifests, 'manifests');
  for (const d of out.manifests) refs.push({ digest: d.digest, kind: 'manifest' });
  if (doc.subject !== undefined) {
    out.subject = parseDescriptor(doc.subject, 'subject');
    refs.push({ digest: out.subject.digest, kind: 'subject' });
  }
  // The same digest may appear twice (a layer repeated); the index keeps one row per digest.
  const seen = new Set<string>();
  out.references = refs.filter((r) => (seen.has(r.digest) ? false : (seen.add(r.digest), true)));
  if (!out.artifactType && out.subject && doc.config !== undefined) {
    // image-spec: an image manifest without artifactType is typed by its config's mediaType.
    out.artifactType = (out.blobs[0] as Descriptor).mediaType;
  }
  return out;
}

/**
 * A pushed manifest of a type stowage knows must have that type's parts, or no client could pull
 * it (registry:2 refuses these too): an image manifest its config and layer list, an index its
 * manifest list, both schemaVersion 2. Other types are stored as they are.
 */
export function requireShape(mediaType: string, parsed: ParsedManifest): void {
  const image = mediaType === MediaType.OciManifest || mediaType === MediaType.DockerManifest;
  const index = mediaType === MediaType.OciIndex || mediaType === MediaType.DockerManifestList;
  if (!image && !index) return;
  if (parsed.schemaVersion !== 2) throw invalid(`a ${mediaType} manifest must have schemaVersion 2`, { schemaVersion: parsed.schemaVersion ?? null });
  if (image && !parsed.hasConfig) throw invalid('an image manifest must have a config descriptor');
  if (image && !parsed.hasLayerList) throw invalid('an image manifest must have a layers list');
  if (index && !parsed.hasManifestList) throw invalid('an index must have a manifests list');
}

/** The media type a manifest has when none was recorded at push time (registry:2's rules). */
export function inferMediaType(parsed: ParsedManifest): string {
  if (parsed.declaredMediaType) return parsed.declaredMediaType;
  if (parsed.schemaVersion === 1) return MediaType.DockerManifestV1Signed;
  if (parsed.hasManifestList) return MediaType.OciIndex;
  return MediaType.OciManifest;
}
