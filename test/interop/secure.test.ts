/**
 * stowage from dist/cli.js serving HTTPS (a CA and certificate made with openssl) with an htpasswd
 * file made by Apache's htpasswd -B and access rules, in front of Debian's registry:2 as its
 * docker.io upstream; skopeo and podman as the clients (--creds, --cert-dir). What a mirror
 * operator needs: anonymous pulls of cached images, logged-in pushes per team, wrong passwords
 * refused and counted, mutual TLS, a certificate rotated while serving, nothing leaking.
 */
import { execFile, execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { promisify } from 'node:util';
import { X509Certificate } from 'node:crypto';
import t from 'tap';
import { fetch as undiciFetch, type Dispatcher } from 'undici';
import { issueClient, issueServer, makeCa } from '../helpers/certs.js';
import { ALL_ACCEPT, makeImage, pushImageHttp, sha256, writeOciLayout } from '../helpers/image.js';
import { startRegistry2, startStowage, tlsDispatcher } from '../helpers/procs.js';
import { missingTools, runClient, sleep } from '../helpers/tools.js';

const skip = missingTools('skopeo', 'podman', 'docker-registry', 'openssl', 'htpasswd');
const run = promisify(execFile);

const PASSWORDS = { alice: 'alice-pw-Zq81', bob: 'bob-pw-Kx22', runner: 'runner-pw-Lm33' } as const;
type User = keyof typeof PASSWORDS;


const hello = makeImage({ seed: 901, layers: 2, layerSize: 50_000 });
const teamApp = makeImage({ seed: 902, layers: 2, layerSize: 80_000 });

t.test('HTTPS + htpasswd + access rules with skopeo and podman', { skip, timeout: 400_000 }, async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'stowage-secure-'));
  t.teardown(() => rmSync(work, { recursive: true, force: true }));

  // The docker.io upstream: registry:2 behind a recorder that notes any Authorization it receives.
  const r2 = await startRegistry2();
  t.teardown(() => r2.stop());
  await pushImageHttp(r2.url, 'library/hello', 'latest', hello);
  const upstreamAuthorizations: string[] = [];
  const recorder = createServer((req, res) => {
    if (req.headers.authorization) upstreamAuthorizations.push(req.headers.authorization);
    const target = new URL(req.url ?? '/', r2.url);
    const out = httpRequest(target, { method: req.method, headers: { ...req.headers, host: target.host } }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    out.on('error', () => res.destroy());
    req.pipe(out);
  });
  await new Promise<void>((r) => recorder.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => recorder.close(() => r())));
  const upstreamUrl = `http://127.0.0.1:${(recorder.address() as AddressInfo).port}`;

  // Certificates and users, made with the tools an operator uses.
  const ca = makeCa();
  const server = issueServer(ca, 'server-1');
  const live = { cert: join(work, 'live.pem'), key: join(work, 'live.key') };
  copyFileSync(server.cert, live.cert);
  copyFileSync(server.key, live.key);
  const htpasswd = join(work, 'htpasswd');
  execFileSync('htpasswd', ['-B', '-b', '-c', '-C', '5', htpasswd, 'alice', PASSWORDS.alice], { stdio: 'ignore' });
  for (const u of ['bob', 'runner'] as const) execFileSync('htpasswd', ['-B', '-b', '-C', '5', htpasswd, u, PASSWORDS[u]], { stdio: 'ignore' });
  const certDir = join(work, 'certs');
  mkdirSync(certDir);
  copyFileSync(ca.cert, join(certDir, 'ca.crt'));

  const s = await startStowage({
    tls: { ca: ca.cert },
    config: {
      http: { tls: { certificate: live.cert, key: live.key } },
      auth: { htpasswd: { realm: 'stowage', path: htpasswd } },
      upstreams: [{ name: 'docker.io', url: upstreamUrl }],
      default_upstream: 'docker.io',
      access: [
        { repository: 'docker.io/**', pull: ['anonymous'] },
        { repository: 'team-a/**', pull: ['alice', 'group:ci'], push: ['alice'] },
        { repository: 'team-b/**', pull: ['bob'], push: ['bob'] },
      ],
      groups: { ci: ['runner'] },
    },
  });
  t.teardown(() => s.stop());
  const host = `localhost:${s.port}`;
  const dispatcher: Dispatcher = tlsDispatcher({ ca: ca.cert });
  t.teardown(() => dispatcher.close());
  const get = async (path: string, headers: Record<string, string> = {}) => {
    const r = await undiciFetch(`${s.url}${path}`, { dispatcher, headers: { accept: ALL_ACCEPT, ...headers } });
    return { status: r.status, body: Buffer.from(await r.arrayBuffer()), headers: r.headers };
  };
  const creds = (u: User, password: string = PASSWORDS[u]) => `${u}:${password}`;
  const layout = join(work, 'layout');
  await writeOciLayout(layout, { v1: teamApp });
  const skopeoPush = (dest: string, auth: string[]) =>
    runClient('skopeo', ['copy', '--quiet', '--preserve-digests', '--dest-cert-dir', certDir, ...auth, `oci:${layout}:v1`, `docker://${host}/${dest}`]);
  const skopeoPull = (src: string, auth: string[]) =>
    runClient('skopeo', ['copy', '--quiet', '--src-cert-dir', certDir, ...auth, `docker://${host}/${src}`, `dir:${mkdtempSync(join(work, 'out-'))}`]);

  await t.test('pushes: the team member yes, another team and anonymous no, a wrong password no', async (t) => {
    const alice = await skopeoPush('team-a/app:v1', ['--dest-creds', creds('alice')]);
    t.ok(alice.ok, `alice pushes team-a/app over TLS (${alice.output.trim().slice(0, 200)})`);
    const bob = await skopeoPush('team-a/app:bob', ['--dest-creds', creds('bob')]);
    t.notOk(bob.ok, 'bob may not push into team-a');
    t.match(bob.output, /denied|403/i, `refused with 403 DENIED (${bob.output.trim().slice(-160)})`);
    const anon = await skopeoPush('team-a/app:anon', ['--dest-no-creds']);
    t.notOk(anon.ok, 'an anonymous push is refused');
    t.match(anon.output, /unauthorized|authentication required/i);
    const wrong = await skopeoPush('team-a/app:wrong', ['--dest-creds', creds('alice', 'not-the-password')]);
    t.notOk(wrong.ok, 'a wrong password is refused');
    t.match(wrong.output, /unauthorized|authentication required/i);
    const intoCache = await skopeoPush('docker.io/library/hello:mine', ['--dest-creds', creds('alice')]);
    t.notOk(intoCache.ok, 'nobody pushes into the cache namespace');
  });

  await t.test('pulls: anonymous from the cache, team content with a login, podman too', async (t) => {
    const anon = await skopeoPull('library/hello:latest', ['--src-no-creds']);
    t.ok(anon.ok, `anonymous pull of a cached docker.io image (${anon.output.trim().slice(0, 200)})`);
    const raw = await runClient('skopeo', ['inspect', '--raw', '--cert-dir', certDir, '--no-creds', `docker://${host}/docker.io/library/hello:latest`]);
    t.equal(raw.ok && sha256(Buffer.from(raw.output)), hello.manifest.digest, 'the same manifest by its cache name');
    t.notOk((await skopeoPull('team-a/app:v1', ['--src-no-creds'])).ok, 'team-a is not anonymous');
    t.ok((await skopeoPull('team-a/app:v1', ['--src-creds', creds('runner')])).ok, 'a member of group ci pulls team-a');
    t.notOk((await skopeoPull('team-a/app:v1', ['--src-creds', creds('bob')])).ok, 'bob does not');

    const podman = (...args: string[]) => runClient('podman', ['--root', join(work, 'podman-root'), '--runroot', join(work, 'podman-run'), '--storage-driver', 'vfs', ...args]);
    const pulled = await podman('pull', '-q', '--cert-dir', certDir, '--creds', creds('alice'), `${host}/team-a/app:v1`);
    t.ok(pulled.ok, `podman pulls team-a/app with --creds and --cert-dir (${pulled.output.trim().slice(-200)})`);
    const images = await podman('images', '--digests', '--format', '{{.Digest}}');
    t.match(images.output, teamApp.manifest.digest, 'podman has the pushed image');
    const refused = await podman('pull', '-q', '--cert-dir', certDir, '--creds', creds('bob'), `${host}/team-a/app:v1`);
    t.notOk(refused.ok, 'podman as bob is refused');
    mkdirSync(join(work, 'empty'));
    const noCa = await podman('pull', '-q', '--cert-dir', join(work, 'empty'), '--creds', creds('alice'), `${host}/team-a/app:v1`);
    t.notOk(noCa.ok, 'without the CA the certificate is not trusted');
    t.match(noCa.output, /certificate|x509/i);
  });

  await t.test('a pushed blob cannot be read by digest through a public cache repository', async (t) => {
    const privateLayer = teamApp.layers[0]!.digest;
    for (const path of [`/v2/docker.io/library/hello/blobs/${privateLayer}`, `/v2/library/hello/blobs/${privateLayer}`, `/v2/anything/blobs/${privateLayer}`]) {
      const r = await get(path);
      t.equal(r.status, 404, `anonymous ${path.replace(privateLayer, '<team-a layer>')}`);
      t.equal(JSON.parse(r.body.toString()).errors[0].code, 'BLOB_UNKNOWN');
    }
    t.equal((await get(`/v2/team-a/app/blobs/${privateLayer}`, { authorization: `Basic ${Buffer.from(creds('alice')).toString('base64')}` })).status, 200, 'its owner reads it');
  });

  await t.test('_catalog, failed logins, no credential anywhere it should not be', async (t) => {
    const catalog = async (u?: User) => JSON.parse((await get('/v2/_catalog', u ? { authorization: `Basic ${Buffer.from(creds(u)).toString('base64')}` } : {})).body.toString()).repositories as string[];
    t.same(await catalog(), ['docker.io/library/hello'], 'anonymous sees the cache');
    t.same(await catalog('alice'), ['docker.io/library/hello', 'team-a/app'], 'alice sees her team too');
    t.same(await catalog('bob'), ['docker.io/library/hello'], 'bob does not see team-a');
    for (let i = 0; i < 50 && !s.logs().some((l) => l.msg === 'authentication failed'); i++) await sleep(100);
    const failed = s.logs().filter((l) => l.msg === 'authentication failed');
    t.ok(failed.some((l) => l.user === 'alice' && typeof l.address === 'string'), 'the wrong password was logged with user and address');
    const metrics = (await get('/metrics')).body.toString();
    t.match(metrics, /stowage_auth_failures_total\{scheme="basic"\} [1-9]/, 'and counted');
    for (const secret of Object.values(PASSWORDS)) {
      t.notOk(s.output().includes(secret), 'no password in the logs');
      t.notOk(metrics.includes(secret), 'nor in the metrics');
    }
    t.notMatch(s.output(), /Basic [A-Za-z0-9+/=]{8,}/, 'no Authorization value in the logs');
    t.same(upstreamAuthorizations, [], 'client credentials never reached the upstream');
  });

  await t.test('certificate rotation while serving', async (t) => {
    const serialOf = (file: string) => new X509Certificate(readFileSync(file)).serialNumber;
    const served = () => new Promise<string>((resolve, reject) => {
      const socket = tlsConnect({ host: '127.0.0.1', port: s.port, servername: 'localhost', ca: readFileSync(ca.cert) }, () => {
        resolve(socket.getPeerCertificate().serialNumber);
        socket.end();
      });
      socket.on('error', reject);
    });
    t.equal(await served(), serialOf(server.cert), 'the first certificate');
    const next = issueServer(ca, 'server-2');
    copyFileSync(next.key, live.key);
    copyFileSync(next.cert, live.cert);
    let now = await served();
    for (let i = 0; i < 60 && now !== serialOf(next.cert); i++) { await sleep(200); now = await served(); }
    t.equal(now, serialOf(next.cert), 'the rotated certificate is served without a restart');
    for (let i = 0; i < 50 && !s.logs().some((l) => l.msg === 'TLS certificate reloaded'); i++) await sleep(100); // the log travels through a pipe
    t.ok(s.logs().some((l) => l.msg === 'TLS certificate reloaded'), 'and the reload is logged');
    t.ok((await skopeoPull('team-a/app:v1', ['--src-creds', creds('alice')])).ok, 'clients go on pulling');
  });
});

