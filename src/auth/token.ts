/**
 * registry:2's `auth.token`: Bearer JWTs issued by a token server, verified here with jose.
 * The signing key comes from the `x5c` chain (to `rootcertbundle`) or the `kid` (a key of the
 * `jwks` file, or the libtrust fingerprint of a bundle certificate). Checked: signature and
 * algorithm (`signingalgorithms`), `iss` = issuer, `aud` (string or array) contains service,
 * `exp` and `nbf` with leeway. The `access` claim is what the token grants.
 */
import { readFileSync } from 'node:fs';
import type { KeyObject, X509Certificate } from 'node:crypto';
import { createLocalJWKSet, errors as joseErrors, jwtVerify, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import { LRUCache } from 'lru-cache';
import type { AccessGrant } from './scope.js';
import { InvalidTokenError } from './token-errors.js';
import { keyFromX5c, libtrustKeyId, parseCertificateBundle, UntrustedKeyError } from './x5c.js';

export interface TokenOptions {
  realm: string;
  service: string;
  issuer: string;
  /** PEM file of certificates that token signing chains must lead to. */
  rootcertbundle?: string;
  /** JSON Web Key Set file; tokens name their key with `kid`. */
  jwks?: string;
  /** Challenge with a realm on this server's own host (`autoredirectpath`), as registry:2 does. */
  autoredirect?: boolean;
  autoredirectpath?: string;
  /** Accepted JWS algorithms (default: every asymmetric one jose knows). */
  signingalgorithms?: readonly string[];
  /** Clock skew allowed on exp/nbf, seconds (registry:2: 60). */
  leewaySeconds?: number;
}

export const DEFAULT_SIGNING_ALGORITHMS = ['ES256', 'ES384', 'ES512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'EdDSA'] as const;

export interface VerifiedToken {
  subject: string | undefined;
  access: AccessGrant[];
  /** ms since the epoch. */
  expiresAt: number;
}

export { InvalidTokenError };

/** How long a verified token is trusted without checking its signature again (never past exp). */
const VERIFIED_TTL_MS = 60_000;

export class TokenVerifier {
  private readonly roots: X509Certificate[];
  private readonly byKid = new Map<string, KeyObject>();
  private readonly jwks: ReturnType<typeof createLocalJWKSet> | undefined;
  private readonly algorithms: string[];
  private readonly leeway: number;
  private readonly verified = new LRUCache<string, VerifiedToken>({ max: 10_000 });

  constructor(readonly options: TokenOptions) {
    for (const key of ['realm', 'service', 'issuer'] as const) {
      if (!options[key]) throw new Error(`auth.token.${key} is required`);
    }
    if (!options.rootcertbundle && !options.jwks) throw new Error('auth.token: rootcertbundle or jwks is required');
    this.roots = options.rootcertbundle ? parseCertificateBundle(readText(options.rootcertbundle, 'rootcertbundle'), options.rootcertbundle) : [];
    for (const cert of this.roots) this.byKid.set(libtrustKeyId(cert.publicKey), cert.publicKey);
    if (options.jwks) {
      let set: JSONWebKeySet;
      try {
        set = JSON.parse(readText(options.jwks, 'jwks')) as JSONWebKeySet;
        this.jwks = createLocalJWKSet(set);
      } catch (e) {
        throw new Error(`auth.token.jwks: ${options.jwks} is not a JSON Web Key Set: ${(e as Error).message}`);
      }
    }
    this.algorithms = [...(options.signingalgorithms ?? DEFAULT_SIGNING_ALGORITHMS)];
    for (const alg of this.algorithms) {
      if (!(DEFAULT_SIGNING_ALGORITHMS as readonly string[]).includes(alg)) {
        throw new Error(`auth.token.signingalgorithms: "${alg}" is not one of ${DEFAULT_SIGNING_ALGORITHMS.join(', ')}`);
      }
    }
    this.leeway = options.leewaySeconds ?? 60;
  }

  async verify(token: string, now = Date.now()): Promise<VerifiedToken> {
    const cached = this.verified.get(token);
    if (cached && cached.expiresAt + this.leeway * 1000 > now) return cached;
    let payload;
    try {
      ({ payload } = await jwtVerify(token, this.keyResolver(now), {
        issuer: this.options.issuer,
        audience: this.options.service,
        algorithms: this.algorithms,
        clockTolerance: this.leeway,
        currentDate: new Date(now),
        requiredClaims: ['exp'],
      }));
    } catch (e) {
      if (e instanceof joseErrors.JWTExpired) throw new InvalidTokenError('the token has expired', true);
      if (e instanceof UntrustedKeyError) throw new InvalidTokenError(e.message);
      if (e instanceof joseErrors.JOSEError) throw new InvalidTokenError(e.message);
      throw new InvalidTokenError('the token cannot be read');
    }
    const result: VerifiedToken = {
      subject: typeof payload.sub === 'string' && payload.sub !== '' ? payload.sub : undefined,
      access: parseAccess(payload.access),
      expiresAt: payload.exp! * 1000,
    };
    this.verified.set(token, result, { ttl: Math.max(1, Math.min(VERIFIED_TTL_MS, result.expiresAt - now)) });
    return result;
  }

  private keyResolver(now: number): JWTVerifyGetKey {
    return async (header, token) => {
      if (header.x5c !== undefined) return keyFromX5c(header.x5c, this.roots, new Date(now));
      if (header.kid !== undefined) {
        const fromBundle = this.byKid.get(header.kid);
        if (fromBundle) return fromBundle;
        if (this.jwks) return this.jwks(header, token);
      }
      throw new UntrustedKeyError('the token names no trusted key (x5c or kid)');
    };
  }
}

function readText(path: string, key: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`auth.token.${key}: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

function parseAccess(value: unknown): AccessGrant[] {
  if (!Array.isArray(value)) return [];
  return value.flatMap((entry) => {
    const e = entry as Partial<AccessGrant> | null;
    if (!e || typeof e.type !== 'string' || typeof e.name !== 'string' || !Array.isArray(e.actions)) return [];
    return [{ type: e.type, name: e.name, actions: e.actions.filter((a): a is string => typeof a === 'string') }];
  });
}
