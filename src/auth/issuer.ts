/**
 * stowage's own Bearer tokens, for htpasswd auth when access rules let anonymous users in.
 *
 * Why: after a Basic challenge the Docker daemon sends nothing without a login ("no basic auth
 * credentials"), so with registry:2's challenge a Docker mirror (`registry-mirrors`) could never
 * pull anonymously. After a Bearer challenge every client fetches a token from the realm, with
 * its login if it has one and without otherwise; `docker login` still checks the password (the
 * token endpoint refuses a wrong one). So with anonymous rules stowage challenges with Bearer,
 * realm = its own /auth/token, and issues short-lived HS256 tokens naming the user (or nobody).
 * The tokens only say who; the access rules decide what, on every request. The key is the
 * metadata index's shared secret `token` (main.ts), so a token from one replica is good on every
 * replica and across restarts; without one it is random per process.
 */
import { randomBytes } from 'node:crypto';
import { jwtVerify, SignJWT } from 'jose';
import { LRUCache } from 'lru-cache';

export const TOKEN_PATH = '/auth/token';
const ISSUER = 'stowage';
const LIFETIME_S = 300;

export interface IssuedToken { token: string; expiresIn: number; issuedAt: string }

export class TokenIssuer {
  constructor(private readonly key: Uint8Array = randomBytes(32)) {}

  private readonly verified = new LRUCache<string, { user: string | undefined }>({ max: 10_000, ttl: 60_000 });

  async issue(user: string | undefined, now = Date.now()): Promise<IssuedToken> {
    const iat = Math.floor(now / 1000);
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setIssuer(ISSUER).setAudience(ISSUER).setSubject(user ?? '')
      .setIssuedAt(iat).setNotBefore(iat - 5).setExpirationTime(iat + LIFETIME_S)
      .sign(this.key);
    return { token, expiresIn: LIFETIME_S, issuedAt: new Date(iat * 1000).toISOString() };
  }

  /** The user a token of ours names ('' -> undefined), or null if it is not one of ours or expired. */
  async verify(token: string): Promise<{ user: string | undefined } | null> {
    const cached = this.verified.get(token);
    if (cached) return cached;
    try {
      const { payload } = await jwtVerify(token, this.key, { issuer: ISSUER, audience: ISSUER, algorithms: ['HS256'], requiredClaims: ['exp'] });
      const result = { user: typeof payload.sub === 'string' && payload.sub !== '' ? payload.sub : undefined };
      const ttl = payload.exp! * 1000 - Date.now();
      if (ttl > 0) this.verified.set(token, result, { ttl: Math.min(ttl, 60_000) });
      return result;
    } catch {
      return null;
    }
  }
}
