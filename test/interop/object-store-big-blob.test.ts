/**
 * Streams, not buffers, on every object store: a 2 GiB blob (STOWAGE_BIG_BLOB_MIB to change it)
 * is pushed through stowage (POST, one streamed PATCH, PUT) and pulled back, hashed on both
 * sides; stowage's peak RSS (VmHWM) is reported and must stay far below the blob's size.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { Readable } from 'node:stream';
import t from 'tap';
import { prngBytes } from '../helpers/image.js';
import { missingStore, startObjectStore, type StoreKind } from '../helpers/object-stores.js';
import { startStowage } from '../helpers/procs.js';

const MIB = 1024 * 1024;
const SIZE_MIB = Number(process.env.STOWAGE_BIG_BLOB_MIB ?? 2048);
/** Peak RSS allowed: flat memory means a few parts in flight, not a copy of the blob. */
const RSS_LIMIT_MIB = 400;

function chunks(seed: number): Readable {
  let i = 0;
  return new Readable({
    read() {
      if (i >= SIZE_MIB) return void this.push(null);
      this.push(prngBytes(seed * 100_003 + i++, MIB));
    },
  });
}

async function digestOf(seed: number): Promise<string> {
  const h = createHash('sha256');
  for await (const c of chunks(seed)) h.update(c as Buffer);
  return `sha256:${h.digest('hex')}`;
}

function send(url: URL, method: string, body?: Readable): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; hash?: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers: body ? { 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' } : {} }, (res) => {
      const h = createHash('sha256');
      let bytes = 0;
      res.on('data', (c: Buffer) => { h.update(c); bytes += c.length; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, hash: `sha256:${h.digest('hex')}`, bytes }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body) body.pipe(req);
    else req.end();
  });
}

// Three stores, 2 GiB each way: longer than tap's 300 s per file on a loaded 2-core machine.
t.setTimeout(1_500_000);

const peakRssMib = (pid: number) => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

for (const kind of ['s3', 'azure', 'swift'] as StoreKind[]) {
  t.test(`${kind}: a ${SIZE_MIB} MiB blob pushed and pulled with memory flat`, { skip: missingStore(kind), timeout: 900_000 }, async (t) => {
    const store = await startObjectStore(kind);
    t.teardown(() => store.stop());
    const bucket = await store.bucket({ chunkSize: 16 * MIB });
    const s = await startStowage({ storage: bucket.section });
    t.teardown(() => s.stop());
    const seed = 3;
    const digest = await digestOf(seed);
    const idleRss = peakRssMib(s.proc.pid!);

    const started = Date.now();
    const post = await send(new URL(`${s.url}/v2/big/blob/blobs/uploads/`), 'POST');
    t.equal(post.status, 202, 'upload started');
    const loc = new URL(String(post.headers.location), s.url);
    const patch = await send(loc, 'PATCH', chunks(seed));
    t.equal(patch.status, 202, 'streamed PATCH accepted');
    const putUrl = new URL(String(patch.headers.location), s.url);
    putUrl.searchParams.set('digest', digest);
    const put = await send(putUrl, 'PUT');
    t.equal(put.status, 201, 'upload committed');
    const pushSeconds = (Date.now() - started) / 1000;
    const pushRss = peakRssMib(s.proc.pid!);

    const pullStarted = Date.now();
    const got = await send(new URL(`${s.url}/v2/big/blob/blobs/${digest}`), 'GET');
    const pullSeconds = (Date.now() - pullStarted) / 1000;
    t.equal(got.status, 200);
    t.equal(got.bytes, SIZE_MIB * MIB, 'every byte came back');
    t.equal(got.hash, digest, 'and hashes to the digest');
    const rss = peakRssMib(s.proc.pid!);
    t.comment(`${kind}: push ${SIZE_MIB} MiB in ${pushSeconds.toFixed(1)} s (${(SIZE_MIB / pushSeconds).toFixed(0)} MiB/s), pull ${pullSeconds.toFixed(1)} s (${(SIZE_MIB / pullSeconds).toFixed(0)} MiB/s); stowage peak RSS ${idleRss.toFixed(0)} MiB idle, ${pushRss.toFixed(0)} MiB after the push, ${rss.toFixed(0)} MiB after the pull`);
    t.ok(rss < RSS_LIMIT_MIB, `stowage peak RSS ${rss.toFixed(0)} MiB < ${RSS_LIMIT_MIB} MiB for a ${SIZE_MIB} MiB blob`);
  });
}
