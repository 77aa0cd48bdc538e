/**
 * Repository names and tags, with the grammar of the OCI distribution spec. Parsed once at the
 * HTTP boundary into branded strings; invalid input is NAME_INVALID / TAG_INVALID, never a 500.
 */
import { RegistryError } from '../errors.js';
import { tryParseDigest, type Digest } from './digest.js';

export type RepoName = string & { readonly __brand: 'RepoName' };
export type Tag = string & { readonly __brand: 'Tag' };
export type Reference = { kind: 'tag'; tag: Tag } | { kind: 'digest'; digest: Digest };

const COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const NAME_RE = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const TAG_RE = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
/** distribution limits the whole name to 255 characters. */
export const MAX_NAME_LENGTH = 255;

export function isValidRepoName(value: string): value is RepoName {
  return value.length <= MAX_NAME_LENGTH && NAME_RE.test(value);
}

export function parseRepoName(value: string): RepoName {
  if (!isValidRepoName(value)) {
    throw new RegistryError('NAME_INVALID', 'invalid repository name', { detail: { name: value.slice(0, 300) } });
  }
  return value;
}

export function isValidTag(value: string): value is Tag {
  return TAG_RE.test(value);
}

export function parseTag(value: string): Tag {
  if (!isValidTag(value)) throw new RegistryError('TAG_INVALID', 'invalid tag', { detail: { tag: value.slice(0, 200) } });
  return value;
}

/** A manifest reference is a digest if it contains ':', else a tag. */
export function parseReference(value: string): Reference {
  if (value.includes(':')) {
    const digest = tryParseDigest(value);
    if (!digest) throw new RegistryError('DIGEST_INVALID', 'invalid digest reference', { detail: { reference: value.slice(0, 200) } });
    return { kind: 'digest', digest };
  }
  return { kind: 'tag', tag: parseTag(value) };
}

export function referenceToString(ref: Reference): string {
  return ref.kind === 'tag' ? ref.tag : ref.digest;
}
