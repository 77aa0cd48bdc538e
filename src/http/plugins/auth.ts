/**
 * Authentication and authorization of /v2 requests. The dispatcher (v2.ts) calls the gate with
 * the parsed endpoint before the handler runs: the gate works out the scopes the request needs
 * (`repository:<name>:pull,push`, `registry:catalog:*`), authenticates the Authorization header,
 * asks auth/decide.ts, and refuses with 401 + challenge or 403 DENIED. registerTokenEndpoint
 * serves GET /auth/token when stowage issues its own tokens (auth/issuer.ts).
 *
 * Access rules are checked on the repository whose content is served: for cached content that is
 * its cache repository (`docker.io/library/alpine`) whichever route the client used (prefix, ?ns=,
 * default upstream, short name), so one rule covers every route. A pushed repository is its own
 * name (the default upstream never serves it: "Local stays local").
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { AccessPolicy } from '../../auth/access.js';
import type { Authenticator } from '../../auth/authenticator.js';
import { TOKEN_PATH } from '../../auth/issuer.js';
import { decide, rulesAllow, type Need } from '../../auth/decide.js';
import { ANONYMOUS, type Principal } from '../../auth/principal.js';
import { CATALOG_SCOPE, grantsCover, repositoryScope, type Action, type Scope } from '../../auth/scope.js';
import { RegistryError } from '../../errors.js';
import type { Metrics } from '../../metrics.js';
import type { RepoName } from '../../oci/reference.js';
import type { PullThrough } from '../../proxy/pull-through.js';
import type { LocalRegistry } from '../../registry/registry.js';
import { queryParam, type Gate } from '../context.js';
import type { V2Endpoint } from '../v2-path.js';

export interface AuthDeps {
  authenticator?: Authenticator;
  policy?: AccessPolicy;
  registry: LocalRegistry;
  proxy?: PullThrough;
  metrics?: Metrics;
  log: Logger;
}

/** What a handler may ask after the gate let a request through. */
export interface RequestAccess {
  principal: Principal;
  /** May the caller pull `name` as it is stored (catalog entries, a mount's `from`)? */
  mayPull(name: string): boolean;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the auth gate when auth or access rules are configured. */
    access?: RequestAccess;
  }
}

/** The actions an endpoint and method need on the endpoint's repository. */
function actionsFor(endpoint: V2Endpoint, method: string): Action[] {
  switch (endpoint.kind) {
    case 'manifest':
      return method === 'PUT' ? ['pull', 'push'] : method === 'DELETE' ? ['delete'] : ['pull'];
    case 'blob':
      return method === 'DELETE' ? ['delete'] : ['pull'];
    case 'uploads':
    case 'upload':
      return ['pull', 'push'];
    default:
      return ['pull'];
  }
}

