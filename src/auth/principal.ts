/**
 * Who is asking. A request without credentials is anonymous; credentials that verify give a
 * principal with `credentials: true` and, usually, a user name (htpasswd user, or a token's `sub`;
 * a token server may issue tokens with an empty `sub`). A token also carries the access it grants,
 * which access rules can only narrow.
 */
import type { AccessGrant } from './scope.js';

export interface Principal {
  /** The user name; undefined for anonymous requests and tokens without a subject. */
  readonly user: string | undefined;
  /** True when the request carried credentials that verified (a token may name no user). */
  readonly credentials: boolean;
  /** Token auth only: the token's `access` claim. */
  readonly grants?: readonly AccessGrant[];
}

export const ANONYMOUS: Principal = Object.freeze({ user: undefined, credentials: false });
