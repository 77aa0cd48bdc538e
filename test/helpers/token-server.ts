/**
 * A token server for registry:2's `auth: token`: a test CA and an EC P-256 signing certificate
 * (made with the openssl CLI), ES256 JWTs with an x5c header, the claims registry:2 checks.
 * Counts token requests per scope so tests can assert "one fetch per scope".
 */
import { execFileSync } from 'node:child_process';
import { createPrivateKey, randomUUID, sign, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TokenServer {
  realm: string;
  service: string;
  issuer: string;
  caFile: string;
  /** Scopes asked for, one entry per token request. */
  requests: string[];
  close(): Promise<void>;
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

export async function startTokenServer(options: { credentials?: { username: string; password: string }; expiresIn?: number } = {}): Promise<TokenServer> {
  const dir = mkdtempSync(join(tmpdir(), 'token-ca-'));
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  ssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca.key');
  ssl('req', '-x509', '-new', '-key', 'ca.key', '-subj', '/CN=stowage test CA', '-days', '2', '-out', 'ca.pem');
  ssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'signer.key');
  ssl('req', '-new', '-key', 'signer.key', '-subj', '/CN=stowage test token signer', '-out', 'signer.csr');
  ssl('x509', '-req', '-in', 'signer.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-out', 'signer.pem');
  const key = createPrivateKey(readFileSync(join(dir, 'signer.key')));
  const certDer = new X509Certificate(readFileSync(join(dir, 'signer.pem'))).raw;
  const service = 'test-registry';
  const issuer = 'test-issuer';
  const expiresIn = options.expiresIn ?? 300;
  const requests: string[] = [];

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname !== '/token') {
      res.writeHead(404).end();
      return;
    }
    if (options.credentials) {
      const expected = `Basic ${Buffer.from(`${options.credentials.username}:${options.credentials.password}`).toString('base64')}`;
      if (req.headers.authorization !== expected) {
        res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"bad credentials"}');
        return;
      }
    }
    const scopes = url.searchParams.getAll('scope');
    requests.push(scopes.join(' '));
    const access = scopes.flatMap((s) => {
      const m = /^([a-z]+):(.+):([a-z*,]+)$/.exec(s);
      return m ? [{ type: m[1], name: m[2], actions: m[3]!.split(',') }] : [];
    });
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: 'JWT', alg: 'ES256', x5c: [certDer.toString('base64')] };
    const claims = { iss: issuer, sub: '', aud: service, exp: now + expiresIn, nbf: now - 5, iat: now, jti: randomUUID(), access };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const signature = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
    const token = `${input}.${b64url(signature)}`;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ token, access_token: token, expires_in: expiresIn, issued_at: new Date().toISOString() }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    realm: `http://127.0.0.1:${port}/token`, service, issuer, caFile: join(dir, 'ca.pem'), requests,
    close: () => new Promise((r) => server.close(() => r())),
  };
}
