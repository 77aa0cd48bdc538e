/**
 * Parses a /v2 request path into a typed endpoint. Repository names contain slashes, so the
 * endpoint is recognised from the end of the path. Nothing is percent-decoded: no valid name, tag,
 * digest or upload id contains '%', so encoded traversal ("%2e%2e", "%2f") simply fails the grammar.
 */
import { RegistryError } from '../errors.js';
import { parseDigest, type Digest } from '../oci/digest.js';
import { parseReference, parseRepoName, type Reference, type RepoName } from '../oci/reference.js';

/**
 * A manifest reference as the path gave it: a tag, a digest, or neither. "Neither" is not an
 * error yet: GET/HEAD/DELETE answer 404 MANIFEST_UNKNOWN for it (a reference that cannot exist
 * is simply unknown, as the distribution-spec conformance suite expects); PUT answers with the
 * parse error (TAG_INVALID / DIGEST_INVALID).
 */
export type ManifestReference = Reference | { kind: 'invalid'; raw: string; error: RegistryError };

export type V2Endpoint =
  | { kind: 'base' }
  | { kind: 'catalog' }
  | { kind: 'manifest'; name: RepoName; reference: ManifestReference }
  | { kind: 'blob'; name: RepoName; digest: Digest }
  | { kind: 'uploads'; name: RepoName }
  | { kind: 'upload'; name: RepoName; uuid: string }
  | { kind: 'tags'; name: RepoName }
  | { kind: 'referrers'; name: RepoName; digest: Digest };

/** `rest` is the path after "/v2/" without the query string. */
export function parseV2Path(rest: string): V2Endpoint {
  if (rest === '') return { kind: 'base' };
  if (rest === '_catalog') return { kind: 'catalog' };
  const s = rest.split('/');
  const n = s.length;
  const nameOf = (count: number): RepoName => parseRepoName(s.slice(0, count).join('/'));
  if (n >= 3 && s[n - 2] === 'tags' && s[n - 1] === 'list') return { kind: 'tags', name: nameOf(n - 2) };
  if (n >= 3 && s[n - 2] === 'manifests') return { kind: 'manifest', name: nameOf(n - 2), reference: manifestReference(s[n - 1]!) };
  if (n >= 3 && s[n - 2] === 'referrers') return { kind: 'referrers', name: nameOf(n - 2), digest: parseDigest(s[n - 1]!) };
  if (n >= 3 && s[n - 2] === 'blobs' && s[n - 1] === 'uploads') return { kind: 'uploads', name: nameOf(n - 2) };
  if (n >= 4 && s[n - 3] === 'blobs' && s[n - 2] === 'uploads') {
    if (s[n - 1] === '') return { kind: 'uploads', name: nameOf(n - 3) };
    return { kind: 'upload', name: nameOf(n - 3), uuid: s[n - 1]! };
  }
  if (n >= 3 && s[n - 2] === 'blobs') return { kind: 'blob', name: nameOf(n - 2), digest: parseDigest(s[n - 1]!) };
  throw new RegistryError('UNSUPPORTED', 'no such endpoint', { status: 404, detail: { path: rest.slice(0, 300) } });
}

function manifestReference(raw: string): ManifestReference {
  try {
    return parseReference(raw);
  } catch (e) {
    if (e instanceof RegistryError) return { kind: 'invalid', raw: raw.slice(0, 200), error: e };
    throw e;
  }
}
