/**
 * Single-flight: 16 concurrent GETs of a missing 64 MiB blob make exactly one upstream GET
 * (counted in registry:2's own access log) and 16 correct bodies; a client that disconnects
 * mid-way does not stop the fill.
 */
import { get as httpGet } from 'node:http';
import t from 'tap';
import { imageReferencing, prngBytes, pushImageHttp, sha256 } from '../helpers/image.js';
import { countRegistry2Requests, startRegistry2, startStowage } from '../helpers/procs.js';
import { missingTools, sleep } from '../helpers/tools.js';

const skip = missingTools('docker-registry');
const MiB = 1024 * 1024;

t.test('single-flight blob fills', { skip }, async (t) => {
  const r2 = await startRegistry2();
  t.teardown(() => r2.stop());
  const big = prngBytes(4242, 64 * MiB);
  const other = prngBytes(4343, 64 * MiB);
  const bigDigest = sha256(big);
  const otherDigest = sha256(other);
  const third = prngBytes(4444, 3 * MiB);
  const thirdDigest = sha256(third);
  const fourth = prngBytes(4545, 48 * MiB);
  const fourthDigest = sha256(fourth);
  // stowage fetches a blob only when a manifest cached in the repository references it
  await pushImageHttp(r2.url, 'library/big', 'v1', imageReferencing([
    { bytes: big, digest: bigDigest }, { bytes: other, digest: otherDigest }, { bytes: third, digest: thirdDigest },
    { bytes: fourth, digest: fourthDigest }]));
  // Fills started by client requests (prefetch.test.ts covers fills started by a manifest GET).
  // Ranged fetch off: these blobs are over ranges.min_size and registry:2 honours Range, so each
  // fill would be several upstream GETs; single-flight is about one fill per blob, counted here
  // as one GET (ranged-fetch.test.ts counts the ranged fills' requests).
  const s = await startStowage({ config: { upstreams: [{ name: 'docker.io', url: r2.url }], default_upstream: 'docker.io', prefetch: { enabled: false }, ranges: { enabled: false } } });
  t.teardown(() => s.stop());
  t.equal((await fetch(`${s.url}/v2/library/big/manifests/v1`)).status, 200, 'the manifest is cached first');

  await t.test('16 concurrent clients, one upstream GET', async (t) => {
    const bodies = await Promise.all(Array.from({ length: 16 }, async () => {
      const r = await fetch(`${s.url}/v2/library/big/blobs/${bigDigest}`);
      return { status: r.status, length: r.headers.get('content-length'), digest: sha256(Buffer.from(await r.arrayBuffer())) };
    }));
    t.same(bodies.map((b) => b.status), Array(16).fill(200));
    t.same(bodies.map((b) => b.length), Array(16).fill(String(big.length)), 'every response announces the full length');
    t.same(bodies.map((b) => b.digest), Array(16).fill(bigDigest), '16 correct bodies');
    t.equal(countRegistry2Requests(r2, 'GET', `/blobs/${bigDigest}`), 1, 'exactly one upstream blob GET');
    await sleep(200);
    const outcomes = s.logs().filter((l) => l.reference === bigDigest).map((l) => l.cache).sort();
    t.same(outcomes, ['joined', ...Array(14).fill('joined'), 'miss'].sort(), 'one miss, fifteen joined');
  });

  await t.test('the fill survives the first client disconnecting', async (t) => {
    await new Promise<void>((resolve, reject) => {
      const req = httpGet(`${s.url}/v2/library/big/blobs/${otherDigest}`, (res) => {
        let got = 0;
        res.on('data', (c: Buffer) => {
          got += c.length;
          if (got >= 2 * MiB) {
            req.destroy();
            resolve();
          }
        });
        res.on('error', () => undefined);
      });
      req.on('error', (e) => { if (!req.destroyed) reject(e); });
    });
    // wait for the fill to finish without asking stowage (which would join the fill)
    let cached = false;
    for (let i = 0; i < 100 && !cached; i++) {
      await sleep(100);
      cached = s.logs().some((l) => l.msg === 'blob cached' && l.digest === otherDigest);
    }
    t.ok(cached, 'the blob was cached after its only client left');
    const r = await fetch(`${s.url}/v2/library/big/blobs/${otherDigest}`);
    t.equal(sha256(Buffer.from(await r.arrayBuffer())), otherDigest, 'served from the cache, intact');
    t.equal(countRegistry2Requests(r2, 'GET', `/blobs/${otherDigest}`), 1, 'still one upstream GET');
  });

  await t.test('slow, fast and late clients of one fill all get the whole blob', async (t) => {
    const url = `${s.url}/v2/library/big/blobs/${fourthDigest}`;
    /** Reads the body, pausing `pauseMs` after every MiB (backpressure all the way to the fill). */
    const read = (pauseMs: number) => new Promise<string>((resolve, reject) => {
      httpGet(url, (res) => {
        const parts: Buffer[] = [];
        let sincePause = 0;
        res.on('data', (c: Buffer) => {
          parts.push(c);
          sincePause += c.length;
          if (pauseMs > 0 && sincePause >= MiB) {
            sincePause = 0;
            res.pause();
            setTimeout(() => res.resume(), pauseMs);
          }
        });
        res.on('end', () => resolve(sha256(Buffer.concat(parts))));
        res.on('error', reject);
      }).on('error', reject);
    });
    const slow = read(20);
    const fast = read(0);
    await sleep(300); // the fill is under way: a late client starts behind the in-memory window
    const late = read(5);
    t.same(await Promise.all([slow, fast, late]), [fourthDigest, fourthDigest, fourthDigest], 'three correct bodies');
    t.equal(countRegistry2Requests(r2, 'GET', `/blobs/${fourthDigest}`), 1, 'one upstream GET');
  });

  await t.test('a HEAD for a missing blob asks the upstream and fetches nothing', async (t) => {
    const head = await fetch(`${s.url}/v2/library/big/blobs/${thirdDigest}`, { method: 'HEAD' });
    t.equal(head.status, 200);
    t.equal(head.headers.get('content-length'), String(third.length));
    t.equal(countRegistry2Requests(r2, 'HEAD', `/blobs/${thirdDigest}`), 1, 'one upstream HEAD');
    t.equal(countRegistry2Requests(r2, 'GET', `/blobs/${thirdDigest}`), 0, 'no upstream GET');
    const missing = await fetch(`${s.url}/v2/library/big/blobs/sha256:${'0'.repeat(64)}`, { method: 'HEAD' });
    t.equal(missing.status, 404);
    t.equal(countRegistry2Requests(r2, 'HEAD', `/blobs/sha256:${'0'.repeat(64)}`), 0, 'a digest no cached manifest references is not asked for');
  });

  await t.test('ranges on cached blobs', async (t) => {
    const r = await fetch(`${s.url}/v2/library/big/blobs/${bigDigest}`, { headers: { range: 'bytes=1000-1999' } });
    t.equal(r.status, 206);
    t.ok(Buffer.from(await r.arrayBuffer()).equals(big.subarray(1000, 2000)));
  });
});
