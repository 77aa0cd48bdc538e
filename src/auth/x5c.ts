/**
 * Trust for token signing keys, as registry:2 decides it: a JWT's `x5c` header carries the signing
 * certificate and its chain, which must lead to a certificate of `rootcertbundle`; or its `kid`
 * names a key. registry:2's kid for a bundle certificate is the libtrust fingerprint of its public
 * key (below), which works only when the signing certificate itself is in the bundle.
 */
import { createHash, X509Certificate, type KeyObject } from 'node:crypto';

export class UntrustedKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UntrustedKeyError';
  }
}

/** Certificates from a PEM bundle (one or more BEGIN CERTIFICATE blocks). */
export function parseCertificateBundle(pem: string, file: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new Error(`${file}: no certificate in the bundle`);
  return blocks.map((b, i) => {
    try {
      return new X509Certificate(b);
    } catch (e) {
      throw new Error(`${file}: certificate ${i + 1} cannot be read: ${(e as Error).message}`);
    }
  });
}

/** The signing key of an `x5c` chain that leads to one of `roots`; throws UntrustedKeyError. */
export function keyFromX5c(x5c: unknown, roots: readonly X509Certificate[], now = new Date()): KeyObject {
  if (!Array.isArray(x5c) || x5c.length === 0 || x5c.length > 10 || !x5c.every((c) => typeof c === 'string')) {
    throw new UntrustedKeyError('x5c is not a list of certificates');
  }
  let chain: X509Certificate[];
  try {
    chain = (x5c as string[]).map((c) => new X509Certificate(Buffer.from(c, 'base64')));
  } catch {
    throw new UntrustedKeyError('x5c holds a certificate that cannot be read');
  }
  for (let i = 0; i < chain.length; i++) {
    const cert = chain[i]!;
    if (!withinValidity(cert, now)) throw new UntrustedKeyError(`certificate "${cert.subject}" is outside its validity period`);
    if (roots.some((r) => r.fingerprint256 === cert.fingerprint256)) return chain[0]!.publicKey;
    const next = chain[i + 1];
    if (next) {
      if (!signedBy(cert, next)) throw new UntrustedKeyError('the x5c chain is broken');
      continue;
    }
    if (roots.some((r) => withinValidity(r, now) && signedBy(cert, r))) return chain[0]!.publicKey;
  }
  throw new UntrustedKeyError('the x5c chain does not lead to a certificate of rootcertbundle');
}

function signedBy(cert: X509Certificate, issuer: X509Certificate): boolean {
  return issuer.ca && cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
}

function withinValidity(cert: X509Certificate, now: Date): boolean {
  return now >= new Date(cert.validFrom) && now <= new Date(cert.validTo);
}

/** libtrust's key ID: the first 240 bits of sha256(SPKI DER), base32, in 12 groups of 4. */
export function libtrustKeyId(key: KeyObject): string {
  const digest = createHash('sha256').update(key.export({ type: 'spki', format: 'der' })).digest().subarray(0, 30);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const byte of digest) bits += byte.toString(2).padStart(8, '0');
  let encoded = '';
  for (let i = 0; i < bits.length; i += 5) encoded += alphabet[parseInt(bits.slice(i, i + 5), 2)];
  return encoded.match(/.{4}/g)!.join(':');
}
