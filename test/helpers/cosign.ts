/**
 * cosign signatures built byte for byte as the specifications say, with keys openssl makes:
 *  - classic (sigstore/cosign specs/SIGNATURE_SPEC.md): a simple-signing payload blob per signature,
 *    the base64 signature in the layer annotation dev.cosignproject.cosign/signature, the manifest
 *    pushed under the tag sha256-<hex>.sig;
 *  - OCI 1.1 (specs/BUNDLE_SPEC.md): a Sigstore bundle v0.3 blob, a manifest with artifactType
 *    application/vnd.dev.sigstore.bundle.v0.3+json, an empty config and `subject`; the bundle holds
 *    a DSSE envelope over an in-toto statement (the DSSE pre-authentication encoding written out
 *    here, not taken from the library under test) or a message signature over the manifest.
 */
import { execFileSync } from 'node:child_process';
import { createPrivateKey, sign, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { OCI_INDEX, OCI_MANIFEST, pushBlobHttp, pushManifestHttp, sha256, type Blob } from './image.js';

export interface KeyPair { name: string; priv: string; pub: string; key: KeyObject }

/** An ECDSA P-256 (cosign generate-key-pair's kind) or RSA 2048 key pair in `dir`, made by openssl. */
export function opensslKey(dir: string, name: string, kind: 'ec' | 'rsa' = 'ec'): KeyPair {
  const priv = join(dir, `${name}.key`);
  const pub = join(dir, `${name}.pub`);
  if (kind === 'ec') execFileSync('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', priv], { stdio: 'ignore' });
  else execFileSync('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', priv], { stdio: 'ignore' });
  execFileSync('openssl', ['pkey', '-in', priv, '-pubout', '-out', pub], { stdio: 'ignore' });
  return { name, priv, pub, key: createPrivateKey(readFileSync(priv)) };
}

const blob = (bytes: Buffer): Blob => ({ bytes, digest: sha256(bytes) });

/** What cosign signs for an image: its simple-signing payload, in cosign's field order. */
export function simpleSigningPayload(dockerReference: string, manifestDigest: string): Buffer {
  return Buffer.from(JSON.stringify({
    critical: { identity: { 'docker-reference': dockerReference }, image: { 'docker-manifest-digest': manifestDigest }, type: 'cosign container image signature' },
    optional: null,
  }));
}

export interface Artifact { blobs: Blob[]; manifest: Blob & { mediaType: string } }

/**
 * The `.sig` manifest for `digest`: one simple-signing layer per signer. `payloadDigest` puts
 * another manifest's digest into the payloads (a tampered signature, validly signed).
 */
export function classicSignature(reference: string, digest: string, signers: KeyPair[], opts: { payloadDigest?: string; signatureText?: string } = {}): Artifact {
  const payload = blob(simpleSigningPayload(reference, opts.payloadDigest ?? digest));
  const layers = signers.map((k) => ({
    mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json', size: payload.bytes.length, digest: payload.digest,
    annotations: { 'dev.cosignproject.cosign/signature': opts.signatureText ?? sign('sha256', payload.bytes, k.key).toString('base64') },
  }));
  const config = blob(Buffer.from(JSON.stringify({
    architecture: '', created: '0001-01-01T00:00:00Z', history: [{ created: '0001-01-01T00:00:00Z' }], os: '',
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) }, config: {},
  })));
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: OCI_MANIFEST,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', size: config.bytes.length, digest: config.digest },
    layers,
  }));
  return { blobs: [config, payload], manifest: { ...blob(manifest), mediaType: OCI_MANIFEST } };
}

export const signatureTag = (digest: string) => `${digest.replace(':', '-')}.sig`;

/** DSSE v1 pre-authentication encoding: "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body. */
export function preAuthEncoding(payloadType: string, payload: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`DSSEv1 ${Buffer.byteLength(payloadType)} ${payloadType} ${payload.length} `), payload]);
}