t.test('mutual TLS: a client certificate from clientcas, or no connection', { skip, timeout: 120_000 }, async (t) => {
  const ca = makeCa();
  const clientCa = makeCa('client CA');
  const server = issueServer(ca);
  const ci = issueClient(clientCa, 'ci-runner');
  const image = makeImage({ seed: 903, layers: 1 });
  const s = await startStowage({
    tls: { ca: ca.cert, cert: ci.cert, key: ci.key },
    config: { http: { tls: { certificate: server.cert, key: server.key, clientcas: [clientCa.cert] } } },
  });
  t.teardown(() => s.stop());
  const work = mkdtempSync(join(tmpdir(), 'stowage-mtls-'));
  t.teardown(() => rmSync(work, { recursive: true, force: true }));
  const withCert = join(work, 'with-cert');
  const withoutCert = join(work, 'without-cert');
  for (const d of [withCert, withoutCert]) {
    mkdirSync(d);
    copyFileSync(ca.cert, join(d, 'ca.crt'));
  }
  copyFileSync(ci.cert, join(withCert, 'client.cert'));
  copyFileSync(ci.key, join(withCert, 'client.key'));
  await writeOciLayout(join(work, 'layout'), { v1: image });
  const push = (certDir: string) => runClient('skopeo', ['copy', '--quiet', '--dest-cert-dir', certDir, `oci:${join(work, 'layout')}:v1`, `docker://localhost:${s.port}/mtls/app:v1`]);
  const ok = await push(withCert);
  t.ok(ok.ok, `skopeo with a client certificate (${ok.output.trim().slice(0, 200)})`);
  const refused = await push(withoutCert);
  t.notOk(refused.ok, 'skopeo without one is refused');
  t.match(refused.output, /certificate|tls|handshake|remote error/i, refused.output.trim().slice(-200));
  const bare = await undiciFetch(`${s.url}/v2/`, { dispatcher: tlsDispatcher({ ca: ca.cert }) }).then(() => 'answered', (e: Error) => `failed: ${(e.cause as Error | undefined)?.message ?? e.message}`);
  t.match(bare, /^failed/, `an HTTPS request without a client certificate fails in the handshake (${bare})`);
});



