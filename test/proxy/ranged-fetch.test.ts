/**
 * Ranged fetch of big blobs (issue 17, ranges:) against real processes: registry:2 upstreams whose
 * blob GETs redirect (its `redirect` storage middleware) to nginx serving the registry's storage
 * directory as a CDN would. Counted in nginx's access log (with each request's Range and each
 * answer's Content-Range): a big blob comes as several 206s covering it exactly once, the later
 * ones straight from the CDN URL; a CDN that ignores Range (max_ranges 0) still gives the whole
 * verified blob, the fallback counted; a CDN serving wrong bytes gets nothing stored and the client
 * a cut connection; a client gets the bytes in order while the fill still runs.
 */
import { execFileSync } from 'node:child_process';
import { openSync, writeSync, closeSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { imageReferencing, prngBytes, pushImageHttp, sha256, type Blob, type Image } from '../helpers/image.js';
import { startLyingUpstream, type Behaviour } from '../helpers/lying-upstream.js';
import { missingNginx, startNginx, type AccessEntry, type Nginx } from '../helpers/nginx.js';
import { countRegistry2Requests, startRegistry2, startStowage, type Proc } from '../helpers/procs.js';
import { scratchDir } from '../helpers/scratch.js';
import { missingTools, until } from '../helpers/tools.js';

const skip = missingTools('docker-registry') ?? missingNginx();
const MiB = 1024 * 1024;
/** 11 chunks of 1 MiB, the last one short. */
const SIZE = 10 * MiB + 12345;
/** start_after 0s: every upstream here is on loopback, and these tests are about the parallel chunks. */
const RANGES = { connections: 4, chunk_size: '1MiB', min_size: '4MiB', start_after: '0s' };

async function metric(s: Proc, name: string, label = ''): Promise<number> {
  const text = await (await fetch(`${s.url}/metrics`)).text();
  return text.split('\n').filter((l) => l.startsWith(name) && l.includes(label)).reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

const bigBlob = (seed: number): Blob => {
  const bytes = prngBytes(seed, SIZE);
  return { bytes, digest: sha256(bytes) };
};

const dataPath = (root: string, digest: string) => {
  const hex = digest.slice('sha256:'.length);
  return join(root, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
};

/** registry:2 redirecting blob GETs to nginx serving its storage directory. */
async function registryWithCdn(t: Test, cdn: { maxRanges?: number; limitRate?: string }): Promise<{ r2: Proc; cdn: Nginx; root: string }> {
  const root = await scratchDir('registry2-cdn-');
  const nginx = await startNginx({ backends: [], static: { root, ...cdn } });
  t.teardown(() => nginx.stop());
  const r2 = await startRegistry2({ rootDir: root, config: { storage: { redirect: { disable: false } }, middleware: { storage: [{ name: 'redirect', options: { baseurl: nginx.url } }] } } });
  t.teardown(() => r2.stop());
  return { r2, cdn: nginx, root };
}

/** Reads a blob GET as it streams: bytes, digest, and when each byte count was reached. */
async function readBlob(url: string, onProgress?: (received: number) => void): Promise<{ status: number; bytes: number; digest: string; error?: string }> {
  const res = await fetch(url);
  const parts: Buffer[] = [];
  let bytes = 0;
  let error: string | undefined;
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      parts.push(Buffer.from(chunk));
      bytes += chunk.length;
      onProgress?.(bytes);
    }
  } catch (err) {
    error = (err as Error).message;
  }
  return { status: res.status, bytes, digest: sha256(Buffer.concat(parts)), ...(error ? { error } : {}) };
}

const blobEntries = (cdn: Nginx, digest: string): AccessEntry[] => cdn.accessLog().filter((e) => e.uri.includes(digest.slice('sha256:'.length)));

t.test('ranged fetch of big blobs through registry:2 and an nginx CDN', { skip }, async (t) => {
  // Paced per connection, as a WAN link or a CDN is: a fill takes over a second.
  const ranged = await registryWithCdn(t, { limitRate: '2m' });
  const plain = await registryWithCdn(t, { maxRanges: 0 });

  const good = bigBlob(301);
  const streamed = bigBlob(302);
  const lying = bigBlob(303);
  const ignored = bigBlob(304);
  const img = (b: Blob, tag: string): Image => imageReferencing([b], tag);
  await pushImageHttp(ranged.r2.url, 'library/big', 'good', img(good, 'good'));
  await pushImageHttp(ranged.r2.url, 'library/big', 'streamed', img(streamed, 'streamed'));
  await pushImageHttp(ranged.r2.url, 'library/big', 'lying', img(lying, 'lying'));
  await pushImageHttp(plain.r2.url, 'library/big', 'ignored', img(ignored, 'ignored'));
  // The CDN now serves other bytes under that digest (a bit flipped in the middle of the blob).
  const fd = openSync(dataPath(ranged.root, lying.digest), 'r+');
  writeSync(fd, Buffer.from([lying.bytes[5 * MiB]! ^ 0xff]), 0, 1, 5 * MiB);
  closeSync(fd);

  // Prefetch off: each fill below is the client's own.
  const s = await startStowage({
    config: {
      ranges: RANGES,
      upstreams: [
        { name: 'ranged.test', url: ranged.r2.url, prefetch: { enabled: false } },
        { name: 'plain.test', url: plain.r2.url, prefetch: { enabled: false } },
      ],
    },
  });
  t.teardown(() => s.stop());
  const pullManifest = async (upstream: string, tag: string) => {
    const r = await fetch(`${s.url}/v2/${upstream}/library/big/manifests/${tag}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
    t.equal(r.status, 200, `manifest ${upstream} ${tag}`);
    await r.arrayBuffer();
  };
  const blobUrl = (upstream: string, b: Blob) => `${s.url}/v2/${upstream}/library/big/blobs/${b.digest}`;

  await t.test('a big blob comes as several 206s covering it exactly once', async (t) => {
    await pullManifest('ranged.test', 'good');
    const got = await readBlob(blobUrl('ranged.test', good));
    t.equal(got.status, 200);
    t.equal(got.bytes, SIZE);
    t.equal(got.digest, good.digest, 'the bytes verify');
    // nginx writes a request's line once it has ended: a moment after its last byte left.
    await until('the CDN logged the ranges', () => blobEntries(ranged.cdn, good.digest).length >= 11, 10_000).catch(() => undefined);
    const entries = blobEntries(ranged.cdn, good.digest);
    t.equal(entries.length, 11, 'one CDN request per 1 MiB chunk');
    t.ok(entries.every((e) => e.status === 206), 'every answer a 206');
    const ranges = entries.map((e) => /^bytes=(\d+)-(\d+)$/.exec(e.range)).map((m) => [Number(m?.[1]), Number(m?.[2])] as const).sort((a, b) => a[0] - b[0]);
    let next = 0;
    for (const [start, end] of ranges) {
      t.equal(start, next, `range ${start}-${end} starts where the previous one ended`);
      next = end + 1;
    }
    t.equal(next, SIZE, 'the ranges end at the last byte: 1.0x the blob, no byte twice');
    t.ok(entries.every((e) => e.contentRange === e.range.replace('=', ' ') + `/${SIZE}`), 'each Content-Range is the range asked');
    t.equal(countRegistry2Requests(ranged.r2, 'GET', `/blobs/${good.digest}`), 1, 'one registry GET: the later ranges went straight to the CDN URL');
    t.equal(await metric(s, 'stowage_upstream_ranged_fills_total'), 1, 'counted as a ranged fill');
    t.equal(await metric(s, 'stowage_upstream_ranged_fallbacks_total'), 0, 'no fallback');
    // The last byte goes out once the digest verifies; the commit (and its log line) follows.
    await until('the fill committed', () => s.logs().some((l) => l.msg === 'blob cached' && l.digest === good.digest), 10_000);
    const cached = s.logs().find((l) => l.msg === 'blob cached' && l.digest === good.digest);
    t.same(cached?.ranged, { parallel: true, chunks: 11, connections: 4 }, 'the fill\'s log line says it was ranged');
    const again = await readBlob(blobUrl('ranged.test', good));
    t.equal(again.digest, good.digest, 'served from the cache afterwards');
    t.equal(blobEntries(ranged.cdn, good.digest).length, 11, 'no new upstream request');
  });

  await t.test('a client gets the bytes in order while the fill still runs', async (t) => {
    await pullManifest('ranged.test', 'streamed');
    const cachedYet = () => s.logs().some((l) => l.msg === 'blob cached' && l.digest === streamed.digest);
    let checkedAt = -1;
    let cachedThen = true;
    const got = await readBlob(blobUrl('ranged.test', streamed), (n) => {
      if (checkedAt < 0 && n > 2 * MiB) { checkedAt = n; cachedThen = cachedYet(); }
    });
    t.equal(got.digest, streamed.digest, 'the bytes verify (in order: the digest is of the whole stream)');
    t.ok(checkedAt > 2 * MiB, 'the client had more than two chunks');
    t.notOk(cachedThen, 'before the fill had ended');
    await until('the CDN logged the ranges', () => blobEntries(ranged.cdn, streamed.digest).length >= 11, 10_000).catch(() => undefined);
    t.equal(blobEntries(ranged.cdn, streamed.digest).length, 11, 'and it was a ranged fill');
  });

  await t.test('wrong bytes from the CDN: nothing stored, the client never gets a complete body', async (t) => {
    await pullManifest('ranged.test', 'lying');
    const mismatches = await metric(s, 'stowage_digest_mismatch_total');
    const got = await readBlob(blobUrl('ranged.test', lying));
    t.not(got.digest, lying.digest);
    t.ok(got.status !== 200 || got.bytes < SIZE, `cut short or refused (status ${got.status}, ${got.bytes} bytes${got.error ? `, ${got.error}` : ''})`);
    t.equal(await metric(s, 'stowage_digest_mismatch_total'), mismatches + 1, 'the mismatch is counted');
    await until('the fill failed', () => s.logs().some((l) => l.msg === 'blob fill failed; nothing cached' && l.digest === lying.digest), 10_000);
    t.notOk(existsSync(dataPath(s.rootDir, lying.digest)), 'nothing stored');
  });

  await t.test('a CDN that ignores Range: the whole blob still arrives, verified; the fallback is counted', async (t) => {
    await pullManifest('plain.test', 'ignored');
    const got = await readBlob(blobUrl('plain.test', ignored));
    t.equal(got.status, 200);
    t.equal(got.digest, ignored.digest, 'the bytes verify');
    await until('the CDN logged the GET', () => blobEntries(plain.cdn, ignored.digest).length >= 1, 10_000).catch(() => undefined);
    const entries = blobEntries(plain.cdn, ignored.digest);
    t.same(entries.map((e) => [e.status, e.range]), [[200, 'bytes=0-1048575']], 'one CDN request, answered 200 whole');
    t.equal(await metric(s, 'stowage_upstream_ranged_fallbacks_total', 'reason="ignored-range"'), 1, 'the fallback is counted');
    await until('the fill committed', () => s.logs().some((l) => l.msg === 'blob cached' && l.digest === ignored.digest), 10_000);
    t.ok(s.logs().some((l) => l.msg === 'blob cached' && l.digest === ignored.digest && l.ranged === undefined), 'cached as a plain fill');
  });
});

t.test('ranges that go wrong midway: the rest comes from one GET, the bytes verify', { skip }, async (t) => {
  const up = await startLyingUpstream();
  t.teardown(() => up.close());
  const cases: Array<{ behaviour: Behaviour; blob: Blob; reason: string }> = [
    { behaviour: 'range-wrong', blob: bigBlob(401), reason: 'bad-range' },
    { behaviour: 'range-short', blob: bigBlob(402), reason: 'error' },
    { behaviour: 'range-200-later', blob: bigBlob(403), reason: 'ignored-range' },
  ];
  const empty: Blob = { bytes: Buffer.alloc(0), digest: sha256(Buffer.alloc(0)) };
  for (const c of cases) up.blobs.set(c.blob.digest, { bytes: c.blob.bytes, behaviour: c.behaviour });
  up.blobs.set(empty.digest, { bytes: empty.bytes, behaviour: 'ranged' });
  const manifest = up.publishImage('library/odd', 'v1', [...cases.map((c) => c.blob), empty].map((b) => ({ digest: b.digest, size: b.bytes.length })));

  const s = await startStowage({ config: { ranges: RANGES, upstreams: [{ name: 'odd.test', url: up.url, prefetch: { enabled: false } }] } });
  t.teardown(() => s.stop());
  const m = await fetch(`${s.url}/v2/odd.test/library/odd/manifests/v1`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
  t.equal(sha256(Buffer.from(await m.arrayBuffer())), manifest.digest);

  for (const c of cases) {
    await t.test(c.behaviour, async (t) => {
      const got = await readBlob(`${s.url}/v2/odd.test/library/odd/blobs/${c.blob.digest}`);
      t.equal(got.status, 200);
      t.equal(got.digest, c.blob.digest, 'the whole blob, verified');
      const requests = up.seen.filter((x) => x.path.endsWith(c.blob.digest));
      const fallback = requests.find((x) => /^bytes=\d+-$/.test(x.range ?? ''));
      t.ok(fallback, `one GET of the rest (${fallback?.range})`);
      t.equal(requests.filter((x) => /^bytes=\d+-$/.test(x.range ?? '')).length, 1, 'only one');
      t.ok(await metric(s, 'stowage_upstream_ranged_fallbacks_total', `reason="${c.reason}"`) >= 1, `counted as ${c.reason}`);
      await until('the fill committed', () => s.logs().some((l) => l.msg === 'blob cached' && l.digest === c.blob.digest), 10_000);
    });
  }

  await t.test('an empty blob (416 to the first range) is asked for whole', async (t) => {
    const got = await readBlob(`${s.url}/v2/odd.test/library/odd/blobs/${empty.digest}`);
    t.equal(got.status, 200);
    t.equal(got.bytes, 0);
    t.same(up.seen.filter((x) => x.path.endsWith(empty.digest)).map((x) => [x.status, x.range ?? 'none']), [[416, 'bytes=0-1048575'], [200, 'none']]);
  });
});

t.test('later chunks wait for their turn in a spool file, not in memory; no spool: the rest in one request', { skip }, async (t) => {
  // The first range trickles in over 2 s; the later ones arrive at once and wait for their turn.
  const up = await startLyingUpstream({ slowMs: 2000 });
  t.teardown(() => up.close());
  const blobs = [bigBlob(501), bigBlob(502)];
  for (const b of blobs) up.blobs.set(b.digest, { bytes: b.bytes, behaviour: 'ranged-slow-head' });
  up.publishImage('library/held', 'v1', blobs.map((b) => ({ digest: b.digest, size: b.bytes.length })));
  const asked = (b: Blob) => up.seen.filter((x) => x.path.endsWith(b.digest)).map((x) => x.range);

  const spoolDir = await scratchDir('ranged-spool-');
  // max_memory 1MiB: the bytes on their way to the file are bounded too.
  const s = await startStowage({ config: { ranges: { ...RANGES, spool_dir: spoolDir, max_memory: '1MiB' }, upstreams: [{ name: 'held.test', url: up.url, prefetch: { enabled: false } }] } });
  t.teardown(() => s.stop());
  await fetch(`${s.url}/v2/held.test/library/held/manifests/v1`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } }).then((r) => r.arrayBuffer());
  const peak = { held: 0, spooled: 0, files: 0 };
  let reading = true;
  const sampling = (async () => {
    while (reading) {
      peak.held = Math.max(peak.held, await metric(s, 'stowage_upstream_ranged_held_bytes'));
      peak.spooled = Math.max(peak.spooled, await metric(s, 'stowage_upstream_ranged_spooled_bytes'));
      peak.files = Math.max(peak.files, readdirSync(spoolDir).length);
      await new Promise((r) => setTimeout(r, 25));
    }
  })();
  const got = await readBlob(`${s.url}/v2/held.test/library/held/blobs/${blobs[0]!.digest}`);
  reading = false;
  await sampling;
  t.equal(got.digest, blobs[0]!.digest, 'the whole blob, verified');
  t.equal(asked(blobs[0]!).length, 11, 'in 11 ranges at once');
  // 4 connections of 1 MiB chunks: 3 chunks (3 MiB) wait for the slow first one.
  t.ok(peak.spooled >= 2.5 * MiB, `the later chunks waited in the spool file (${(peak.spooled / MiB).toFixed(2)} MiB at most)`);
  // The limit, plus the read that crossed it on each of the 3 paused responses.
  t.ok(peak.held <= 1 * MiB + 3 * 256 * 1024, `in memory only on their way there, within max_memory (${(peak.held / MiB).toFixed(2)} MiB at most)`);
  t.equal(peak.files, 0, 'the spool file has no name: nothing in the directory, even while it is used');
  t.equal(await metric(s, 'stowage_upstream_ranged_spooled_bytes'), 0, 'nothing spooled once it is done');
  t.equal(await metric(s, 'stowage_upstream_ranged_held_bytes'), 0, 'nothing held once it is done');

  // A spool_dir that cannot hold a file: the rest after the first chunk, in one request.
  const noSpool = await startStowage({ config: { ranges: { ...RANGES, spool_dir: join(spoolDir, 'missing') }, upstreams: [{ name: 'held.test', url: up.url, prefetch: { enabled: false } }] } });
  t.teardown(() => noSpool.stop());
  await fetch(`${noSpool.url}/v2/held.test/library/held/manifests/v1`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } }).then((r) => r.arrayBuffer());
  const plain = await readBlob(`${noSpool.url}/v2/held.test/library/held/blobs/${blobs[1]!.digest}`);
  t.equal(plain.digest, blobs[1]!.digest, 'no spool: the whole blob, verified');
  t.same(asked(blobs[1]!), ['bytes=0-1048575', `bytes=1048576-${SIZE - 1}`], 'no spool: the first chunk, then the rest in one request');
  await until('the no-spool warning', () => noSpool.logs().some((l) => l.level === 'warn' && String(l.msg).includes('no spool file')), 5000);
  t.ok(noSpool.logs().some((l) => l.level === 'warn' && String(l.msg).includes('no spool file') && l.dir === join(spoolDir, 'missing')), 'the operator is told which directory, in a warning');
});

t.test('a spool directory that fills up (ENOSPC): the rest comes from one GET, the blob verifies', {
  skip: skip ?? (process.getuid?.() !== 0 && process.env.CI !== 'true' ? 'needs root (mounts a tmpfs)' : missingTools('mount', 'umount')),
}, async (t) => {
  const work = await scratchDir('ranged-spool-full-');
  const small = join(work, 'tmpfs');
  execFileSync('mkdir', ['-p', small]);
  // Room for a quarter of what waits: 3 MiB of later chunks behind the slow first one.
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=768k', 'tmpfs', small]);
  t.teardown(() => { try { execFileSync('umount', [small]); } catch { /* not mounted */ } });
  const up = await startLyingUpstream({ slowMs: 1500 });
  t.teardown(() => up.close());
  const blob = bigBlob(701);
  up.blobs.set(blob.digest, { bytes: blob.bytes, behaviour: 'ranged-slow-head' });
  up.publishImage('library/full', 'v1', [{ digest: blob.digest, size: blob.bytes.length }]);
  const s = await startStowage({ config: { ranges: { ...RANGES, spool_dir: small }, upstreams: [{ name: 'full.test', url: up.url, prefetch: { enabled: false } }] } });
  t.teardown(() => s.stop());
  await fetch(`${s.url}/v2/full.test/library/full/manifests/v1`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } }).then((r) => r.arrayBuffer());
  const got = await readBlob(`${s.url}/v2/full.test/library/full/blobs/${blob.digest}`);
  t.equal(got.digest, blob.digest, 'the whole blob, verified');
  t.equal(await metric(s, 'stowage_upstream_ranged_fallbacks_total', 'reason="error"'), 1, 'the ranged mode gave up once, counted');
  const line = s.logs().find((l) => String(l.msg).startsWith('ranged fetch gave up'));
  t.match(String(line?.detail), /spool file: .*(ENOSPC|no space)/i, `the log says why: ${String(line?.detail)}`);
  const asked = up.seen.filter((x) => x.path.endsWith(blob.digest)).map((x) => x.range);
  t.match(asked[asked.length - 1], /^bytes=\d+-$/, `then one GET of the rest (${asked[asked.length - 1]})`);
  t.equal(await metric(s, 'stowage_upstream_ranged_spooled_bytes'), 0, 'nothing left in spool files');
  const head = await fetch(`${s.url}/v2/full.test/library/full/blobs/${blob.digest}`, { method: 'HEAD' });
  t.equal(head.status, 200, 'stored');
});

t.test('start_after: a fast first chunk gets the rest in one request after it; a slow one, the chunks in parallel', { skip }, async (t) => {
  const up = await startLyingUpstream({ slowMs: 1500 });
  t.teardown(() => up.close());
  const fast = bigBlob(601);
  const slow = bigBlob(602);
  up.blobs.set(fast.digest, { bytes: fast.bytes, behaviour: 'ranged' });
  up.blobs.set(slow.digest, { bytes: slow.bytes, behaviour: 'ranged-slow-head' });
  up.publishImage('library/near', 'v1', [fast, slow].map((b) => ({ digest: b.digest, size: b.bytes.length })));
  // The shipped start_after (100ms).
  const { start_after: _atOnce, ...shipped } = RANGES;
  const s = await startStowage({ config: { ranges: shipped, upstreams: [{ name: 'near.test', url: up.url, prefetch: { enabled: false } }] } });
  t.teardown(() => s.stop());
  await fetch(`${s.url}/v2/near.test/library/near/manifests/v1`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } }).then((r) => r.arrayBuffer());
  const asked = (b: Blob) => up.seen.filter((x) => x.path.endsWith(b.digest)).map((x) => x.range);

  const got = await readBlob(`${s.url}/v2/near.test/library/near/blobs/${fast.digest}`);
  t.equal(got.digest, fast.digest, 'loopback: the whole blob, verified');
  t.same(asked(fast), ['bytes=0-1048575', `bytes=1048576-${SIZE - 1}`], 'loopback: the first chunk, then the rest in one request');
  t.equal(await metric(s, 'stowage_upstream_ranged_fills_total'), 0, 'not counted as a parallel fill');

  const gotSlow = await readBlob(`${s.url}/v2/near.test/library/near/blobs/${slow.digest}`);
  t.equal(gotSlow.digest, slow.digest, 'a first chunk still arriving after 100ms: the whole blob, verified');
  t.equal(asked(slow).length, 11, 'then the rest in chunks (10 more requests)');
  t.equal(await metric(s, 'stowage_upstream_ranged_fills_total'), 1, 'counted as a parallel fill');
});
