/**
 * Graceful shutdown, for real: stowage (dist/cli.js) pulls a 512 MiB blob through from Debian's
 * registry:2 for a slow client and gets SIGTERM just after the first bytes reach that client. It
 * stops accepting connections at once, finishes the fill and the response (the client gets every
 * byte, digest verified), exits 0; the next start serves the blob from its cache with the upstream
 * gone. A second signal during a drain exits at once.
 */
import { createHash } from 'node:crypto';
import { request } from 'node:http';
import t, { type Test } from 'tap';
import { OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, pushBlobHttp, pushManifestHttp, sha256 } from '../helpers/image.js';
import { startRegistry2, startStowage, type Proc } from '../helpers/procs.js';
import { missingTools, sleep } from '../helpers/tools.js';

const skip = missingTools('docker-registry');
const MiB = 1024 * 1024;
const SIZE = 512 * MiB;

/** 512 MiB that differ chunk by chunk (incompressible, cheap to make): chunk i is a random MiB stamped with i. */
function* bigBlobChunks(): Generator<Buffer> {
  const base = createHash('sha512').update('drain').digest();
  const mib = Buffer.alloc(MiB);
  for (let off = 0; off < MiB; off += base.length) base.copy(mib, off);
  for (let i = 0; i < SIZE / MiB; i++) {
    const chunk = Buffer.from(mib);
    chunk.writeUInt32BE(i, 0);
    for (let off = 64; off < MiB; off += 4096) chunk.writeUInt32BE((i * 2654435761 + off) >>> 0, off);
    yield chunk;
  }
}

/** Streams the big blob into registry:2 (POST + PUT); returns its digest. */
async function pushBigBlob(base: string, repo: string): Promise<string> {
  const hash = createHash('sha256');
  for (const c of bigBlobChunks()) hash.update(c);
  const digest = `sha256:${hash.digest('hex')}`;
  const start = await fetch(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  await start.arrayBuffer();
  const location = new URL(start.headers.get('location')!, base);
  location.searchParams.set('digest', digest);
  await new Promise<void>((resolve, reject) => {
    const req = request(location, { method: 'PUT', headers: { 'content-type': 'application/octet-stream', 'content-length': String(SIZE) } }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 201 ? resolve() : reject(new Error(`PUT blob: ${res.statusCode}`))));
    });
    req.on('error', reject);
    const chunks = bigBlobChunks();
    const pump = () => {
      for (let next = chunks.next(); !next.done; next = chunks.next()) if (!req.write(next.value)) return void req.once('drain', pump);
      req.end();
    };
    pump();
  });
  return digest;
}

interface SlowRead { status: number; bytes: number; digest: string; complete: boolean }

/** GETs url reading ~bytesPerSec; calls onFirstBytes once data arrives. */
function slowGet(url: string, bytesPerSec: number, onFirstBytes: () => void): Promise<SlowRead> {
  return new Promise((resolve, reject) => {
    request(url, (res) => {
      const hash = createHash('sha256');
      let bytes = 0;
      let first = true;
      const started = Date.now();
      res.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        bytes += chunk.length;
        if (first) { first = false; onFirstBytes(); }
        const ahead = bytes / bytesPerSec * 1000 - (Date.now() - started);
        if (ahead > 5) { res.pause(); setTimeout(() => res.resume(), ahead); }
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes, digest: `sha256:${hash.digest('hex')}`, complete: res.complete }));
      res.on('error', (e) => resolve({ status: res.statusCode ?? 0, bytes, digest: '', complete: false, ...{ error: e.message } }));
    }).on('error', reject).end();
  });
}

/** Waits for 'close', not 'exit': the last log lines may still be in the pipe when the process has exited. */
const exited = (p: Proc) => new Promise<{ code: number | null; signal: string | null }>((resolve) => {
  const done = () => resolve({ code: p.proc.exitCode, signal: p.proc.signalCode });
  const exitedAlready = p.proc.exitCode !== null || p.proc.signalCode !== null;
  if (exitedAlready && (p.proc.stdout?.closed ?? true) && (p.proc.stderr?.closed ?? true)) return done();
  p.proc.once('close', done);
});

