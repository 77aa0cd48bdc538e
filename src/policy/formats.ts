/**
 * The signature formats the policy reads, parsed without I/O (sigstore/cosign specs/SIGNATURE_SPEC.md
 * and specs/BUNDLE_SPEC.md):
 *
 *  - cosign's classic form: the tag `sha256-<hex>.sig` in the image's repository holds an image
 *    manifest whose layers are simple-signing payloads (`application/vnd.dev.cosign.simplesigning.v1+json`),
 *    each with its base64 signature in the layer annotation `dev.cosignproject.cosign/signature`.
 *    The payload names the signed manifest in `critical.image.docker-manifest-digest`.
 *  - the OCI 1.1 form: a manifest with `subject` = the image and artifactType
 *    `application/vnd.dev.sigstore.bundle.v0.3+json`, whose one layer is a Sigstore bundle (JSON):
 *    a message signature over the manifest bytes, or a DSSE envelope over an in-toto statement whose
 *    subject has the manifest's digest.
 *
 * Everything here takes untrusted bytes: a malformed document is a FormatError with a reason a
 * person can act on, never a crash.
 */
import { bundleFromJSON, type Bundle } from '@sigstore/bundle';
import { digestHex, tryParseDigest, type Digest } from '../oci/digest.js';
import { parseManifest, type Descriptor, type ParsedManifest } from '../oci/manifest.js';
import type { Tag } from '../oci/reference.js';

export const SIMPLE_SIGNING = 'application/vnd.dev.cosign.simplesigning.v1+json';
export const SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature';
export const COSIGN_CRITICAL_TYPE = 'cosign container image signature';
export const SIGSTORE_BUNDLE = 'application/vnd.dev.sigstore.bundle.v0.3+json';
export const IN_TOTO = 'application/vnd.in-toto+json';
/** Older bundle media types (`...bundle+json;version=0.2`) are read as well. */
export const isBundleType = (t: string | undefined): boolean => t !== undefined && t.startsWith('application/vnd.dev.sigstore.bundle');

/** Layer types of artifacts that cannot run as a container: signatures, attestations, SBOMs. */
const ACCESSORY_LAYERS = new Set([
  SIMPLE_SIGNING, IN_TOTO, 'application/vnd.dsse.envelope.v1+json', 'text/spdx+json', 'text/spdx', 'application/vnd.cyclonedx+json',
  'application/vnd.cyclonedx+xml', 'application/spdx+json',
]);

/** Largest signature document read (a payload, a bundle, a signature manifest's config). */
export const MAX_SIGNATURE_BLOB = 1024 * 1024;

export class FormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FormatError';
  }
}

/** Where cosign keeps classic signatures of `digest`: sha256:ab.. -> "sha256-ab...sig". */
export function signatureTag(digest: Digest): Tag {
  return `${digest.replace(':', '-')}.sig` as Tag;
}

/** The referrers tag schema (distribution-spec 1.1) for registries without the referrers API. */
export function referrersTag(digest: Digest): Tag {
  return digest.replace(':', '-') as Tag;
}

/**
 * True when a manifest is a signature, attestation or SBOM of another rather than something that
 * runs: an image manifest every layer of which has such a type (cosign's `.sig`, `.att`, `.sbom`
 * manifests, sigstore bundles), or an index listing only artifacts (a referrers list). Those are
 * never held to a signature rule themselves. A `subject` alone does not make an exemption: it
 * costs an attacker nothing to add one to a runnable image.
 */
export function isAccessory(parsed: ParsedManifest): boolean {
  if (parsed.hasManifestList) return parsed.manifests.length > 0 && parsed.manifests.every((m) => m.artifactType !== undefined);
  const layers = parsed.blobs.filter((b) => b !== parsed.blobs[0] || !isConfigSlot(parsed));
  return layers.length > 0 && layers.every((l) => ACCESSORY_LAYERS.has(l.mediaType) || isBundleType(l.mediaType));
}

/** parseManifest puts the config first in `blobs` when there is one. */
function isConfigSlot(parsed: ParsedManifest): boolean {
  return parsed.references[0]?.kind === 'config';
}

/** parseManifest, but undefined for bytes that are not a manifest. */
export function tryParse(bytes: Buffer): ParsedManifest | undefined {
  try {
    return parseManifest(bytes);
  } catch {
    return undefined;
  }
}

