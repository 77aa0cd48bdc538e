/**
 * Native TLS in-process over real sockets: the certificate verifies against a CA made with openssl,
 * mutual TLS refuses a client without a certificate in the handshake, minimumtls and ciphersuites
 * take effect, and a rotated certificate is served to new connections without a restart.
 */
import { copyFileSync } from 'node:fs';
import { connect, type PeerCertificate } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { pino } from 'pino';
import t from 'tap';
import { Agent, request } from 'undici';
import { buildApp } from '../../src/app.js';
import { SqliteIndex as MetadataIndex } from '../../src/metadata/sqlite.js';
import { LocalRegistry } from '../../src/registry/registry.js';
import { MemoryDriver } from '../../src/storage/drivers/memory.js';
import { tlsServerOptions, watchCertificates, type TlsOptions } from '../../src/http/tls.js';
import { testConfig } from '../helpers/app.js';
import { issueClient, issueServer, makeCa, pem } from '../helpers/certs.js';
import { missingTools, sleep } from '../helpers/tools.js';

const skip = missingTools('openssl');

/** As security.ts starts it: the watch first, then the read; `afterRead` runs between read and listen. */
async function serveTls(tls: TlsOptions, logLines: string[] = [], afterRead?: () => void) {
  const config = testConfig();
  const log = pino({ level: 'info' }, { write: (l: string) => { logLines.push(l); } });
  const metadata = new MetadataIndex(':memory:');
  const watch = watchCertificates(tls, log);
  const https = tlsServerOptions(tls);
  afterRead?.();
  const app = buildApp({ config, log, registry: new LocalRegistry(new MemoryDriver(), metadata, log), https });
  const address = await app.listen({ host: '127.0.0.1', port: 0 });
  watch.serve(app.server as never);
  return { app, url: address, port: Number(new URL(address).port), close: async () => { watch.close(); await app.close(); metadata.close(); } };
}