t.test('SIGTERM during a 512 MiB cold fill', { skip, timeout: 300_000 }, async (t) => {
  const r2 = await startRegistry2();
  t.teardown(() => r2.stop());
  const repo = 'big/app';
  const layer = await pushBigBlob(r2.url, repo);
  const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
  await pushBlobHttp(r2.url, repo, { bytes: config, digest: sha256(config) });
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: OCI_MANIFEST,
    config: { mediaType: OCI_CONFIG, digest: sha256(config), size: config.length },
    layers: [{ mediaType: OCI_LAYER_GZIP, digest: layer, size: SIZE }],
  }));
  await pushManifestHttp(r2.url, repo, 'v1', manifest, OCI_MANIFEST);
  // Layer prefetch off: with it the fill starts at the manifest GET, before the client asks, and
  // on a loaded machine (the full suite in parallel) it finished before the client's first bytes
  // came, so the signal no longer fell during the fill this test is about.
  const stowageConfig = { upstreams: [{ name: 'upstream.test', url: r2.url }], http: { draintimeout: '120s' }, prefetch: { enabled: false } };
  const blobUrl = (s: Proc) => `${s.url}/v2/upstream.test/${repo}/blobs/${layer}`;

  /** A fresh stowage that has cached the manifest (so the blob may be fetched). */
  const freshStowage = async () => {
    const s = await startStowage({ config: stowageConfig });
    t.teardown(() => s.kill9());
    const m = await fetch(`${s.url}/v2/upstream.test/${repo}/manifests/v1`, { headers: { accept: OCI_MANIFEST } });
    await m.arrayBuffer();
    if (m.status !== 200) throw new Error(`manifest through stowage: ${m.status}`);
    return s;
  };
  /** The log says the fill was running when the signal came and the drain waited for it. */
  const drainedAfterFill = (t: Test, s: Proc) => {
    const logs = s.logs();
    const at = (msg: string) => logs.findIndex((l) => l.msg === msg);
    t.ok(at('shutting down') >= 0 && at('blob cached') > at('shutting down'), 'the fill was still running when the signal came (it committed after)');
    t.ok(at('drained') > at('blob cached'), 'the drain ended after the fill');
    t.ok(at('stopped') > at('drained'), 'then stowage closed its index and stopped');
    t.notOk(logs.some((l) => l.msg === 'drain time is up: closing the remaining connections and stopping upstream fills'), 'within the drain time');
  };
  /** Restarts on the same data directory: the blob is served from the cache (the upstream may be down). */
  const servedAfterRestart = async (t: Test, s: Proc) => {
    const again = await startStowage({ rootDir: s.rootDir, config: stowageConfig });
    t.teardown(() => again.kill9());
    const res = await fetch(blobUrl(again));
    const hash = createHash('sha256');
    let bytes = 0;
    for await (const c of res.body as unknown as AsyncIterable<Uint8Array>) { hash.update(c); bytes += c.length; }
    t.same({ status: res.status, bytes, digest: `sha256:${hash.digest('hex')}` }, { status: 200, bytes: SIZE, digest: layer },
      'the next start serves the blob from its cache');
    await again.stop();
  };

  await t.test('a slow client gets the whole blob, then stowage exits 0', async (t) => {
    const s = await freshStowage();
    let signalled = false;
    let refusedAfterSignal: string | undefined;
    const read = await slowGet(blobUrl(s), 48 * MiB, () => {
      signalled = true;
      s.proc.kill('SIGTERM');
      // A new connection while draining is refused (the listener is closed).
      void sleep(300).then(() => fetch(`${s.url}/v2/`).then((r) => { refusedAfterSignal = `answered ${r.status}`; }, (e: Error) => {
        refusedAfterSignal = (e.cause as NodeJS.ErrnoException | undefined)?.code ?? e.message;
      }));
    });
    const { code, signal } = await exited(s);
    t.ok(signalled, 'SIGTERM was sent after the first bytes arrived');
    t.same({ status: read.status, bytes: read.bytes, complete: read.complete }, { status: 200, bytes: SIZE, complete: true }, 'the slow client got all 512 MiB');
    t.equal(read.digest, layer, 'and they verify against the digest');
    t.same({ code, signal }, { code: 0, signal: null }, 'stowage exited 0');
    t.equal(refusedAfterSignal, 'ECONNREFUSED', 'new connections were refused while draining');
    drainedAfterFill(t, s);
    await servedAfterRestart(t, s);
  });

  await t.test('the fill outlives a client that hangs up during the drain', async (t) => {
    const s = await freshStowage();
    await new Promise<void>((resolve, reject) => {
      const req = request(blobUrl(s), (res) => {
        res.once('data', () => {
          s.proc.kill('SIGTERM');
          req.destroy();
          resolve();
        });
      });
      req.on('error', () => undefined);
      req.on('close', () => resolve());
      req.end();
      setTimeout(() => reject(new Error('no bytes arrived')), 60_000).unref();
    });
    const { code, signal } = await exited(s);
    t.same({ code, signal }, { code: 0, signal: null }, 'stowage exited 0');
    drainedAfterFill(t, s);
    await r2.stop();
    await servedAfterRestart(t, s);
  });
});

