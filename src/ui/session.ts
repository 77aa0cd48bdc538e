/**
 * Sign-in on the page: the credentials a user typed (htpasswd user and password, or a token)
 * are kept in a cookie, encrypted and authenticated with AES-256-GCM under a key every replica
 * shares (BrowseIndex.sharedSecret), and checked again by the authenticator on every request,
 * so a removed user or a changed password takes effect at once (within the htpasswd cache's
 * minute), not when the cookie expires. The cookie is HttpOnly, SameSite=Strict, Secure on TLS.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

export const SESSION_COOKIE = 'stowage_session';

export class SessionCodec {
  constructor(private readonly key: Buffer, private readonly lifetimeMs: number) {}

  /** Derives the AES key from the shared secret's text. */
  static fromSecret(secret: string, lifetimeMs: number): SessionCodec {
    return new SessionCodec(createHash('sha256').update(`stowage-ui-session:${secret}`).digest(), lifetimeMs);
  }

  seal(authorization: string, now = Date.now()): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    const body = Buffer.concat([cipher.update(JSON.stringify({ a: authorization, e: now + this.lifetimeMs }), 'utf8'), cipher.final()]);
    return Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url');
  }

  /** The Authorization header value a cookie carries; undefined when it is forged, damaged or expired. */
  open(cookie: string, now = Date.now()): string | undefined {
    try {
      const raw = Buffer.from(cookie, 'base64url');
      if (raw.length < 29) return undefined;
      const decipher = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, 12));
      decipher.setAuthTag(raw.subarray(12, 28));
      const text = Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
      const v = JSON.parse(text) as { a?: unknown; e?: unknown };
      return typeof v.a === 'string' && typeof v.e === 'number' && v.e > now ? v.a : undefined;
    } catch {
      return undefined;
    }
  }

  get maxAgeSeconds(): number { return Math.floor(this.lifetimeMs / 1000); }
}

/** The value of one cookie in a Cookie header. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
