/**
 * Content digests. A Digest is a string that has been validated once at the boundary
 * (`sha256:<64 hex>`, `sha384:<96 hex>` or `sha512:<128 hex>`, lower-case); the core never
 * re-checks it.
 */
import { createHash, type Hash } from 'node:crypto';
import { RegistryError } from '../errors.js';

export type DigestAlgorithm = 'sha256' | 'sha384' | 'sha512';
export type Digest = string & { readonly __brand: 'Digest' };

const HEX_LENGTH: Readonly<Record<DigestAlgorithm, number>> = { sha256: 64, sha384: 96, sha512: 128 };
const DIGEST_RE = /^(sha256|sha384|sha512):([a-f0-9]+)$/;

export function tryParseDigest(value: string): Digest | undefined {
  const m = DIGEST_RE.exec(value);
  if (!m) return undefined;
  const algorithm = m[1] as DigestAlgorithm;
  return m[2]!.length === HEX_LENGTH[algorithm] ? (value as Digest) : undefined;
}

/** Parses a digest from user input; DIGEST_INVALID (400) otherwise. */
export function parseDigest(value: string): Digest {
  const d = tryParseDigest(value);
  if (!d) throw new RegistryError('DIGEST_INVALID', 'invalid digest', { detail: { digest: value.slice(0, 200) } });
  return d;
}

export function digestAlgorithm(d: Digest): DigestAlgorithm {
  return d.slice(0, d.indexOf(':')) as DigestAlgorithm;
}

export function digestHex(d: Digest): string {
  return d.slice(d.indexOf(':') + 1);
}

export function createDigester(algorithm: DigestAlgorithm = 'sha256'): Hash {
  return createHash(algorithm);
}

export function digestOf(data: Uint8Array, algorithm: DigestAlgorithm = 'sha256'): Digest {
  return `${algorithm}:${createHash(algorithm).update(data).digest('hex')}` as Digest;
}

export function digestFromHash(algorithm: DigestAlgorithm, hash: Hash): Digest {
  return `${algorithm}:${hash.digest('hex')}` as Digest;
}
