/**
 * Signature verification against public keys, offline: which of the given keys signed a manifest,
 * judging every signature artifact found for it. A signature counts when it verifies with one of
 * the keys AND names this manifest (the payload's docker-manifest-digest, the in-toto subject, the
 * message digest): a valid signature over another manifest's digest proves nothing about this one.
 *
 * Classic cosign payloads are checked with node:crypto (SHA-256; ECDSA DER signatures or RSA
 * PKCS#1 v1.5, as cosign signs with those keys). Bundles are read with @sigstore/bundle and their
 * signature content (DSSE pre-authentication encoding, message digest) with @sigstore/verify;
 * its Verifier itself is not used: it insists on transparency-log and timestamp evidence checked
 * against a trusted root, which a key-based check in an isolated network does not have. So a
 * bundle's tlog entries and certificates are not checked here; the keys are the trust anchor.
 */
import { verify as cryptoVerify } from 'node:crypto';
import { toSignedEntity } from '@sigstore/verify';
import { crypto as sigstoreCrypto, dsse } from '@sigstore/core';
import { digestOf, type Digest } from '../oci/digest.js';
import { bundleLayer, classicLayers, FormatError, parseBundle, simpleSigningDigest, statementNames } from './formats.js';
import type { PublicKey } from './keys.js';

/** A signature manifest found for an image, with the blobs it references (config, layers) that were read. */
export interface SignatureArtifact {
  form: 'cosign' | 'bundle';
  digest: Digest;
  mediaType: string;
  bytes: Buffer;
  /** The `.sig` tag, for the classic form. */
  tag?: string;
  blobs: ReadonlyMap<string, Buffer>;
}

export type NamedKey = PublicKey & { set: string };

export interface Signer {
  set: string;
  file: string;
  keyId: string;
  form: 'cosign' | 'bundle';
  /** The signature manifest that holds the signature. */
  artifact: Digest;
}

export interface Verification {
  signers: Signer[];
  /** Why signatures found did not count, one line each. */
  problems: string[];
}

export function verifyArtifacts(digest: Digest, manifest: Buffer, artifacts: readonly SignatureArtifact[], keys: readonly NamedKey[]): Verification {
  const out: Verification = { signers: [], problems: [] };
  for (const a of artifacts) {
    try {
      const found = a.form === 'cosign' ? verifyClassic(digest, a, keys, out.problems) : verifyBundle(digest, manifest, a, keys);
      for (const k of found) {
        if (!out.signers.some((s) => s.keyId === k.id && s.set === k.set)) out.signers.push({ set: k.set, file: k.file, keyId: k.id, form: a.form, artifact: a.digest });
      }
      if (found.length === 0 && a.form === 'bundle') out.problems.push(`bundle ${a.digest}: signed by none of the keys`);
    } catch (e) {
      if (!(e instanceof FormatError)) throw e;
      out.problems.push(`${a.form === 'cosign' ? `signature ${a.tag ?? a.digest}` : `bundle ${a.digest}`}: ${e.message}`);
    }
  }
  return out;
}

function verifyClassic(digest: Digest, a: SignatureArtifact, keys: readonly NamedKey[], problems: string[]): NamedKey[] {
  const found: NamedKey[] = [];
  let unsigned = 0;
  for (const layer of classicLayers(a.bytes)) {
    const payload = a.blobs.get(layer.payload.digest);
    if (!payload) { problems.push(`signature ${a.tag ?? a.digest}: payload ${layer.payload.digest} could not be read`); continue; }
    const signers = keys.filter((k) => verifies(k, payload, layer.signature));
    if (signers.length === 0) { unsigned++; continue; }
    let named: Digest;
    try {
      named = simpleSigningDigest(payload);
    } catch (e) {
      problems.push(`signature ${a.tag ?? a.digest}: ${(e as Error).message}`);
      continue;
    }
    if (named !== digest) { problems.push(`signature ${a.tag ?? a.digest}: the signed payload names ${named}, not this manifest`); continue; }
    found.push(...signers);
  }
  if (unsigned > 0 && found.length === 0) problems.push(`signature ${a.tag ?? a.digest}: ${unsigned} payload signature(s) by none of the keys`);
  return found;
}

function verifies(k: NamedKey, data: Buffer, signature: Buffer): boolean {
  try {
    return cryptoVerify('sha256', data, k.key, signature);
  } catch {
    return false; // a signature that is not even DER for this key type verifies nothing
  }
}

function verifyBundle(digest: Digest, manifest: Buffer, a: SignatureArtifact, keys: readonly NamedKey[]): NamedKey[] {
  const layer = bundleLayer(a.bytes);
  if (!layer) throw new FormatError('the referrer has no Sigstore bundle layer');
  const json = a.blobs.get(layer.digest);
  if (!json) throw new FormatError(`bundle ${layer.digest} could not be read`);
  const bundle = parseBundle(json);
  if (bundle.content.$case === 'dsseEnvelope') {
    const env = bundle.content.dsseEnvelope;
    if (!statementNames(env.payload, env.payloadType, digest)) throw new FormatError('the in-toto statement does not name this manifest');
    const pae = dsse.preAuthEncoding(env.payloadType, env.payload);
    return keys.filter((k) => env.signatures.some((s) => safe(() => sigstoreCrypto.verify(pae, k.key, s.sig))));
  }
  let content;
  try {
    content = toSignedEntity(bundle, manifest).signature;
  } catch (e) {
    throw new FormatError(`unreadable bundle: ${(e as Error).message}`);
  }
  if (!content.compareDigest(Buffer.from(digestOf(manifest).slice('sha256:'.length), 'hex'))) {
    throw new FormatError('the message digest is not this manifest\'s');
  }
  return keys.filter((k) => safe(() => content.verifySignature(k.key)));
}

function safe(check: () => boolean): boolean {
  try {
    return check();
  } catch {
    return false;
  }
}
