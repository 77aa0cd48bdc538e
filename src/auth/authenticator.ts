/**
 * Turns a request's Authorization header into a Principal, and builds the WWW-Authenticate
 * challenge for a refusal. One implementation per registry:2 scheme: Basic over an htpasswd file,
 * Bearer tokens from a token server.
 */
import type { HtpasswdFile } from './htpasswd.js';
import { TOKEN_PATH, type IssuedToken, type TokenIssuer } from './issuer.js';
import { ANONYMOUS, type Principal } from './principal.js';
import { formatScope, type Scope } from './scope.js';
import { InvalidTokenError } from './token-errors.js';
import type { TokenVerifier } from './token.js';

export type Authentication =
  | { ok: true; principal: Principal }
  /** Credentials were sent and did not verify. `user` is the claimed name, for the log. */
  | { ok: false; reason: string; user?: string };

export interface ChallengeContext {
  /** The scopes the refused request needs. */
  scopes: readonly Scope[];
  /** Set when a valid token lacks the scopes. */
  error?: 'insufficient_scope' | 'invalid_token';
  /** Where the client reached us (for auth.token.autoredirect). */
  origin: string;
}

export interface Authenticator {
  readonly scheme: 'basic' | 'token';
  authenticate(authorization: string | undefined): Promise<Authentication>;
  challenge(context: ChallengeContext): string;
  /** Set when stowage issues its own tokens (at TOKEN_PATH): a token for these credentials. */
  issueToken?(authorization: string | undefined): Promise<
    | { ok: true; token: IssuedToken; user: string | undefined }
    | { ok: false; reason: string; user?: string; challenge: string }>;
  close(): void;
}

/** A quoted-string parameter value (RFC 9110): backslash-escape `"` and `\`. */
const quote = (value: string) => `"${value.replace(/["\\]/g, '\\$&')}"`;

function schemeOf(header: string): [scheme: string, rest: string] {
  const space = header.indexOf(' ');
  return space < 0 ? [header.toLowerCase(), ''] : [header.slice(0, space).toLowerCase(), header.slice(space + 1).trim()];
}

/**
 * htpasswd users. Basic credentials are accepted on every request; the challenge is registry:2's
 * Basic one, or, when `issuer` is set (access rules let anonymous users in), a Bearer challenge
 * for stowage's own tokens (auth/issuer.ts says why).
 */
export class BasicAuthenticator implements Authenticator {
  readonly scheme = 'basic' as const;

  constructor(private readonly file: HtpasswdFile, private readonly issuer?: TokenIssuer) {
    if (issuer) this.issueToken = (authorization) => this.issue(issuer, authorization);
  }

  readonly issueToken?: Authenticator['issueToken'];

  async authenticate(authorization: string | undefined): Promise<Authentication> {
    if (authorization === undefined) return { ok: true, principal: ANONYMOUS };
    const [scheme, rest] = schemeOf(authorization);
    if (scheme === 'bearer' && this.issuer) {
      const token = await this.issuer.verify(rest);
      if (!token) return { ok: false, reason: 'invalid or expired token' };
      // A user removed from the file loses access at once, not when the token expires.
      if (token.user !== undefined && !this.file.has(token.user)) return { ok: false, reason: 'the token names an unknown user', user: token.user };
      return { ok: true, principal: { user: token.user, credentials: true } };
    }
    if (scheme !== 'basic') return { ok: false, reason: `${scheme.slice(0, 20)} credentials where Basic is expected` };
    return this.basic(rest);
  }

  challenge({ scopes, error, origin }: ChallengeContext): string {
    if (!this.issuer) return `Basic realm=${quote(this.file.realm)}`;
    let value = `Bearer realm=${quote(`${origin}${TOKEN_PATH}`)},service=${quote(this.file.realm)}`;
    if (scopes.length > 0) value += `,scope=${quote(scopes.map(formatScope).join(' '))}`;
    if (error) value += `,error=${quote(error)}`;
    return value;
  }

  close(): void {
    this.file.close();
  }

  private async basic(credentials: string): Promise<Authentication> {
    const decoded = Buffer.from(credentials, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return { ok: false, reason: 'malformed Basic credentials' };
    const user = decoded.slice(0, colon);
    const password = decoded.slice(colon + 1);
    // containers/image (podman, skopeo) answers a Basic challenge with ":" when it has no login.
    if (user === '' && password === '') return { ok: true, principal: ANONYMOUS };
    if (await this.file.verify(user, password)) return { ok: true, principal: { user, credentials: true } };
    return { ok: false, reason: 'wrong user name or password', user };
  }

  /** The token endpoint: Basic credentials (or none, for an anonymous token) in, a token out. */
  private async issue(issuer: TokenIssuer, authorization: string | undefined): ReturnType<NonNullable<Authenticator['issueToken']>> {
    const challenge = `Basic realm=${quote(this.file.realm)}`;
    if (authorization === undefined) return { ok: true, token: await issuer.issue(undefined), user: undefined };
    const [scheme, rest] = schemeOf(authorization);
    if (scheme !== 'basic') return { ok: false, reason: 'the token endpoint takes Basic credentials', challenge };
    const result = await this.basic(rest);
    if (!result.ok) return { ...result, challenge };
    return { ok: true, token: await issuer.issue(result.principal.user), user: result.principal.user };
  }
}

export class TokenAuthenticator implements Authenticator {
  readonly scheme = 'token' as const;

  constructor(private readonly verifier: TokenVerifier) {}

  async authenticate(authorization: string | undefined): Promise<Authentication> {
    if (authorization === undefined) return { ok: true, principal: ANONYMOUS };
    const [scheme, rest] = schemeOf(authorization);
    // Basic credentials belong to the token server, not to us: ask for a token (registry:2 does too).
    if (scheme !== 'bearer') return { ok: true, principal: ANONYMOUS };
    try {
      const token = await this.verifier.verify(rest);
      return { ok: true, principal: { user: token.subject, credentials: true, grants: token.access } };
    } catch (e) {
      if (e instanceof InvalidTokenError) return { ok: false, reason: e.message };
      throw e;
    }
  }

  challenge({ scopes, error, origin }: ChallengeContext): string {
    const o = this.verifier.options;
    const realm = o.autoredirect ? `${origin}${o.autoredirectpath ?? '/auth/token'}` : o.realm;
    let value = `Bearer realm=${quote(realm)},service=${quote(o.service)}`;
    if (scopes.length > 0) value += `,scope=${quote(scopes.map(formatScope).join(' '))}`;
    if (error) value += `,error=${quote(error)}`;
    return value;
  }

  close(): void {}
}
