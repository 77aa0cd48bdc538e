/**
 * Layer prefetch (issue 17) against a real registry:2 upstream, counting upstream GETs in its own
 * access log: a manifest GET fetches each missing blob exactly once, none that are held, none for
 * an index's other platforms, none for a HEAD, none when access is denied; a client joining a
 * prefetch fill gets verified bytes; a lying upstream's wrong bytes are never stored.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import t from 'tap';
import { ALL_ACCEPT, imageReferencing, makeImage, makeIndex, prngBytes, pushImageHttp, sha256, type Image } from '../helpers/image.js';
import { startLyingUpstream } from '../helpers/lying-upstream.js';
import { countRegistry2Requests, startRegistry2, startStowage, type Proc } from '../helpers/procs.js';
import { missingTools, sleep, until } from '../helpers/tools.js';

const skip = missingTools('docker-registry');
const MiB = 1024 * 1024;
/** Long enough for a prefetch that was wrongly started to show up in the upstream's log. */
const QUIET_MS = 1500;

const basic = (user: string) => ({ authorization: `Basic ${Buffer.from(`${user}:pw-${user}`).toString('base64')}` });
const blobsOf = (i: Image) => [i.config, ...i.layers];
const gets = (r2: Proc, digest: string) => countRegistry2Requests(r2, 'GET', `/blobs/${digest}`);

