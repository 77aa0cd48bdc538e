/**
 * Health checks and the debug server, on a real stowage process (run as an unprivileged user
 * when the test is root, so that file permissions bind it): the storage check with the storage
 * root made unwritable and writable again, the file check (a maintenance file), HTTP and TCP
 * checks against servers this test starts and stops, upstream reachability that is reported but
 * never fails health, and the debug server serving /debug/health and /metrics and nothing else.
 * While a check fails, /v2/ (and every registry request) answers 503 UNAVAILABLE as registry:2's
 * health.Handler does; /debug/health reports "shutdown" while stowage drains.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, request, type Server } from 'node:http';
import { createServer as createTcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { startStowage } from '../helpers/procs.js';
import { freePort, missingTools, sleep } from '../helpers/tools.js';

const asRoot = process.getuid?.() === 0;
const skip = asRoot ? missingTools('setpriv', 'chmod') : undefined;
const UID = 61235;

async function until<T>(what: string, probe: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (ok(v)) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(v)}`);
    await sleep(100);
  }
}

const listen = (server: Server | ReturnType<typeof createTcpServer>, port: number) =>
  new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(port, '127.0.0.1', () => resolve()); });
const close = (server: Server | ReturnType<typeof createTcpServer>) => new Promise<void>((resolve) => server.close(() => resolve()));

t.test('health checks, /debug/health and 503 while failing', { skip, timeout: 120_000 }, async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'stowage-health-'));
  chmodSync(work, 0o755);
  t.teardown(() => rmSync(work, { recursive: true, force: true }));
  const root = join(work, 'root');
  const index = join(work, 'index');
  for (const d of [root, index]) {
    mkdirSync(d);
    if (asRoot) chownSync(d, UID, UID);
  }
  const maintenance = join(work, 'maintenance');

  // A dependency checked over HTTP and one over TCP, both up to begin with.
  let httpStatus = 200;
  const httpDep = createHttpServer((_req, res) => { res.writeHead(httpStatus).end(); });
  const httpPort = await freePort();
  await listen(httpDep, httpPort);
  let tcpDep = createTcpServer((s) => s.destroy());
  const tcpPort = await freePort();
  await listen(tcpDep, tcpPort);
  t.teardown(async () => { await close(httpDep); await close(tcpDep); });
  // An upstream that is not there (yet).
  const upstreamPort = await freePort();

  const debugPort = await freePort();
  const debugUrl = `http://127.0.0.1:${debugPort}`;
  const interval = '200ms';
  const s = await startStowage({
    rootDir: root,
    ...(asRoot ? { uid: UID } : {}),
    config: {
      metadata: { path: join(index, 'stowage.sqlite') },
      http: { debug: { addr: `127.0.0.1:${debugPort}`, prometheus: { enabled: true, path: '/metrics' } }, draintimeout: '60s' },
      upstreams: [{ name: 'upstream.test', url: `http://127.0.0.1:${upstreamPort}`, timeout: '1s' }],
      health: {
        storagedriver: { enabled: true, interval, threshold: 2 },
        file: [{ file: maintenance, interval }],
        http: [{ uri: `http://127.0.0.1:${httpPort}/ready`, statuscode: 200, timeout: '1s', interval }],
        tcp: [{ addr: `127.0.0.1:${tcpPort}`, timeout: '1s', interval }],
        upstreams: { enabled: true, interval, timeout: '1s' },
      },
    },
  });
  t.teardown(() => s.kill9());

  const debugHealth = async () => {
    const r = await fetch(`${debugUrl}/debug/health`);
    return { status: r.status, body: await r.json() as Record<string, string> };
  };
  const v2 = async (path = '/v2/') => {
    const r = await fetch(`${s.url}${path}`);
    return { status: r.status, body: await r.text() };
  };
  const debugMetrics = async () => (await fetch(`${debugUrl}/metrics`)).text();
  const healthy = (h: { status: number }) => h.status === 200;

  await t.test('all checks pass', async (t) => {
    t.same(await until('healthy', debugHealth, healthy), { status: 200, body: {} }, '/debug/health: 200 {}');
    t.equal((await v2()).status, 200, '/v2/ answers 200');
    const metrics = await debugMetrics();
    t.match(metrics, 'stowage_health_check_up{check="storagedriver_filesystem"} 1', 'the debug server serves the metrics, with each check');
    t.match(metrics, `stowage_health_check_up{check="127.0.0.1:${tcpPort}"} 1`);
  });

  await t.test('the debug server serves nothing else', async (t) => {
    for (const path of ['/v2/', '/debug/pprof/', '/debug/vars', '/']) {
      const r = await fetch(`${debugUrl}${path}`);
      t.equal(r.status, 404, `${path}: 404`);
      await r.arrayBuffer();
    }
  });

  await t.test('an unreachable upstream is reported, not failing', async (t) => {
    const metrics = await until('the upstream probe', debugMetrics, (m) => m.includes('stowage_upstream_reachable{upstream="upstream.test"} 0'));
    t.match(metrics, 'stowage_upstream_reachable{upstream="upstream.test"} 0', 'reported unreachable');
    t.same(await debugHealth(), { status: 200, body: {} }, 'health stays 200');
    const up = createHttpServer((_req, res) => { res.writeHead(401, { 'www-authenticate': 'Basic realm="x"' }).end(); });
    await listen(up, upstreamPort);
    t.teardown(() => close(up));
    await until('the upstream reachable', debugMetrics, (m) => m.includes('stowage_upstream_reachable{upstream="upstream.test"} 1'));
    t.pass('reachable once it answers (401 counts: a registry asking for a token)');
  });

  await t.test('storage root made unwritable: 503 until it is writable again', async (t) => {
    chmodR(root, false);
    const failing = await until('the storage check to fail', debugHealth, (h) => h.status === 503);
    t.same(Object.keys(failing.body), ['storagedriver_filesystem'], '/debug/health names the storage check');
    t.match(failing.body.storagedriver_filesystem, /EACCES|permission denied/i, 'with the reason');
    const res = await v2();
    t.equal(res.status, 503, '/v2/ answers 503');
    t.same(JSON.parse(res.body), { errors: [{ code: 'UNAVAILABLE', message: 'service unavailable', detail: 'health check failed: please see /debug/health' }] },
      'registry:2\'s error body');
    t.equal((await v2('/v2/_catalog')).status, 503, 'every registry request is 503');
    t.equal((await fetch(`${s.url}/metrics`)).status, 200, 'the main port\'s /metrics stays up');
    t.match(await debugMetrics(), 'stowage_health_check_up{check="storagedriver_filesystem"} 0');
    chmodR(root, true);
    await until('healthy again', debugHealth, healthy);
    t.equal((await v2()).status, 200, 'writable again: /v2/ answers 200');
  });

  await t.test('file, http and tcp checks', async (t) => {
    writeFileSync(maintenance, '');
    t.same(await until('the file check', debugHealth, (h) => h.status === 503), { status: 503, body: { [maintenance]: 'file exists' } }, 'a maintenance file takes it out of rotation');
    t.equal((await v2()).status, 503, '/v2/ 503');
    rmSync(maintenance);
    await until('healthy', debugHealth, healthy);

    httpStatus = 500;
    t.same(await until('the http check', debugHealth, (h) => h.status === 503),
      { status: 503, body: { [`http://127.0.0.1:${httpPort}/ready`]: 'downstream service returned unexpected status: 500' } }, 'an http check answering 500');
    httpStatus = 200;
    await until('healthy', debugHealth, healthy);

    await close(tcpDep);
    const tcp = await until('the tcp check', debugHealth, (h) => h.status === 503);
    t.match(tcp.body[`127.0.0.1:${tcpPort}`], /ECONNREFUSED/, 'a tcp check with nothing listening');
    tcpDep = createTcpServer((sock) => sock.destroy());
    await listen(tcpDep, tcpPort);
    await until('healthy', debugHealth, healthy);
    t.equal((await v2()).status, 200, 'all passing again: /v2/ 200');
  });

  await t.test('draining: /debug/health fails so readiness probes take the instance out', async (t) => {
    const post = await fetch(`${s.url}/v2/team/app/blobs/uploads/`, { method: 'POST' });
    await post.arrayBuffer();
    const patch = request(new URL(post.headers.get('location')!, s.url), { method: 'PATCH', headers: { 'content-length': String(1 << 20) } });
    patch.on('error', () => undefined);
    patch.write(Buffer.alloc(1000));
    await sleep(200);
    s.proc.kill('SIGTERM');
    const draining = await until('draining', debugHealth, (h) => h.status === 503);
    t.match(draining.body, { shutdown: /draining/ }, '/debug/health: 503 with "shutdown"');
    const ended = Date.now();
    patch.end(Buffer.alloc((1 << 20) - 1000));
    const code = await new Promise<number | null>((r) => (s.proc.exitCode !== null ? r(s.proc.exitCode) : s.proc.once('exit', (c) => r(c))));
    t.equal(code, 0, 'the upload finished, then stowage exited 0');
    t.ok(Date.now() - ended < 3000, 'at once: the client\'s kept-alive connection did not hold the drain open');
  });
});

/** chmod -R: every directory and file under dir writable by its owner, or by no one. */
function chmodR(dir: string, writable: boolean): void {
  const r = spawnSync('chmod', ['-R', writable ? 'u+w' : 'a-w', dir]);
  if (r.status !== 0) throw new Error(`chmod -R ${dir} failed`);
}
