/**
 * stowage's own Bearer tokens, for htpasswd auth when access rules let anonymous users in.
 *
 * Why: after a Basic challenge the Docker daemon sends nothing without a login ("no basic auth
 * credentials"), so with registry:2's challenge a Docker mirror (`registry-mirrors`) could never
 * pull anonymously. After a Bearer challenge every client fetches a token from the realm, with
 * its login if it has one and without otherwise; `docker login` still checks the password (the
 * token endpoint refuses a wrong one). So with anonymous rules stowage challenges with Bearer,
 * realm = its own /auth/token, and issues short-lived HS256 tokens naming the user (or nobody).
 * The tokens only say who; the access rules decide what, on every request.
 *
 * The signing key is given to the constructor: main.ts passes the metadata index's shared secret
 * `token`, so a token from one replica is good on every replica and across restarts. Without one
 * it is random per process.
 *
 * Every client sends its token with every request, so a verified token is remembered (by its
 * text) until it expires: the next request costs a map lookup, not a signature check. What the
 * token says is all that is cached: whether its user still exists is asked on every request
 * (auth/authenticator.ts), so removing a user from the htpasswd file takes effect at once.
 */
import { randomBytes } from 'node:crypto';
import { LRUCache } from 'lru-cache';

export const TOKEN_PATH = '/auth/token';
const ISSUER = 'stowage';
const DEFAULT_LIFETIME_S = 300;
/** jose is loaded when the first token is issued or checked: most configs never need it. */
const jose = () => import('jose');

export interface IssuedToken { token: string; expiresIn: number; issuedAt: string }

export interface TokenIssuerOptions {
  /** How long a token is valid, seconds (default 300). */
  lifetimeSeconds?: number;
  /** The clock, ms since the epoch (tests move it). */
  now?: () => number;
}

interface Verified { answer: { user: string | undefined }; expiresAt: number }

export class TokenIssuer {
  private readonly key: Uint8Array;
  private readonly lifetime: number;
  private readonly now: () => number;
  private readonly verified = new LRUCache<string, Verified>({ max: 10_000 });

  /** `key`: the HS256 key, at least 32 bytes (replicas that share it accept each other's tokens). */
  constructor(key: Uint8Array = randomBytes(32), options: TokenIssuerOptions = {}) {
    if (key.length < 32) throw new Error('the token signing key must be at least 32 bytes');
    this.key = key;
    this.lifetime = options.lifetimeSeconds ?? DEFAULT_LIFETIME_S;
    this.now = options.now ?? Date.now;
  }

  async issue(user: string | undefined, now = this.now()): Promise<IssuedToken> {
    const iat = Math.floor(now / 1000);
    const { SignJWT } = await jose();
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setIssuer(ISSUER).setAudience(ISSUER).setSubject(user ?? '')
      .setIssuedAt(iat).setNotBefore(iat - 5).setExpirationTime(iat + this.lifetime)
      .sign(this.key);
    return { token, expiresIn: this.lifetime, issuedAt: new Date(iat * 1000).toISOString() };
  }

  /** The user a token of ours names ('' -> undefined), or null if it is not one of ours or expired. */
  async verify(token: string): Promise<{ user: string | undefined } | null> {
    const now = this.now();
    const cached = this.verified.get(token);
    if (cached) {
      if (cached.expiresAt > now) return cached.answer;
      this.verified.delete(token);
      return null;
    }
    try {
      const { payload } = await (await jose()).jwtVerify(token, this.key, {
        issuer: ISSUER, audience: ISSUER, algorithms: ['HS256'], requiredClaims: ['exp'], currentDate: new Date(now),
      });
      const answer = { user: typeof payload.sub === 'string' && payload.sub !== '' ? payload.sub : undefined };
      this.verified.set(token, { answer, expiresAt: payload.exp! * 1000 });
      return answer;
    } catch {
      return null;
    }
  }
}