t.test('start-up refuses what it cannot honour, in one line', async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'stowage-refuse-'));
  t.teardown(() => rmSync(work, { recursive: true, force: true }));
  const cli = join(import.meta.dirname, '../../dist/cli.js');
  const serve = async (yaml: string) => {
    const file = join(work, `c-${Math.random().toString(36).slice(2)}.yml`);
    writeFileSync(file, `version: 0.1\nstorage: {inmemory: {}}\n${yaml.includes('http:') ? '' : 'http: {addr: "127.0.0.1:0"}\n'}${yaml}`);
    try {
      await run(process.execPath, [cli, 'serve', file], { timeout: 20_000 });
      return { code: 0, stderr: '' };
    } catch (e) {
      const err = e as { code?: number; stderr?: string };
      return { code: err.code, stderr: err.stderr ?? '' };
    }
  };
  writeFileSync(join(work, 'htpasswd'), 'alice:$2y$05$abcdefghijklmnopqrstuuJ7Ws0cdRPzJY9OkvAi9ZqGZ1jC6z4Ie\nbob:$apr1$salt$0123456789abcdefghijkl\n');
  const md5 = await serve(`auth: {htpasswd: {realm: r, path: ${join(work, 'htpasswd')}}}\n`);
  t.equal(md5.code, 1);
  t.match(md5.stderr, /^stowage: .*htpasswd:2: the entry for "bob" is not a bcrypt hash/m, 'an MD5 htpasswd line, by its line number');
  const acme = await serve('http: {addr: "127.0.0.1:0", tls: {certificate: /c.pem, key: /k.pem, letsencrypt: {email: a@b.test}}}\n');
  t.equal(acme.code, 1);
  t.equal(acme.stderr.trim(), 'stowage: config: http.tls.letsencrypt: not supported: ACME needs the internet; give http.tls.certificate and http.tls.key', 'letsencrypt: one line');
  const noCert = await serve('http: {addr: "127.0.0.1:0", tls: {certificate: /nonexistent.pem, key: /nonexistent.key}}\n');
  t.match(noCert.stderr, /^stowage: http\.tls\.certificate: cannot read \/nonexistent\.pem: ENOENT$/m, 'a missing certificate');
  const both = await serve('auth: {htpasswd: {realm: r, path: /x}, token: {realm: r, service: s, issuer: i, rootcertbundle: /y}}\n');
  t.match(both.stderr, /^stowage: auth: give htpasswd or token, not both$/m);
});