async function metric(s: Proc, name: string): Promise<number> {
  const text = await (await fetch(`${s.url}/metrics`)).text();
  return text.split('\n').filter((l) => l.startsWith(name)).reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

t.test('layer prefetch through a registry:2 upstream', { skip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'prefetch-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'htpasswd'), ['alice', 'bob'].map((u) => `${u}:${bcrypt.hashSync(`pw-${u}`, 4)}`).join('\n') + '\n');
  const r2 = await startRegistry2();
  t.teardown(() => r2.stop());

  const app = makeImage({ seed: 171, layers: 3, layerSize: 2 * MiB });
  const sibling = imageReferencing([app.layers[0]!, app.layers[1]!, { bytes: prngBytes(172, MiB), digest: sha256(prngBytes(172, MiB)) }], 'sibling');
  const amd = makeImage({ seed: 173, layers: 2, layerSize: 512 * 1024, platform: { architecture: 'amd64', os: 'linux' } });
  const arm = makeImage({ seed: 174, layers: 2, layerSize: 512 * 1024, platform: { architecture: 'arm64', os: 'linux' } });
  await pushImageHttp(r2.url, 'library/app', 'v1', app);
  await pushImageHttp(r2.url, 'library/app', 'sibling', sibling);
  await pushImageHttp(r2.url, 'library/multi', 'v1', makeIndex([amd, arm]));

  const s = await startStowage({
    config: {
      upstreams: [{ name: 'docker.io', url: r2.url }], default_upstream: 'docker.io',
      auth: { htpasswd: { realm: 'stowage', path: join(dir, 'htpasswd') } },
      access: [{ repository: 'docker.io/library/app', pull: ['alice'] }, { repository: '**', pull: ['authenticated'] }],
    },
  });
  t.teardown(() => s.stop());
  const manifest = (repo: string, ref: string, user: string, method = 'GET') =>
    fetch(`${s.url}/v2/${repo}/manifests/${ref}`, { method, headers: { accept: ALL_ACCEPT, ...basic(user) } });
  const blob = async (repo: string, digest: string, user = 'alice') => {
    const r = await fetch(`${s.url}/v2/${repo}/blobs/${digest}`, { headers: basic(user) });
    return { status: r.status, digest: sha256(Buffer.from(await r.arrayBuffer())) };
  };

  await t.test('a HEAD caches the manifest and prefetches nothing', async (t) => {
    t.equal((await manifest('library/app', 'v1', 'alice', 'HEAD')).status, 200);
    await sleep(QUIET_MS);
    t.same(blobsOf(app).map((b) => gets(r2, b.digest)), [0, 0, 0, 0], 'no blob GET upstream');
  });

  await t.test('a client who may not pull the image triggers nothing', async (t) => {
    const r = await manifest('library/app', 'v1', 'bob');
    t.equal(r.status, 403, 'bob is denied');
    await r.arrayBuffer();
    await sleep(QUIET_MS);
    t.same(blobsOf(app).map((b) => gets(r2, b.digest)), [0, 0, 0, 0], 'no blob GET upstream');
  });

  await t.test('a manifest GET fetches each missing blob exactly once', async (t) => {
    const r = await manifest('library/app', 'v1', 'alice');
    t.equal(r.status, 200);
    await r.arrayBuffer();
    await until('every blob prefetched', () => blobsOf(app).every((b) => s.logs().some((l) => l.msg === 'blob cached' && l.digest === b.digest)), 30_000);
    t.same(blobsOf(app).map((b) => gets(r2, b.digest)), [1, 1, 1, 1], 'one upstream GET per blob, before any client asked');
    for (const b of blobsOf(app)) t.same(await blob('library/app', b.digest), { status: 200, digest: b.digest }, 'served from the cache, intact');
    t.same(blobsOf(app).map((b) => gets(r2, b.digest)), [1, 1, 1, 1], 'the client GETs cost the upstream nothing');
    t.equal(await metric(s, 'stowage_prefetch_blobs_total'), 4, 'four blobs prefetched');
    t.equal(await metric(s, 'stowage_prefetch_bytes_total'), blobsOf(app).reduce((n, b) => n + b.bytes.length, 0), 'their bytes');
    t.equal(await metric(s, 'stowage_prefetch_used_total'), 4, 'all four used by a client within the minute');
  });

  await t.test('blobs already held are not fetched again', async (t) => {
    const r = await manifest('library/app', 'sibling', 'alice');
    t.equal(r.status, 200);
    await r.arrayBuffer();
    const fresh = [sibling.config, sibling.layers[2]!];
    await until('the new blobs prefetched', () => fresh.every((b) => s.logs().some((l) => l.msg === 'blob cached' && l.digest === b.digest)), 30_000);
    await sleep(QUIET_MS);
    t.same(blobsOf(sibling).map((b) => gets(r2, b.digest)), [1, 1, 1, 1], 'shared layers still fetched once, new ones once');
  });

  await t.test('an index prefetches nothing; one platform\'s manifest prefetches that platform only', async (t) => {
    const r = await manifest('library/multi', 'v1', 'bob');
    t.equal(r.status, 200);
    await r.arrayBuffer();
    await sleep(QUIET_MS);
    t.same([...blobsOf(amd), ...blobsOf(arm)].map((b) => gets(r2, b.digest)), [0, 0, 0, 0, 0, 0], 'nothing fetched for the index');
    await (await manifest('library/multi', amd.manifest.digest, 'bob')).arrayBuffer();
    await until('amd64 blobs prefetched', () => blobsOf(amd).every((b) => gets(r2, b.digest) === 1), 30_000);
    await sleep(QUIET_MS);
    t.same(blobsOf(amd).map((b) => gets(r2, b.digest)), [1, 1, 1], 'the asked platform: once each');
    t.same(blobsOf(arm).map((b) => gets(r2, b.digest)), [0, 0, 0], 'the other platform: never');
  });

});

t.test('prefetch stops at max_bytes and at the cache budget; the client still gets everything', { skip }, async (t) => {
  const r2 = await startRegistry2();
  t.teardown(() => r2.stop());
  const img = makeImage({ seed: 181, layers: 3, layerSize: 600 * 1024 });
  const big = makeImage({ seed: 182, layers: 2, layerSize: 2 * MiB });
  await pushImageHttp(r2.url, 'library/capped', '1', img);
  await pushImageHttp(r2.url, 'library/big', '1', big);
  const s = await startStowage({
    config: {
      upstreams: [{ name: 'docker.io', url: r2.url }, { name: 'capped.test', url: r2.url, prefetch: { max_bytes: '1MiB' } }], default_upstream: 'docker.io',
      cache: { max_size: '3MiB', min_age: '1h' },
    },
  });
  t.teardown(() => s.stop());
  const pull = async (repo: string, image: Image) => {
    await (await fetch(`${s.url}/v2/${repo}/manifests/1`, { headers: { accept: ALL_ACCEPT } })).arrayBuffer();
    await sleep(QUIET_MS);
    const before = blobsOf(image).map((b) => gets(r2, b.digest));
    for (const b of blobsOf(image)) {
      const r = await fetch(`${s.url}/v2/${repo}/blobs/${b.digest}`);
      t.equal(sha256(Buffer.from(await r.arrayBuffer())), b.digest, 'the client gets the blob');
    }
    return before;
  };
  // config + the first 600 KiB layer fit in 1 MiB; the next layers would not.
  t.same(await pull('capped.test/library/capped', img), [1, 1, 0, 0], 'max_bytes: the config and the first layer prefetched, the rest left to the client');
  // registry:2 logs a GET once its response is done, and the line comes over a pipe: it can lag
  // the client's last byte (seen once in a full run: 0 for the last blob). Then a quiet moment,
  // so that a second GET would be seen too.
  await until('registry:2 logged every blob GET', () => blobsOf(img).every((b) => gets(r2, b.digest) >= 1), 10_000);
  await sleep(QUIET_MS);
  t.same(blobsOf(img).map((b) => gets(r2, b.digest)), [1, 1, 1, 1], 'one upstream GET per blob in all');
  // ~1.8 MiB cached of 3 MiB: the config fits, a 2 MiB layer would take the cache over budget.
  const big1 = await pull('library/big', big);
  t.same(big1, [1, 0, 0], 'budget: no layer prefetched that would take the cache over max_size');
  const text = await (await fetch(`${s.url}/metrics`)).text();
  t.match(text, /stowage_prefetch_skipped_total\{upstream="capped.test",reason="max_bytes"\} 2\n/, 'the max_bytes skips are counted');
  t.match(text, /stowage_prefetch_skipped_total\{upstream="docker.io",reason="budget"\} 2\n/, 'the budget skips are counted');
});

t.test('a lying upstream during prefetch: nothing is stored; a client joining a slow prefetch gets verified bytes', async (t) => {
  const up = await startLyingUpstream({ slowMs: 1500 });
  t.teardown(() => up.close());
  const good = prngBytes(176, MiB);
  const lie = prngBytes(177, MiB);
  const goodDigest = sha256(good);
  const lieDigest = sha256(lie);
  up.blobs.set(goodDigest, { bytes: good, behaviour: 'good' });
  up.blobs.set(lieDigest, { bytes: lie, behaviour: 'wrong-bytes' });
  const slow = prngBytes(178, 4 * MiB);
  const slowDigest = sha256(slow);
  up.blobs.set(slowDigest, { bytes: slow, behaviour: 'slow-body' });
  up.publishImage('acme/app', '1', [{ digest: goodDigest, size: good.length }, { digest: lieDigest, size: lie.length }, { digest: slowDigest, size: slow.length }]);
  const s = await startStowage({ config: { upstreams: [{ name: 'docker.io', url: up.url, circuit_breaker: { failures: 100 } }] } });
  t.teardown(() => s.stop());
  const r = await fetch(`${s.url}/v2/docker.io/acme/app/manifests/1`, { headers: { accept: ALL_ACCEPT } });
  t.equal(r.status, 200);
  await r.arrayBuffer();
  // The slow blob's prefetch has its first half and waits 1.5 s for the rest: a client joins it.
  await until('the slow prefetch under way', () => up.seen.some((x) => x.method === 'GET' && x.path.endsWith(`/blobs/${slowDigest}`)), 10_000);
  const joined = await fetch(`${s.url}/v2/docker.io/acme/app/blobs/${slowDigest}`);
  t.equal(sha256(Buffer.from(await joined.arrayBuffer())), slowDigest, 'the joining client got the whole blob, verified');
  t.equal(up.requests(`/blobs/${slowDigest}`), 1, 'one upstream GET, shared with the prefetch');
  await sleep(200);
  t.same(s.logs().filter((l) => l.reference === slowDigest && l.cache !== undefined).map((l) => l.cache), ['joined'], 'the client joined the prefetch fill');
  await until('the good blob prefetched', () => s.logs().some((l) => l.msg === 'blob cached' && l.digest === goodDigest), 20_000);
  await until('the lie caught', () => up.requests(`/blobs/${lieDigest}`) === 1 && up.seen.every((x) => x.status !== 0), 20_000);
  await sleep(500);
  t.notOk(s.logs().some((l) => l.msg === 'blob cached' && l.digest === lieDigest), 'the wrong bytes were not cached');
  t.equal(await metric(s, 'stowage_digest_mismatch_total'), 1, 'the mismatch was counted');
  // Nothing stored: a client's request goes upstream again (and is refused the wrong bytes).
  const again = await fetch(`${s.url}/v2/docker.io/acme/app/blobs/${lieDigest}`).then(async (res) => {
    try { return sha256(Buffer.from(await res.arrayBuffer())); } catch { return 'cut'; }
  }, () => 'cut');
  t.equal(up.requests(`/blobs/${lieDigest}`), 2, 'the client\'s request went upstream: the prefetch stored nothing');
  t.equal(again, 'cut', 'the client never got a complete wrong body');
  const ok = await fetch(`${s.url}/v2/docker.io/acme/app/blobs/${goodDigest}`);
  t.equal(sha256(Buffer.from(await ok.arrayBuffer())), goodDigest, 'the good blob is served from the cache');
  t.equal(up.requests(`/blobs/${goodDigest}`), 1, 'fetched once');
});

t.test('an open circuit breaker: prefetch leaves the blobs to clients', async (t) => {
  const up = await startLyingUpstream();
  t.teardown(() => up.close());
  const failing = prngBytes(191, 64 * 1024);
  const later = prngBytes(192, 64 * 1024);
  up.blobs.set(sha256(failing), { bytes: failing, behaviour: '500' });
  up.blobs.set(sha256(later), { bytes: later, behaviour: 'good' });
  up.publishImage('acme/down', '1', [{ digest: sha256(failing), size: failing.length }]);
  up.publishImage('acme/next', '1', [{ digest: sha256(later), size: later.length }]);
  const s = await startStowage({ config: { upstreams: [{ name: 'docker.io', url: up.url, circuit_breaker: { failures: 1, cooldown: '1m' } }] } });
  t.teardown(() => s.stop());
  const get = async (path: string, method = 'GET') => (await fetch(`${s.url}/v2/docker.io/${path}`, { method, headers: { accept: ALL_ACCEPT } })).status;
  t.equal(await get('acme/next/manifests/1', 'HEAD'), 200, 'acme/next\'s manifest cached (a HEAD: nothing prefetched)');
  t.equal(await get('acme/down/manifests/1'), 200);
  await until('the failing prefetch tried', () => up.requests(`/blobs/${sha256(failing)}`) === 1, 10_000);
  await sleep(300);
  t.equal(await get('acme/next/manifests/1'), 200, 'a cached manifest is still served with the breaker open');
  await sleep(QUIET_MS);
  t.equal(up.requests('/acme/next/blobs/'), 0, 'no blob GET while the breaker is open');
  t.equal(await metric(s, 'stowage_prefetch_skipped_total'), 2, 'its config and layer skipped (circuit-open)');
});