t.test('a second signal exits at once', { timeout: 120_000 }, async (t) => {
  const s = await startStowage({ config: { http: { draintimeout: '120s' } } });
  t.teardown(() => s.kill9());
  // An upload session with a body that never ends keeps the drain waiting.
  const post = await fetch(`${s.url}/v2/team/app/blobs/uploads/`, { method: 'POST' });
  await post.arrayBuffer();
  const location = new URL(post.headers.get('location')!, s.url);
  const patch = request(location, { method: 'PATCH', headers: { 'content-type': 'application/octet-stream', 'content-length': String(64 * MiB) } });
  patch.on('error', () => undefined);
  patch.write(Buffer.alloc(MiB));
  await sleep(300);
  s.proc.kill('SIGTERM');
  await sleep(1000);
  t.equal(s.proc.exitCode, null, 'the first SIGTERM waits for the upload in flight');
  const before = Date.now();
  s.proc.kill('SIGTERM');
  const { code } = await exited(s);
  t.equal(code, 143, 'the second SIGTERM exits at once (128 + 15)');
  t.ok(Date.now() - before < 3000, 'within moments');
  patch.destroy();
});

t.test('http.draintimeout: what is still running then is cut, and stowage exits 0', { timeout: 120_000 }, async (t) => {
  const s = await startStowage({ config: { http: { draintimeout: '1s' } } });
  t.teardown(() => s.kill9());
  const post = await fetch(`${s.url}/v2/team/app/blobs/uploads/`, { method: 'POST' });
  await post.arrayBuffer();
  const patch = request(new URL(post.headers.get('location')!, s.url), { method: 'PATCH', headers: { 'content-type': 'application/octet-stream', 'content-length': String(64 * MiB) } });
  const cut = new Promise<string>((resolve) => patch.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message)));
  patch.write(Buffer.alloc(MiB));
  await sleep(300);
  const before = Date.now();
  s.proc.kill('SIGTERM');
  const { code } = await exited(s);
  const took = Date.now() - before;
  t.equal(code, 0, 'exit 0');
  t.ok(took >= 900 && took < 5000, `after the drain time (${took} ms)`);
  t.match(await cut, /ECONNRESET|EPIPE|socket hang up/, 'the unfinished upload\'s connection was closed');
  t.ok(s.logs().some((l) => l.msg === 'drain time is up: closing the remaining connections and stopping upstream fills'), 'and logged');
});