/** A Sigstore bundle v0.3 with a DSSE envelope over an in-toto statement naming `subjectDigest`. */
export function dsseBundle(name: string, subjectDigest: string, k: KeyPair): Buffer {
  const statement = Buffer.from(JSON.stringify({
    _type: 'https://in-toto.io/Statement/v1',
    subject: [{ name, digest: { sha256: subjectDigest.slice('sha256:'.length) } }],
    predicateType: 'https://sigstore.dev/cosign/sign/v1',
    predicate: {},
  }));
  const payloadType = 'application/vnd.in-toto+json';
  return Buffer.from(JSON.stringify({
    mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json',
    verificationMaterial: { publicKey: { hint: k.name }, tlogEntries: [] },
    dsseEnvelope: {
      payload: statement.toString('base64'), payloadType,
      signatures: [{ sig: sign('sha256', preAuthEncoding(payloadType, statement), k.key).toString('base64'), keyid: '' }],
    },
  }));
}

/** A Sigstore bundle v0.3 with a message signature over the manifest bytes. */
export function messageBundle(manifest: Buffer, k: KeyPair): Buffer {
  return Buffer.from(JSON.stringify({
    mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json',
    verificationMaterial: { publicKey: { hint: k.name }, tlogEntries: [] },
    messageSignature: {
      messageDigest: { algorithm: 'SHA2_256', digest: Buffer.from(sha256(manifest).slice(7), 'hex').toString('base64') },
      signature: sign('sha256', manifest, k.key).toString('base64'),
    },
  }));
}

export const BUNDLE_TYPE = 'application/vnd.dev.sigstore.bundle.v0.3+json';

/** The OCI 1.1 referrer carrying a bundle, as BUNDLE_SPEC.md lays it out. */
export function bundleReferrer(subject: { digest: string; size: number; mediaType: string }, bundle: Buffer): Artifact {
  const config = blob(Buffer.from('{}'));
  const layer = blob(bundle);
  const manifest = Buffer.from(JSON.stringify({
    mediaType: OCI_MANIFEST, schemaVersion: 2, artifactType: BUNDLE_TYPE,
    config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: config.digest, size: 2 },
    layers: [{ digest: layer.digest, mediaType: BUNDLE_TYPE, size: layer.bytes.length, annotations: { 'org.opencontainers.image.title': `${layer.digest.replace(':', '-')}.sigstore.json` } }],
    subject,
  }));
  return { blobs: [config, layer], manifest: { ...blob(manifest), mediaType: OCI_MANIFEST } };
}

/** The referrers tag schema's index (distribution-spec 1.1) listing `referrers`. */
export function referrersIndex(referrers: Artifact[]): Blob & { mediaType: string } {
  return {
    ...blob(Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: OCI_INDEX,
      manifests: referrers.map((r) => ({ mediaType: OCI_MANIFEST, digest: r.manifest.digest, size: r.manifest.bytes.length, artifactType: BUNDLE_TYPE })),
    }))),
    mediaType: OCI_INDEX,
  };
}

/** Pushes an artifact's blobs and its manifest under `ref` (a tag, or its digest). */
export async function pushArtifact(base: string, repo: string, a: Artifact, ref = a.manifest.digest): Promise<void> {
  for (const b of a.blobs) await pushBlobHttp(base, repo, b);
  await pushManifestHttp(base, repo, ref, a.manifest.bytes, a.manifest.mediaType);
}

/**
 * Attaches bundle referrers to an image in a registry without the referrers API (registry:2 2.8):
 * the referrers pushed by digest, and the index of them under the tag sha256-<hex>.
 */
export async function attachBundles(base: string, repo: string, subjectDigest: string, referrers: Artifact[]): Promise<void> {
  for (const r of referrers) await pushArtifact(base, repo, r);
  const index = referrersIndex(referrers);
  await pushManifestHttp(base, repo, subjectDigest.replace(':', '-'), index.bytes, index.mediaType);
}
