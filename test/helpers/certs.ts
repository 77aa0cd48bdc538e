/**
 * A test CA, server and client certificates made with the openssl CLI, as an operator would.
 * The server certificate names 127.0.0.1, ::1 and localhost (plus any extra host), so clients
 * verify it properly; nothing here turns verification off.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Ca { dir: string; name: string; cert: string; key: string }
export interface Issued { cert: string; key: string }

const ssl = (dir: string, ...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });

export function makeCa(name = 'stowage test CA', dir = mkdtempSync(join(tmpdir(), 'test-ca-'))): Ca {
  const base = name.replace(/\W+/g, '-');
  ssl(dir, 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${base}.key`,
    '-subj', `/CN=${name}`, '-days', '2', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    '-out', `${base}.pem`);
  return { dir, name, cert: join(dir, `${base}.pem`), key: join(dir, `${base}.key`) };
}

let serial = 0;

function issue(ca: Ca, file: string, subject: string, ext: string): Issued {
  const { dir } = ca;
  serial++;
  writeFileSync(join(dir, `${file}.ext`), ext);
  ssl(dir, 'req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${file}.key`, '-subj', `/CN=${subject}`, '-out', `${file}.csr`);
  ssl(dir, 'x509', '-req', '-in', `${file}.csr`, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', String(Date.now() * 100 + serial),
    '-days', '2', '-extfile', `${file}.ext`, '-out', `${file}.pem`);
  return { cert: join(dir, `${file}.pem`), key: join(dir, `${file}.key`) };
}

/** A server certificate for 127.0.0.1, ::1, localhost and `hosts`. */
export function issueServer(ca: Ca, file = 'server', hosts: string[] = []): Issued {
  const san = ['IP:127.0.0.1', 'IP:::1', 'DNS:localhost', ...hosts.map((h) => (/^[\d.]+$/.test(h) ? `IP:${h}` : `DNS:${h}`))].join(',');
  return issue(ca, file, 'stowage test server', `subjectAltName=${san}\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n`);
}

export function issueClient(ca: Ca, user: string, file = `client-${user}`): Issued {
  return issue(ca, file, user, 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n');
}

export const pem = (path: string): string => readFileSync(path, 'utf8');
