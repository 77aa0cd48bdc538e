/**
 * A token server for registry:2's `auth: token` (and stowage's): a test CA and an EC P-256 signing
 * certificate (made with the openssl CLI), ES256 JWTs with an x5c header, the claims registry:2
 * checks. Counts token requests per scope so tests can assert "one fetch per scope".
 *
 * Serving clients: `users` (name -> password) are checked on Basic credentials, and `grant`
 * decides which of the asked actions a user gets (default: all of them), so a test can give each
 * user the scopes it means to. `issue` mints a token directly; `untrusted` mints one signed under
 * a second CA that no registry trusts.
 */
import { execFileSync } from 'node:child_process';
import { createPrivateKey, randomUUID, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Access { type: string; name: string; actions: string[] }

export interface IssueOptions {
  access: Access[];
  sub?: string;
  /** Seconds from now; negative for an already expired token. */
  expiresIn?: number;
  aud?: string | string[];
  iss?: string;
}

export interface TokenServer {
  realm: string;
  service: string;
  issuer: string;
  caFile: string;
  /** Scopes asked for, one entry per token request. */
  requests: string[];
  /** Accounts that asked, one entry per token request ('' = anonymous). */
  accounts: string[];
  issue(options: IssueOptions): string;
  /** A token signed by a CA nobody trusts. */
  untrusted(options: IssueOptions): string;
  close(): Promise<void>;
}

export interface TokenServerOptions {
  /** One account (the upstream tests). */
  credentials?: { username: string; password: string };
  /** Several accounts; a request without credentials is anonymous. */
  users?: Record<string, string>;
  /** The actions `user` (undefined: anonymous) gets of those asked for in `scope`. */
  grant?: (user: string | undefined, scope: Access) => string[];
  expiresIn?: number;
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

interface Signer { key: KeyObject; certDer: Buffer }

function makeSigner(dir: string, name: string): { signer: Signer; caFile: string } {
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  ssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}-ca.key`);
  ssl('req', '-x509', '-new', '-key', `${name}-ca.key`, '-subj', `/CN=stowage test CA ${name}`, '-days', '2', '-out', `${name}-ca.pem`);
  ssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}-signer.key`);
  ssl('req', '-new', '-key', `${name}-signer.key`, '-subj', `/CN=stowage test token signer ${name}`, '-out', `${name}-signer.csr`);
  ssl('x509', '-req', '-in', `${name}-signer.csr`, '-CA', `${name}-ca.pem`, '-CAkey', `${name}-ca.key`, '-CAcreateserial', '-days', '2', '-out', `${name}-signer.pem`);
  return {
    signer: {
      key: createPrivateKey(readFileSync(join(dir, `${name}-signer.key`))),
      certDer: new X509Certificate(readFileSync(join(dir, `${name}-signer.pem`))).raw,
    },
    caFile: join(dir, `${name}-ca.pem`),
  };
}

export async function startTokenServer(options: TokenServerOptions = {}): Promise<TokenServer> {
  const dir = mkdtempSync(join(tmpdir(), 'token-ca-'));
  const trusted = makeSigner(dir, 'trusted');
  let stranger: Signer | undefined;
  const service = 'test-registry';
  const issuer = 'test-issuer';
  const expiresIn = options.expiresIn ?? 300;
  const requests: string[] = [];
  const accounts: string[] = [];
  const users: Record<string, string> = { ...options.users };
  if (options.credentials) users[options.credentials.username] = options.credentials.password;

  const mint = (signer: Signer, o: IssueOptions): string => {
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: 'JWT', alg: 'ES256', x5c: [signer.certDer.toString('base64')] };
    const claims = {
      iss: o.iss ?? issuer, sub: o.sub ?? '', aud: o.aud ?? service, exp: now + (o.expiresIn ?? expiresIn),
      nbf: now - 5, iat: now, jti: randomUUID(), access: o.access,
    };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    return `${input}.${b64url(sign('sha256', Buffer.from(input), { key: signer.key, dsaEncoding: 'ieee-p1363' }))}`;
  };

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname !== '/token') {
      res.writeHead(404).end();
      return;
    }
    let user: string | undefined;
    const auth = req.headers.authorization;
    if (auth?.startsWith('Basic ')) {
      const decoded = Buffer.from(auth.slice(6), 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      const name = decoded.slice(0, colon);
      if (colon < 0 || users[name] === undefined || users[name] !== decoded.slice(colon + 1)) {
        res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"bad credentials"}');
        return;
      }
      user = name;
    } else if (options.credentials) {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"credentials required"}');
      return;
    }
    const scopes = url.searchParams.getAll('scope').flatMap((s) => s.split(' ')).filter(Boolean);
    requests.push(scopes.join(' '));
    accounts.push(user ?? '');
    const access = scopes.flatMap((s) => {
      const m = /^([a-z]+):(.+):([a-z*,]+)$/.exec(s);
      if (!m) return [];
      const asked: Access = { type: m[1]!, name: m[2]!, actions: m[3]!.split(',') };
      const actions = options.grant ? options.grant(user, asked) : asked.actions;
      return actions.length > 0 ? [{ ...asked, actions }] : [];
    });
    const token = mint(trusted.signer, { access, ...(user ? { sub: user } : {}) });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ token, access_token: token, expires_in: expiresIn, issued_at: new Date().toISOString() }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    realm: `http://127.0.0.1:${port}/token`, service, issuer, caFile: trusted.caFile, requests, accounts,
    issue: (o) => mint(trusted.signer, o),
    untrusted: (o) => mint(stranger ??= makeSigner(dir, 'stranger').signer, o),
    close: () => new Promise((r) => server.close(() => r())),
  };
}
