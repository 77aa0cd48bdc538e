/**
 * What a request needs, in registry:2's terms: a scope is `repository:<name>:<actions>` (or
 * `registry:catalog:*`), the same string a Bearer challenge carries and a token's `access` claim
 * grants. The http layer works out the scopes of each request; everything in auth/ decides on them.
 */

export type Action = 'pull' | 'push' | 'delete';
export const ACTIONS: readonly Action[] = ['pull', 'push', 'delete'];

export type Scope =
  | { type: 'repository'; name: string; actions: Action[] }
  | { type: 'registry'; name: 'catalog'; actions: ['*'] };

export const CATALOG_SCOPE: Scope = { type: 'registry', name: 'catalog', actions: ['*'] };

export function repositoryScope(name: string, ...actions: Action[]): Scope {
  return { type: 'repository', name, actions };
}

export function formatScope(scope: Scope): string {
  return `${scope.type}:${scope.name}:${scope.actions.join(',')}`;
}

/** One entry of a token's `access` claim, as registry:2 reads it. */
export interface AccessGrant {
  type: string;
  name: string;
  actions: string[];
}

/** True if `grants` (a token's access claim) cover every action of `scope`; `*` covers all. */
export function grantsCover(grants: readonly AccessGrant[], scope: Scope): boolean {
  return scope.actions.every((action) => grants.some((g) =>
    g.type === scope.type && g.name === scope.name && (g.actions.includes(action) || g.actions.includes('*'))));
}
