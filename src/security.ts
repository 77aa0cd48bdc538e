/**
 * Opens what the config asks for security at start-up (main.ts): the authenticator (auth.htpasswd
 * or auth.token), the access rules, and the TLS server options. Every file is read here, once, so
 * a missing or broken one stops start-up with one line naming the key; later changes to the
 * htpasswd file and the certificates are picked up by their watchers, which start before the
 * files are read. The htpasswd and token modules (bcryptjs, jose) are loaded only when the config
 * asks for them.
 */
import type { Server as TlsServer } from 'node:tls';
import type { ServerOptions } from 'node:https';
import type { Logger } from 'pino';
import { AccessPolicy } from './auth/access.js';
import { BasicAuthenticator, TokenAuthenticator, type Authenticator } from './auth/authenticator.js';
import { TokenIssuer } from './auth/issuer.js';
import type { Config } from './config/schema.js';
import { tlsServerOptions, watchCertificates } from './http/tls.js';

export interface Security {
  authenticator?: Authenticator;
  policy?: AccessPolicy;
  https?: ServerOptions;
  /** For the start-up log line. */
  summary: { tls: boolean; mutualTls: boolean; auth: 'htpasswd' | 'htpasswd+tokens' | 'token' | 'none'; accessRules: number | 'none' };
  /** Starts reloading the certificate into the listening server when its files change. */
  watch(server: TlsServer): void;
  close(): void;
}

/** `tokenKey`: the key stowage's own tokens are signed with (shared by replicas); random if absent. */
export async function openSecurity(config: Config, log: Logger, tokenKey?: Uint8Array): Promise<Security> {
  const { auth, access, groups } = config;
  const tls = config.http.tls;
  if (auth?.htpasswd && auth.token) throw new Error('auth: give htpasswd or token, not both');
  // Watching starts before the files are read, so that an edit right after the read is seen.
  const certificates = tls ? watchCertificates(tls, log.child({ component: 'tls' })) : undefined;
  let https: ServerOptions | undefined;
  let authenticator: Authenticator | undefined;
  let policy: AccessPolicy | undefined;
  try {
    https = tls ? tlsServerOptions(tls) : undefined;
    authenticator = await openAuthenticator(config, log, tokenKey);
    policy = access ? new AccessPolicy({ rules: access, groups }) : undefined;
  } catch (e) {
    certificates?.close();
    authenticator?.close();
    throw e;
  }
  if (!policy && Object.keys(groups).length > 0) log.warn('groups are defined but there are no access rules to use them');
  return {
    ...(authenticator ? { authenticator } : {}),
    ...(policy ? { policy } : {}),
    ...(https ? { https } : {}),
    summary: {
      tls: tls !== undefined,
      mutualTls: (tls?.clientcas.length ?? 0) > 0,
      auth: auth?.htpasswd ? (authenticator?.issueToken ? 'htpasswd+tokens' : 'htpasswd') : auth?.token ? 'token' : 'none',
      accessRules: access ? access.length : 'none',
    },
    watch(server) {
      certificates?.serve(server);
    },
    close() {
      certificates?.close();
      authenticator?.close();
    },
  };
}

async function openAuthenticator(config: Config, log: Logger, tokenKey: Uint8Array | undefined): Promise<Authenticator | undefined> {
  const { auth, access } = config;
  // Rules that let anonymous users in need a challenge Docker can answer without a login.
  const anonymousRules = (access ?? []).some((r) => [r.pull, r.push, r.delete].some((who) => who?.includes('anonymous')));
  if (auth?.htpasswd) {
    const { HtpasswdFile } = await import('./auth/htpasswd.js');
    const file = new HtpasswdFile(auth.htpasswd, log.child({ component: 'htpasswd' }));
    return new BasicAuthenticator(file, anonymousRules ? new TokenIssuer(tokenKey) : undefined);
  }
  if (auth?.token) {
    const { TokenVerifier } = await import('./auth/token.js');
    const { signingalgorithms, ...token } = auth.token;
    return new TokenAuthenticator(new TokenVerifier({ ...token, ...(signingalgorithms.length > 0 ? { signingalgorithms } : {}) }));
  }
  return undefined;
}