/** The certificate a fresh connection is shown, and whether the handshake succeeded. */
function handshake(port: number, options: { ca: string; cert?: string; key?: string; maxVersion?: 'TLSv1.2' | 'TLSv1.3'; ciphers?: string }): Promise<{ ok: boolean; peer?: PeerCertificate; error?: string; protocol?: string | null; cipher?: string }> {
  return new Promise((resolve) => {
    const socket = connect({
      host: '127.0.0.1', port, servername: 'localhost', ca: pem(options.ca),
      ...(options.cert ? { cert: pem(options.cert), key: pem(options.key!) } : {}),
      ...(options.maxVersion ? { maxVersion: options.maxVersion } : {}),
      ...(options.ciphers ? { ciphers: options.ciphers } : {}),
    });
    socket.once('secureConnect', () => {
      // With TLS 1.3 a client-certificate refusal arrives after the handshake: make a request.
      socket.write('GET /v2/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    });
    let data = '';
    socket.on('data', (d: Buffer) => { data += d.toString(); });
    socket.once('end', () => resolve({ ok: data.startsWith('HTTP/1.1 200'), peer: socket.getPeerCertificate(), protocol: socket.getProtocol(), cipher: socket.getCipher()?.name }));
    socket.once('error', (e) => resolve({ ok: false, error: (e as NodeJS.ErrnoException).code ?? e.message }));
  });
}

t.test('TLS: a verified certificate, HTTP/1.1, TLS 1.2 and 1.3', { skip }, async (t) => {
  const ca = makeCa();
  const server = issueServer(ca);
  const s = await serveTls({ certificate: server.cert, key: server.key });
  t.teardown(() => s.close());
  const agent = new Agent({ connect: { ca: pem(ca.cert) } });
  t.teardown(() => agent.close());
  const res = await request(`https://localhost:${s.port}/v2/`, { dispatcher: agent });
  t.equal(res.statusCode, 200, 'undici verifies the server certificate against the test CA');
  await res.body.dump();
  const tls12 = await handshake(s.port, { ca: ca.cert, maxVersion: 'TLSv1.2' });
  t.ok(tls12.ok, 'TLS 1.2 client');
  t.equal(tls12.protocol, 'TLSv1.2');
  const tls13 = await handshake(s.port, { ca: ca.cert });
  t.equal(tls13.protocol, 'TLSv1.3');
  const stranger = makeCa('another CA');
  t.notOk((await handshake(s.port, { ca: stranger.cert })).ok, 'a client trusting another CA refuses the server');
});

t.test('TLS: minimumtls and ciphersuites', { skip }, async (t) => {
  const ca = makeCa();
  const server = issueServer(ca);
  const only13 = await serveTls({ certificate: server.cert, key: server.key, minimumtls: 'tls1.3' });
  t.teardown(() => only13.close());
  t.notOk((await handshake(only13.port, { ca: ca.cert, maxVersion: 'TLSv1.2' })).ok, 'minimumtls: tls1.3 refuses a TLS 1.2 client');
  t.ok((await handshake(only13.port, { ca: ca.cert })).ok, 'and serves TLS 1.3');
  const picky = await serveTls({ certificate: server.cert, key: server.key, ciphersuites: ['TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384'] });
  t.teardown(() => picky.close());
  const chosen = await handshake(picky.port, { ca: ca.cert, maxVersion: 'TLSv1.2' });
  t.equal(chosen.cipher, 'ECDHE-ECDSA-AES256-GCM-SHA384', 'the configured suite is the one negotiated');
  t.notOk((await handshake(picky.port, { ca: ca.cert, maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' })).ok, 'a suite not in the list is refused');
  t.throws(() => tlsServerOptions({ certificate: server.cert, key: server.key, ciphersuites: ['TLS_RSA_WITH_RC4_128_SHA'] }), /http\.tls\.ciphersuites: "TLS_RSA_WITH_RC4_128_SHA"/);
  t.throws(() => tlsServerOptions({ certificate: server.cert, key: server.key, minimumtls: 'tls1.0' }), /http\.tls\.minimumtls/);
  t.throws(() => tlsServerOptions({ certificate: server.cert, key: '/nonexistent.key' }), /http\.tls\.key: cannot read \/nonexistent\.key: ENOENT/);
  const other = issueServer(ca, 'other');
  t.throws(() => tlsServerOptions({ certificate: server.cert, key: other.key }), /http\.tls: the certificate and key cannot be used together/);
});

t.test('mutual TLS: no client certificate, no connection', { skip }, async (t) => {
  const ca = makeCa();
  const clientCa = makeCa('client CA');
  const server = issueServer(ca);
  const alice = issueClient(clientCa, 'alice');
  const rogue = issueClient(makeCa('rogue CA'), 'mallory');
  const s = await serveTls({ certificate: server.cert, key: server.key, clientcas: [clientCa.cert] });
  t.teardown(() => s.close());
  t.ok((await handshake(s.port, { ca: ca.cert, cert: alice.cert, key: alice.key })).ok, 'a client certificate from clientcas');
  t.notOk((await handshake(s.port, { ca: ca.cert })).ok, 'no client certificate (TLS 1.3)');
  t.notOk((await handshake(s.port, { ca: ca.cert, maxVersion: 'TLSv1.2' })).ok, 'no client certificate (TLS 1.2)');
  t.notOk((await handshake(s.port, { ca: ca.cert, cert: rogue.cert, key: rogue.key })).ok, 'a certificate from another CA');
});

/** Two server certificates of one CA, the first copied to the "live" files a server is given. */
function rotationPair(reloadIntervalMs: number) {
  const ca = makeCa();
  const first = issueServer(ca, 'first');
  const second = issueServer(ca, 'second');
  const live = { certificate: `${ca.dir}/live.pem`, key: `${ca.dir}/live.key`, reloadIntervalMs };
  copyFileSync(first.cert, live.certificate);
  copyFileSync(first.key, live.key);
  return { ca, first, second, live };
}

const serialOf = (file: string) => new X509Certificate(pem(file)).serialNumber;

/** Handshakes until the server shows `certFile`'s certificate (5 s at most); the last handshake. */
async function awaitServed(port: number, ca: string, certFile: string) {
  let seen = await handshake(port, { ca });
  for (let i = 0; i < 50 && seen.peer?.serialNumber !== serialOf(certFile); i++) {
    await sleep(100);
    seen = await handshake(port, { ca });
  }
  return seen;
}

t.test('certificate rotation while serving', { skip }, async (t) => {
  const { ca, first, second, live } = rotationPair(100);
  const logs: string[] = [];
  const s = await serveTls(live, logs);
  t.teardown(() => s.close());
  const before = await handshake(s.port, { ca: ca.cert });
  t.equal(before.peer?.serialNumber, serialOf(first.cert), 'the first certificate is served');

  // A keep-alive connection opened before the rotation keeps working through it.
  const agent = new Agent({ connect: { ca: pem(ca.cert) }, keepAliveTimeout: 30_000 });
  t.teardown(() => agent.close());
  const ask = async () => { const r = await request(`https://localhost:${s.port}/v2/`, { dispatcher: agent }); await r.body.dump(); return r.statusCode; };
  t.equal(await ask(), 200);

  copyFileSync(second.key, live.key); // the key first: for a moment key and certificate do not match
  for (let i = 0; i < 50 && !logs.some((l) => l.includes('not reloaded')); i++) await sleep(100);
  t.ok(logs.some((l) => l.includes('TLS certificate not reloaded')), 'a key that does not match is logged');
  t.equal((await handshake(s.port, { ca: ca.cert })).peer?.serialNumber, serialOf(first.cert), 'and the current certificate stays');
  copyFileSync(second.cert, live.certificate);
  const after = await awaitServed(s.port, ca.cert, second.cert);
  t.equal(after.peer?.serialNumber, serialOf(second.cert), 'new connections get the rotated certificate');
  t.ok(after.ok, 'and are served');
  t.equal(await ask(), 200, 'the connection opened before the rotation still works');
  t.ok(logs.some((l) => l.includes('TLS certificate reloaded')), 'the reload is logged');
});

t.test('a certificate rotated between start-up\'s read and the listening server is served', { skip }, async (t) => {
  // The watch starts before the read. Started after listen, as it was, it took the rotated files
  // as its first state and kept serving the certificate read before them.
  const { ca, second, live } = rotationPair(50);
  const s = await serveTls(live, [], () => {
    copyFileSync(second.cert, live.certificate);
    copyFileSync(second.key, live.key);
  });
  t.teardown(() => s.close());
  const seen = await awaitServed(s.port, ca.cert, second.cert);
  t.equal(seen.peer?.serialNumber, serialOf(second.cert), 'the certificate written after the read is served');
});

t.test('a TLS handshake that never completes is cut after the headers timeout', { skip }, async (t) => {
  const ca = makeCa();
  const server = issueServer(ca);
  const config = testConfig();
  config.http.timeouts.headers = 1000;
  const log = pino({ level: 'silent' });
  const metadata = new MetadataIndex(':memory:');
  const app = buildApp({ config, log, registry: new LocalRegistry(new MemoryDriver(), metadata, log), https: tlsServerOptions({ certificate: server.cert, key: server.key }) });
  const address = await app.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(async () => { await app.close(); metadata.close(); });
  const { connect: tcp } = await import('node:net');
  const socket = tcp(Number(new URL(address).port), '127.0.0.1');
  socket.on('error', () => undefined);
  const opened = Date.now();
  socket.write(Buffer.from([0x16, 0x03, 0x01])); // the first bytes of a ClientHello, then nothing
  const closedAfter = await new Promise<number>((r) => socket.once('close', () => r(Date.now() - opened)));
  t.ok(closedAfter < 10_000, `the server closed the silent handshake (after ${closedAfter} ms, Node's default is 120 s)`);
});