/** One simple-signing layer of a classic `.sig` manifest. */
export interface ClassicLayer { payload: Descriptor; signature: Buffer }

/** The signed layers of a classic signature manifest; layers of other types are skipped. */
export function classicLayers(manifest: Buffer): ClassicLayer[] {
  const parsed = tryParse(manifest);
  if (!parsed) throw new FormatError('the signature manifest is not a valid manifest');
  const out: ClassicLayer[] = [];
  for (const layer of parsed.blobs) {
    if (layer.mediaType !== SIMPLE_SIGNING) continue;
    const text = layer.annotations?.[SIGNATURE_ANNOTATION];
    if (typeof text !== 'string') throw new FormatError(`payload ${layer.digest} has no ${SIGNATURE_ANNOTATION} annotation`);
    out.push({ payload: layer, signature: strictBase64(text, `the signature of payload ${layer.digest}`) });
  }
  if (out.length === 0) throw new FormatError(`the signature manifest has no ${SIMPLE_SIGNING} layer`);
  return out;
}

/** The manifest digest a simple-signing payload names (its `critical.type` must be cosign's). */
export function simpleSigningDigest(payload: Buffer): Digest {
  const doc = parseJson(payload, 'the simple-signing payload');
  const critical = field(doc, 'critical');
  const type = field(critical, 'type');
  if (type !== COSIGN_CRITICAL_TYPE) throw new FormatError(`the payload's critical.type is ${JSON.stringify(type)}, not "${COSIGN_CRITICAL_TYPE}"`);
  const image = field(critical, 'image');
  // Go's JSON decoding (cosign's) matches keys case-insensitively; the spec's own example says "Docker-manifest-digest".
  const key = isObject(image) ? Object.keys(image).find((k) => k.toLowerCase() === 'docker-manifest-digest') : undefined;
  const value = key === undefined ? undefined : (image as Record<string, unknown>)[key];
  const digest = typeof value === 'string' ? tryParseDigest(value) : undefined;
  if (!digest) throw new FormatError('the payload has no valid critical.image.docker-manifest-digest');
  return digest;
}

/** The Sigstore bundle layer of an OCI 1.1 referrer, or undefined when it carries none. */
export function bundleLayer(manifest: Buffer): Descriptor | undefined {
  const parsed = tryParse(manifest);
  if (!parsed || parsed.hasManifestList) return undefined;
  return parsed.blobs.find((b) => isBundleType(b.mediaType));
}

/** A Sigstore bundle, validated by @sigstore/bundle (all versions it reads). */
export function parseBundle(json: Buffer): Bundle {
  const doc = parseJson(json, 'the Sigstore bundle');
  try {
    return bundleFromJSON(doc);
  } catch (e) {
    throw new FormatError(`not a valid Sigstore bundle: ${(e as Error).message}`);
  }
}

/** Whether an in-toto statement (a DSSE payload) names `digest` among its subjects. */
export function statementNames(payload: Buffer, payloadType: string, digest: Digest): boolean {
  if (payloadType !== IN_TOTO) throw new FormatError(`the DSSE payload type is ${JSON.stringify(payloadType)}, not ${IN_TOTO}`);
  const doc = parseJson(payload, 'the in-toto statement');
  const subjects = field(doc, 'subject');
  if (!Array.isArray(subjects)) throw new FormatError('the in-toto statement has no subject list');
  const [algorithm, hex] = [digest.slice(0, digest.indexOf(':')), digestHex(digest)];
  return subjects.some((s) => isObject(s) && isObject(s.digest) && (s.digest as Record<string, unknown>)[algorithm] === hex);
}

function strictBase64(text: string, what: string): Buffer {
  const clean = text.trim();
  if (clean === '' || !/^[A-Za-z0-9+/]+={0,2}$/.test(clean) || clean.length % 4 !== 0) throw new FormatError(`${what} is not base64`);
  return Buffer.from(clean, 'base64');
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function parseJson(bytes: Buffer, what: string): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new FormatError(`${what} is not JSON`);
  }
}

function field(doc: unknown, name: string): unknown {
  return isObject(doc) ? doc[name] : undefined;
}
