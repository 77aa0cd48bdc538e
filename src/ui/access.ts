/**
 * Who is looking at the page, and what they may see: the same authenticator and access rules as
 * /v2 (auth/decide.ts), asked per repository name as a pull (and as a delete for the delete
 * button). Credentials come from the Authorization header (scripts) or the sign-in cookie (the
 * browser). Cached content is checked under its cache repository name, which is the name the
 * page lists, so one rule covers the page and every pull route alike.
 */
import type { FastifyRequest } from 'fastify';
import type { AccessPolicy } from '../auth/access.js';
import type { Authenticator } from '../auth/authenticator.js';
import { decide } from '../auth/decide.js';
import { ANONYMOUS, type Principal } from '../auth/principal.js';
import { repositoryScope, type Action } from '../auth/scope.js';
import { RegistryError } from '../errors.js';
import { readCookie, SESSION_COOKIE, type SessionCodec } from './session.js';

export interface Viewer {
  principal: Principal;
  /** Signed in through the cookie (the page offers to sign out). */
  viaSession: boolean;
  /** Names must be checked one by one: access rules or token grants apply. */
  restricted: boolean;
  mayPull(name: string): boolean;
  mayDelete(name: string): boolean;
}

export interface AccessDeps {
  authenticator?: Authenticator;
  policy?: AccessPolicy;
  deleteEnabled: boolean;
  session(): Promise<SessionCodec>;
}

export class UiAccess {
  constructor(private readonly deps: AccessDeps) {}

  get scheme(): 'basic' | 'token' | undefined { return this.deps.authenticator?.scheme; }

  /**
   * The viewer of a request. Bad credentials in an Authorization header are refused (401), as on
   * /v2; a cookie that no longer verifies (password changed, user removed) is just ignored.
   */
  async viewer(req: FastifyRequest): Promise<Viewer> {
    const { authenticator } = this.deps;
    let principal: Principal = ANONYMOUS;
    let viaSession = false;
    if (authenticator) {
      const header = req.headers.authorization;
      if (header !== undefined) {
        const authn = await authenticator.authenticate(header);
        if (!authn.ok) {
          req.log.warn({ user: authn.user?.slice(0, 100), address: req.ip, reason: authn.reason }, 'authentication failed');
          throw new RegistryError('UNAUTHORIZED', 'authentication required', { status: 401 });
        }
        principal = authn.principal;
      } else {
        const cookie = readCookie(req.headers.cookie, SESSION_COOKIE);
        const sealed = cookie && (await this.deps.session()).open(cookie);
        const authn = sealed ? await authenticator.authenticate(sealed) : undefined;
        if (authn?.ok && authn.principal.credentials) {
          principal = authn.principal;
          viaSession = true;
        }
      }
    }
    if (principal.user !== undefined) req.facts.user = principal.user;
    return this.viewerFor(principal, viaSession);
  }

  viewerFor(principal: Principal, viaSession = false): Viewer {
    const { authenticator, policy, deleteEnabled } = this.deps;
    const ctx = { scheme: authenticator?.scheme, policy };
    const may = (name: string, action: Action) =>
      decide(principal, [{ scope: repositoryScope(name, action), ruleNames: [name] }], ctx).allowed;
    return {
      principal,
      viaSession,
      restricted: authenticator !== undefined || policy !== undefined,
      mayPull: (name) => may(name, 'pull'),
      mayDelete: (name) => deleteEnabled && may(name, 'delete'),
    };
  }

  /** Checks credentials typed into the sign-in form; the Authorization value to keep, or undefined. */
  async signIn(form: { username?: string; password?: string; token?: string }): Promise<{ authorization: string; user: string | undefined } | undefined> {
    const { authenticator } = this.deps;
    if (!authenticator) return undefined;
    const authorization = authenticator.scheme === 'token'
      ? (form.token ? `Bearer ${form.token.trim()}` : undefined)
      : (form.username ? `Basic ${Buffer.from(`${form.username}:${form.password ?? ''}`).toString('base64')}` : undefined);
    if (!authorization) return undefined;
    const authn = await authenticator.authenticate(authorization);
    return authn.ok && authn.principal.credentials ? { authorization, user: authn.principal.user } : undefined;
  }
}