export function createAuthGate(deps: AuthDeps): Gate | undefined {
  const { authenticator, policy, registry, proxy, metrics, log } = deps;
  if (!authenticator && !policy) return undefined;
  const ctx = { scheme: authenticator?.scheme, policy };

  /**
   * Names the rules check for a read of `name` (see the header comment). proxy.route already
   * keeps pushed repositories off the default upstream; on the prefix and ?ns= routes a name
   * that holds pushed content is asked locally first, so both names must allow the read.
   */
  const readNames = async (name: RepoName, ns: string | undefined): Promise<string[]> => {
    const route = await proxy?.route(name, ns);
    if (!route || route.cacheRepo === name) return [name];
    return (await registry.local.has(name)) ? [name, route.cacheRepo] : [route.cacheRepo];
  };

  const mayPullAs = (principal: Principal) => (name: string): boolean => {
    if (ctx.scheme === 'token' && !grantsCover(principal.grants ?? [], repositoryScope(name, 'pull'))) return false;
    return !policy || rulesAllow(policy, principal, [name], ['pull']);
  };

  return async (req, _reply, endpoint) => {
    const needs: Need[] = [];
    if (endpoint.kind === 'catalog') {
      needs.push({ scope: CATALOG_SCOPE, ruleNames: [] });
    } else if (endpoint.kind !== 'base') {
      const actions = actionsFor(endpoint, req.method);
      const writes = actions.includes('push') || actions.includes('delete');
      // Only rules look at names; without them (registry:2's semantics) no routing is needed.
      const ruleNames = !policy ? [] : writes ? [endpoint.name] : await readNames(endpoint.name, queryParam(req, 'ns'));
      needs.push({ scope: repositoryScope(endpoint.name, ...actions), ruleNames });
    }
    /** What a 401 challenge asks for: the request's scopes, and pull on a mount's source. */
    const challenge = (error?: 'insufficient_scope' | 'invalid_token') => {
      const scopes: Scope[] = needs.map((n) => n.scope);
      const from = endpoint.kind === 'uploads' ? queryParam(req, 'from') : undefined;
      // A mount's source is optional: without pull on it the upload simply starts (202).
      if (from !== undefined && queryParam(req, 'mount') !== undefined) scopes.push(repositoryScope(from, 'pull'));
      return refusal(authenticator!.challenge({ scopes, origin: originOf(req), ...(error ? { error } : {}) }));
    };

    let principal: Principal = ANONYMOUS;
    if (authenticator) {
      const authn = await authenticator.authenticate(req.headers.authorization);
      if (!authn.ok) {
        metrics?.authFailures.inc({ scheme: authenticator.scheme });
        req.log.warn({ user: authn.user?.slice(0, 100), address: req.ip, reason: authn.reason }, 'authentication failed');
        throw challenge(authenticator.scheme === 'token' ? 'invalid_token' : undefined);
      }
      principal = authn.principal;
    }
    if (principal.user !== undefined) req.facts.user = principal.user;
    const verdict = decide(principal, needs, ctx, endpoint.kind === 'base');
    if (!verdict.allowed) {
      if (verdict.status === 403 || !authenticator) {
        log.debug({ user: principal.user, needs: needs.map((n) => n.ruleNames) }, 'access denied');
        throw new RegistryError('DENIED', 'requested access to the resource is denied', { status: 403 });
      }
      throw challenge(verdict.error);
    }
    req.access = { principal, mayPull: mayPullAs(principal) };
  };
}

function refusal(challenge: string): RegistryError {
  return new RegistryError('UNAUTHORIZED', 'authentication required', { status: 401, headers: { 'WWW-Authenticate': challenge } });
}

/** scheme://host the client used, for auth.token.autoredirect. */
export function originOf(req: FastifyRequest): string {
  const proto = (req.headers['x-forwarded-proto'] as string | undefined)?.split(',')[0]?.trim() || req.protocol;
  return `${proto}://${req.headers.host ?? 'localhost'}`;
}

/**
 * GET /auth/token when stowage issues its own tokens (htpasswd with anonymous access rules):
 * Basic credentials or none in, `{token, access_token, expires_in, issued_at}` out, as token
 * servers answer. A wrong password is refused here, so `docker login` fails as it should.
 */
export function registerTokenEndpoint(app: FastifyInstance, authenticator: Authenticator, metrics?: Metrics): void {
  const issue = authenticator.issueToken;
  if (!issue) return;
  app.get(TOKEN_PATH, async (req, reply) => {
    const result = await issue.call(authenticator, req.headers.authorization);
    if (!result.ok) {
      metrics?.authFailures.inc({ scheme: authenticator.scheme });
      req.log.warn({ user: result.user?.slice(0, 100), address: req.ip, reason: result.reason }, 'authentication failed');
      throw new RegistryError('UNAUTHORIZED', 'authentication required', { headers: { 'WWW-Authenticate': result.challenge } });
    }
    if (result.user !== undefined) req.facts.user = result.user;
    const { token, expiresIn, issuedAt } = result.token;
    return reply.header('Cache-Control', 'no-store').type('application/json')
      .send(JSON.stringify({ token, access_token: token, expires_in: expiresIn, issued_at: issuedAt }));
  });
}
