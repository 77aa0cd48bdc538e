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
}

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
  const out: ParsedManifest = { blobs: [], manifests: [], hasManifestList: Array.isArray(doc.manifests) };
  if (typeof doc.schemaVersion === 'number') out.schemaVersion = doc.schemaVersion;
  if (typeof doc.mediaType === 'string') out.declaredMediaType = doc.mediaType;
  if (typeof doc.artifactType === 'string') out.artifactType = doc.artifactType;
  if (isObject(doc.annotations)) out.annotations = doc.annotations as Record<string, string>;
  // Docker schema 1 references layers by blobSum and is signed: stored as is, not inspected.
  if (out.schemaVersion === 1) return out;
  if (doc.config !== undefined) out.blobs.push(parseDescriptor(doc.config, 'config'));
  for (const d of descriptorList(doc.layers, 'layers')) if (!d.urls?.length) out.blobs.push(d);
  for (const d of descriptorList(doc.blobs, 'blobs')) out.blobs.push(d);
  out.manifests = descriptorList(doc.manifests, 'manifests');
  if (doc.subject !== undefined) out.subject = parseDescriptor(doc.subject, 'subject');
  if (!out.artifactType && out.subject && doc.config !== undefined) {
    // image-spec: an image manifest without artifactType is typed by its config's mediaType.
    out.artifactType = (out.blobs[0] as Descriptor).mediaType;
  }
  return out;
}

/** The media type a manifest has when none was recorded at push time (registry:2's rules). */
export function inferMediaType(parsed: ParsedManifest): string {
  if (parsed.declaredMediaType) return parsed.declaredMediaType;
  if (parsed.schemaVersion === 1) return MediaType.DockerManifestV1Signed;
  if (parsed.hasManifestList) return MediaType.OciIndex;
  return MediaType.OciManifest;
}
