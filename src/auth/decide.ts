/**
 * The authorization decision for one request, pure: who (Principal), what (the scopes the request
 * needs, and for each the repository names the access rules are checked on), under which scheme
 * and rules. The http layer works out the inputs and turns a refusal into 401 or 403.
 *
 *   no auth, no rules      everything allowed (stowage as it always was)
 *   htpasswd, no rules     any valid user may do anything (registry:2)
 *   token, no rules        the token's access claim decides (registry:2)
 *   rules                  the first matching rule decides; with a token, its claim must allow too
 *
 * A refusal is 401 (with a challenge) when credentials could help: no user was named, or a token
 * lacks the scope (registry:2 answers that with 401 insufficient_scope too). A user that the rules
 * refuse gets 403 DENIED.
 */
import type { AccessPolicy } from './access.js';
import type { Principal } from './principal.js';
import { grantsCover, type Action, type Scope } from './scope.js';

export interface Need {
  scope: Scope;
  /** The repository names the access rules are checked on (cache repository names for cached content). */
  ruleNames: readonly string[];
}

export type Verdict =
  | { allowed: true }
  | { allowed: false; status: 401; error?: 'insufficient_scope' }
  | { allowed: false; status: 403 };

export interface DecisionContext {
  scheme: 'basic' | 'token' | undefined;
  policy: AccessPolicy | undefined;
}

const ALLOWED: Verdict = { allowed: true };

/** `loginRequired`: the endpoint needs valid credentials whatever the scopes (GET /v2/). */
export function decide(principal: Principal, needs: readonly Need[], ctx: DecisionContext, loginRequired = false): Verdict {
  const { scheme, policy } = ctx;
  // A user name, not just a valid token: stowage's own anonymous tokens and token servers' tokens
  // without a subject verify, but name nobody.
  const identified = principal.credentials && principal.user !== undefined;
  if (scheme !== undefined && !principal.credentials && (loginRequired || scheme === 'token')) return { allowed: false, status: 401 };
  if (scheme === 'basic' && !policy && !identified) return { allowed: false, status: 401 };
  for (const need of needs) {
    if (scheme === 'token' && !grantsCover(principal.grants ?? [], need.scope)) {
      return { allowed: false, status: 401, error: 'insufficient_scope' };
    }
    if (policy && need.scope.type === 'repository' && !rulesAllow(policy, principal, need.ruleNames, need.scope.actions)) {
      return identified || scheme === undefined ? { allowed: false, status: 403 } : { allowed: false, status: 401 };
    }
  }
  return ALLOWED;
}

export function rulesAllow(policy: AccessPolicy, principal: Principal, names: readonly string[], actions: readonly Action[]): boolean {
  return names.every((name) => actions.every((action) => policy.allows(principal, name, action)));
}
